//! What the preview counts: messages per side, header values per side, and
//! a few sample messages per side.

use std::collections::HashMap;

use http::HeaderName;
use serde::Serialize;

use super::judge::Verdict;
use super::read::Record;

/// How many distinct values of one header are counted apart; beyond, the
/// rest is counted together, so that a header with a value per message
/// (a trace ID) cannot grow the tally without bound.
const MAX_VALUES: usize = 1000;

/// How many characters of a header value a sample keeps.
const SAMPLE_VALUE_CHARS: usize = 40;

/// Messages, split by who processes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(super) struct Split {
    /// All of them.
    pub(super) messages: u64,
    /// Processed by the workstation.
    pub(super) workstation: u64,
    /// Processed by the cluster.
    pub(super) cluster: u64,
    /// Processed by the workstations of the workload's other intercepts
    /// (offline, when there are some).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) other_workstations: Option<u64>,
    /// Processed more than once.
    pub(super) overlap: u64,
    /// Processed by nobody.
    pub(super) missing: u64,
}

impl Split {
    fn new(others: bool) -> Self {
        Self {
            other_workstations: others.then_some(0),
            ..Self::default()
        }
    }

    fn add(&mut self, verdict: Verdict) {
        self.messages += 1;
        self.workstation += u64::from(verdict.workstation);
        self.cluster += u64::from(verdict.cluster);
        if let Some(others) = &mut self.other_workstations {
            *others += u64::from(verdict.others > 0);
        }
        match verdict.processors() {
            0 => self.missing += 1,
            1 => {}
            _ => self.overlap += 1,
        }
    }
}

/// One value of a header, and who processes the messages that carry it.
#[derive(Clone, Debug, Serialize)]
pub(super) struct ValueRow {
    /// The value (the first one in the message, as the APIs read it),
    /// `None` when the message has no such header.
    pub(super) value: Option<String>,
    /// Who processes the messages with it.
    #[serde(flatten)]
    pub(super) split: Split,
}

/// The values of one header.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Histogram {
    /// The header's name, lower case.
    pub(super) header: String,
    /// The values, most frequent first.
    pub(super) values: Vec<ValueRow>,
    /// The messages with values beyond the first 1000 distinct ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) other_values: Option<Split>,
}

/// One header of a sample message.
#[derive(Clone, Debug, Serialize)]
pub(super) struct SampleHeader {
    /// The header's key.
    pub(super) name: String,
    /// Its value, read as UTF-8 and shortened when long; `None` for a null
    /// value.
    pub(super) value: Option<String>,
}

/// A message shown as an example.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Sample {
    /// Its partition.
    pub(super) partition: i32,
    /// Its offset.
    pub(super) offset: i64,
    /// Its timestamp, in milliseconds since the epoch.
    pub(super) timestamp: Option<i64>,
    /// Its headers, in order.
    pub(super) headers: Vec<SampleHeader>,
}

impl Sample {
    fn new(record: &Record) -> Self {
        Self {
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            headers: record
                .headers
                .iter()
                .map(|(name, value)| SampleHeader {
                    name: name.clone(),
                    value: value
                        .as_deref()
                        .map(|v| shorten(&String::from_utf8_lossy(v), SAMPLE_VALUE_CHARS)),
                })
                .collect(),
        }
    }

    /// Newest last: by timestamp, then partition and offset, so that the
    /// choice does not depend on the order partitions were read in.
    fn key(&self) -> (i64, i32, i64) {
        sample_key(self.timestamp, self.partition, self.offset)
    }
}

fn sample_key(timestamp: Option<i64>, partition: i32, offset: i64) -> (i64, i32, i64) {
    (timestamp.unwrap_or(i64::MIN), partition, offset)
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(super) fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((at, _)) if text.chars().count() > max => format!("{}…", &text[..at]),
        _ => text.to_owned(),
    }
}

/// The newest messages of one kind.
#[derive(Clone, Debug, Default)]
struct SampleSet {
    /// Oldest first.
    items: Vec<Sample>,
}

impl SampleSet {
    fn offer(&mut self, record: &Record, limit: usize) {
        if limit == 0 {
            return;
        }
        let key = sample_key(record.timestamp, record.partition, record.offset);
        if self.items.len() >= limit && self.items.first().is_some_and(|s| s.key() >= key) {
            return;
        }
        let at = self.items.partition_point(|s| s.key() < key);
        self.items.insert(at, Sample::new(record));
        if self.items.len() > limit {
            self.items.remove(0);
        }
    }
}

/// The samples, per kind: the newest of each.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Samples {
    /// Messages the workstation processes.
    pub(super) workstation: Vec<Sample>,
    /// Messages the cluster processes.
    pub(super) cluster: Vec<Sample>,
    /// Messages processed more than once.
    pub(super) overlap: Vec<Sample>,
    /// Messages processed by nobody.
    pub(super) missing: Vec<Sample>,
}

/// The values of one header, as counted.
#[derive(Debug)]
struct ValueCounts {
    name: HeaderName,
    values: HashMap<Option<String>, Split>,
    overflow: Option<Split>,
}

/// Everything counted so far.
#[derive(Debug)]
pub(super) struct Tally {
    others: bool,
    samples_per_kind: usize,
    split: Split,
    histograms: Vec<ValueCounts>,
    /// Workstation, cluster, overlap, missing.
    samples: [SampleSet; 4],
}

impl Tally {
    /// Counts the values of `headers`, and keeps `samples_per_kind` samples;
    /// `others`: whether the workload has other workstations to count.
    pub(super) fn new(headers: Vec<HeaderName>, samples_per_kind: usize, others: bool) -> Self {
        Self {
            others,
            samples_per_kind,
            split: Split::new(others),
            histograms: headers
                .into_iter()
                .map(|name| ValueCounts {
                    name,
                    values: HashMap::new(),
                    overflow: None,
                })
                .collect(),
            samples: Default::default(),
        }
    }

    /// Counts one message.
    pub(super) fn add(&mut self, record: &Record, verdict: Verdict) {
        self.split.add(verdict);
        let others = self.others;
        for histogram in &mut self.histograms {
            let value = record
                .forwarded
                .get(&histogram.name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let split =
                if histogram.values.len() < MAX_VALUES || histogram.values.contains_key(&value) {
                    histogram
                        .values
                        .entry(value)
                        .or_insert_with(|| Split::new(others))
                } else {
                    histogram.overflow.get_or_insert_with(|| Split::new(others))
                };
            split.add(verdict);
        }
        let limit = self.samples_per_kind;
        let [workstation, cluster, overlap, missing] = &mut self.samples;
        if verdict.workstation {
            workstation.offer(record, limit);
        }
        if verdict.cluster {
            cluster.offer(record, limit);
        }
        match verdict.processors() {
            0 => missing.offer(record, limit),
            1 => {}
            _ => overlap.offer(record, limit),
        }
    }

    /// The counts.
    pub(super) fn split(&self) -> Split {
        self.split
    }

    /// The histograms, each value most frequent first.
    pub(super) fn histograms(&self) -> Vec<Histogram> {
        self.histograms
            .iter()
            .map(|h| {
                let mut values: Vec<ValueRow> = h
                    .values
                    .iter()
                    .map(|(value, split)| ValueRow {
                        value: value.clone(),
                        split: *split,
                    })
                    .collect();
                // Absent last among equals: a value is more telling.
                values.sort_by(|a, b| {
                    b.split
                        .messages
                        .cmp(&a.split.messages)
                        .then_with(|| a.value.is_none().cmp(&b.value.is_none()))
                        .then_with(|| a.value.cmp(&b.value))
                });
                Histogram {
                    header: h.name.as_str().to_owned(),
                    values,
                    other_values: h.overflow,
                }
            })
            .collect()
    }

    /// The samples.
    pub(super) fn samples(&self) -> Samples {
        let [workstation, cluster, overlap, missing] = &self.samples;
        Samples {
            workstation: workstation.items.clone(),
            cluster: cluster.items.clone(),
            overlap: overlap.items.clone(),
            missing: missing.items.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(partition: i32, offset: i64, timestamp: i64, dev: Option<&str>) -> Record {
        let headers: Vec<(String, Option<Vec<u8>>)> = dev
            .map(|d| vec![("X-Dev".to_owned(), Some(d.as_bytes().to_vec()))])
            .unwrap_or_default();
        let forwarded = telepresence_kafka::HeaderForwarding::default()
            .forward(headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())))
            .headers;
        Record {
            partition,
            offset,
            timestamp: Some(timestamp),
            headers,
            key: None,
            forwarded,
        }
    }

    const TO_WORKSTATION: Verdict = Verdict {
        cluster: false,
        workstation: true,
        others: 0,
    };
    const TO_CLUSTER: Verdict = Verdict {
        cluster: true,
        workstation: false,
        others: 0,
    };

    #[test]
    fn counts_split_by_side_and_by_value() {
        let mut tally = Tally::new(vec![HeaderName::from_static("x-dev")], 2, false);
        tally.add(&record(0, 0, 10, Some("alice")), TO_WORKSTATION);
        tally.add(&record(0, 1, 11, Some("bob")), TO_CLUSTER);
        tally.add(&record(1, 0, 12, None), TO_CLUSTER);
        tally.add(&record(1, 1, 13, Some("alice")), TO_WORKSTATION);
        tally.add(
            &record(1, 2, 14, Some("alice")),
            Verdict {
                cluster: true,
                workstation: true,
                others: 0,
            },
        );
        tally.add(&record(2, 0, 15, Some("carol")), Verdict::default());
        let split = tally.split();
        assert_eq!(
            (
                split.messages,
                split.workstation,
                split.cluster,
                split.overlap,
                split.missing
            ),
            (6, 3, 3, 1, 1)
        );
        assert_eq!(split.other_workstations, None);
        let histogram = &tally.histograms()[0];
        let rows: Vec<(Option<&str>, u64, u64, u64)> = histogram
            .values
            .iter()
            .map(|r| {
                (
                    r.value.as_deref(),
                    r.split.messages,
                    r.split.workstation,
                    r.split.cluster,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (Some("alice"), 3, 3, 1),
                (Some("bob"), 1, 0, 1),
                (Some("carol"), 1, 0, 0),
                (None, 1, 0, 1),
            ]
        );
        let samples = tally.samples();
        let at = |s: &[Sample]| -> Vec<(i32, i64)> {
            s.iter().map(|s| (s.partition, s.offset)).collect()
        };
        assert_eq!(at(&samples.workstation), [(1, 1), (1, 2)]);
        assert_eq!(at(&samples.cluster), [(1, 0), (1, 2)]);
        assert_eq!(at(&samples.overlap), [(1, 2)]);
        assert_eq!(at(&samples.missing), [(2, 0)]);
    }

    #[test]
    fn samples_are_the_newest_whatever_the_reading_order() {
        let mut set = SampleSet::default();
        for (p, o, t) in [(0, 5, 50), (1, 1, 90), (0, 6, 60), (2, 0, 10), (1, 2, 95)] {
            set.offer(&record(p, o, t, None), 3);
        }
        let kept: Vec<i64> = set.items.iter().map(|s| s.timestamp.unwrap()).collect();
        assert_eq!(kept, [60, 90, 95]);
    }

    #[test]
    fn long_values_are_shortened() {
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abcd", 4), "abcd");
        assert_eq!(shorten("ééééé", 3), "éé…");
    }
}
