//! rdkafka helpers shared by the commands: a client's configuration from
//! the flags and the environment, and reading offsets without joining a group.

use std::ffi::OsString;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// The variable with extra librdkafka settings, `key=value,key=value`, as
/// the example consumer reads it (Telepresence copies the pod's environment
/// to the workstation, so the same settings reach `tpk` there).
pub(crate) const OPTIONS_ENV: &str = "KAFKA_OPTIONS";

/// Parses one librdkafka setting, `KEY=VALUE`, for `-X`.
pub(crate) fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("`{text}` is not a librdkafka setting KEY=VALUE")),
    }
}

/// Parses [`OPTIONS_ENV`]'s value: settings separated by commas.
pub(crate) fn parse_options(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .filter(|option| !option.trim().is_empty())
        .map(|option| parse_option(option).map_err(|e| format!("{OPTIONS_ENV}: {e}")))
        .collect()
}

/// `KAFKA_OPTIONS`, then `-X`, so that a flag overrides the environment.
pub(crate) fn options(
    flags: &[(String, String)],
    lookup: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut options = match lookup(OPTIONS_ENV) {
        None => Vec::new(),
        Some(text) => {
            let text = text
                .into_string()
                .map_err(|_| anyhow::anyhow!("{}: not valid UTF-8", OPTIONS_ENV))?;
            parse_options(&text).map_err(anyhow::Error::msg)?
        }
    };
    options.extend(flags.iter().cloned());
    Ok(options)
}

/// A timeout flag: `5s`, `500ms`, `1m`, or a number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration such as 5s, 500ms or 1m");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "" | "s" => Duration::from_secs(number),
        "ms" => Duration::from_millis(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(bad()),
    };
    if duration.is_zero() {
        return Err(format!("`{text}`: the timeout must be more than 0"));
    }
    Ok(duration)
}

/// A configuration for `brokers` with `options` applied last, so that they
/// can override anything set here.
pub(crate) fn client_config(brokers: &str, options: &[(String, String)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in options {
        config.set(key, value);
    }
    config
}

/// A consumer in `group` that reads the group's committed offsets and
/// nothing else: it never subscribes, so it never joins the group (no
/// rebalance for the consumers in it), and it commits nothing.
pub(crate) fn observer(
    brokers: &str,
    options: &[(String, String)],
    group: &str,
) -> KafkaResult<BaseConsumer> {
    let mut config = client_config(brokers, options);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config.create()
}

/// One partition's position: what the group committed and where the log ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartitionLag {
    /// The partition.
    pub(crate) partition: i32,
    /// The group's committed offset, `None` when it has committed nothing.
    pub(crate) committed: Option<i64>,
    /// The log's first offset (low watermark).
    pub(crate) low: i64,
    /// The offset the next message will get (high watermark).
    pub(crate) high: i64,
}

impl PartitionLag {
    /// The messages the group has still to read, when it committed an offset.
    pub(crate) fn lag(&self) -> Option<i64> {
        self.committed
            .map(|committed| (self.high - committed.max(self.low)).max(0))
    }
}

/// The committed offsets of `consumer`'s group on `partitions` of `topic`,
/// against the high watermarks.
pub(crate) fn lag(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> KafkaResult<Vec<PartitionLag>> {
    let mut list = TopicPartitionList::new();
    for &partition in partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    partitions
        .iter()
        .map(|&partition| {
            let (low, high) = consumer.fetch_watermarks(topic, partition, timeout)?;
            let committed = committed
                .find_partition(topic, partition)
                .and_then(|element| match element.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                });
            Ok(PartitionLag {
                partition,
                committed,
                low,
                high,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        for bad in ["", "s", "5h", "-1s", "1.5s", "5 s"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.starts_with(&format!("`{bad}`")), "{err}");
        }
        assert!(parse_duration("0s").unwrap_err().contains("more than 0"));
    }

    #[test]
    fn options_are_key_value_pairs() {
        assert_eq!(
            parse_option("security.protocol=SASL_SSL").unwrap(),
            ("security.protocol".to_owned(), "SASL_SSL".to_owned())
        );
        assert_eq!(
            parse_option("sasl.password=a=b").unwrap().1,
            "a=b",
            "the value may hold '='"
        );
        let err = parse_option("debug").unwrap_err();
        assert!(err.contains("`debug`"), "{err}");
        assert!(parse_option("=x").is_err());
        assert_eq!(
            parse_options("a=1, b=2,").unwrap(),
            [
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
        let err = parse_options("a=1,oops").unwrap_err();
        assert!(err.starts_with("KAFKA_OPTIONS: `oops`"), "{err}");
    }

    #[test]
    fn lag_counts_from_the_commit_or_from_the_log_start() {
        let at = |committed, low, high| PartitionLag {
            partition: 0,
            committed,
            low,
            high,
        };
        assert_eq!(at(Some(3), 0, 10).lag(), Some(7));
        assert_eq!(at(Some(10), 0, 10).lag(), Some(0));
        assert_eq!(at(None, 0, 10).lag(), None);
        // A commit older than the retained log: what is left is the log.
        assert_eq!(at(Some(2), 5, 10).lag(), Some(5));
    }
}
