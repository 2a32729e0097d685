//! The text form of the report.

use std::io::{self, Write};

use super::Outcome;
use super::judge::Decider;
use super::tally::{Histogram, Sample, Split, shorten};

/// Partitions listed one per line; the JSON form lists them all.
const LISTED_PARTITIONS: usize = 8;
/// Values listed per header; the others are summed in one row.
const LISTED_VALUES: usize = 10;
/// Characters of a header value shown in the histogram.
const VALUE_CHARS: usize = 40;
/// Width the explanations are wrapped to.
const WIDTH: usize = 92;

/// Writes `outcome` for people.
pub(super) fn render(outcome: &Outcome, out: &mut dyn Write) -> io::Result<()> {
    source(outcome, out)?;
    decider(&outcome.decided_by, out)?;
    writeln!(out)?;
    counts(outcome, out)?;
    for histogram in &outcome.histograms {
        writeln!(out)?;
        values(outcome, histogram, out)?;
    }
    samples(outcome, out)?;
    writeln!(out)?;
    verdict(outcome, out)?;
    if outcome.watching == Some(true) {
        writeln!(out, "(watching for new messages: Ctrl-C to stop)")?;
    }
    Ok(())
}

fn source(outcome: &Outcome, out: &mut dyn Write) -> io::Result<()> {
    let partitions = &outcome.partitions;
    writeln!(
        out,
        "Topic {} at {}: the last {} messages of each of its {} partition{}, {} read",
        outcome.topic,
        outcome.brokers,
        outcome.last,
        partitions.len(),
        plural(partitions.len() as u64),
        outcome.counts.messages,
    )?;
    for window in partitions.iter().take(LISTED_PARTITIONS) {
        writeln!(
            out,
            "  partition {}: offsets {}..{}, {} read",
            window.partition, window.from, window.to, window.read
        )?;
    }
    if partitions.len() > LISTED_PARTITIONS {
        writeln!(
            out,
            "  and {} more partitions (--json lists them)",
            partitions.len() - LISTED_PARTITIONS
        )?;
    }
    Ok(())
}

fn decider(decider: &Decider, out: &mut dyn Write) -> io::Result<()> {
    let (container_port, path) = match decider {
        Decider::Offline {
            telepresence_version,
            intercepts_from,
            intercepts,
            workstation_intercept,
            container_port,
            path,
        } => {
            writeln!(
                out,
                "Decided offline by Telepresence {telepresence_version}'s rules, with the \
                 intercepts from the {intercepts_from}:"
            )?;
            for intercept in intercepts {
                let mine = if intercept.id == *workstation_intercept {
                    "  <- the workstation's"
                } else {
                    ""
                };
                writeln!(out, "  {intercept}{mine}")?;
            }
            (container_port, path)
        }
        Decider::Live {
            cluster_api,
            workstation_api,
            workstation_intercept,
            container_port,
            path,
        } => {
            writeln!(out, "Decided live by both sides' Telepresence APIs:")?;
            writeln!(out, "  cluster:     {cluster_api}")?;
            writeln!(
                out,
                "  workstation: {workstation_api}, intercept ID {workstation_intercept:?}"
            )?;
            (container_port, path)
        }
    };
    let port = container_port.map_or_else(|| "not sent".to_owned(), |p| p.to_string());
    let path = path.as_deref().unwrap_or("not sent");
    writeln!(
        out,
        "  the consumers' queries: containerPort {port}, path {path}"
    )
}

fn counts(outcome: &Outcome, out: &mut dyn Write) -> io::Result<()> {
    let split = &outcome.counts;
    let percent = |n: u64| {
        if split.messages == 0 {
            String::new()
        } else {
            format!("{:.1}%", n as f64 * 100.0 / split.messages as f64)
        }
    };
    let mut rows = vec![
        vec![
            "Processed by".to_owned(),
            "messages".to_owned(),
            String::new(),
        ],
        vec![
            "the workstation".to_owned(),
            split.workstation.to_string(),
            percent(split.workstation),
        ],
        vec![
            "the cluster".to_owned(),
            split.cluster.to_string(),
            percent(split.cluster),
        ],
    ];
    if let Some(others) = split.other_workstations {
        rows.push(vec![
            "other workstations".to_owned(),
            others.to_string(),
            percent(others),
        ]);
    }
    rows.push(vec![
        "twice or more (overlap)".to_owned(),
        split.overlap.to_string(),
        percent(split.overlap),
    ]);
    rows.push(vec![
        "nobody (missing)".to_owned(),
        split.missing.to_string(),
        percent(split.missing),
    ]);
    table(&rows, out)
}

fn values(outcome: &Outcome, histogram: &Histogram, out: &mut dyn Write) -> io::Result<()> {
    let totals = &outcome.counts;
    let mut header = vec![
        format!("{}:", histogram.header),
        "messages".to_owned(),
        "workstation".to_owned(),
        "cluster".to_owned(),
    ];
    let others = totals.other_workstations.is_some();
    let overlap = totals.overlap > 0;
    let missing = totals.missing > 0;
    if others {
        header.push("others".to_owned());
    }
    if overlap {
        header.push("overlap".to_owned());
    }
    if missing {
        header.push("missing".to_owned());
    }
    let row = |label: String, split: &Split| {
        let mut row = vec![
            label,
            split.messages.to_string(),
            split.workstation.to_string(),
            split.cluster.to_string(),
        ];
        if others {
            row.push(split.other_workstations.unwrap_or(0).to_string());
        }
        if overlap {
            row.push(split.overlap.to_string());
        }
        if missing {
            row.push(split.missing.to_string());
        }
        row
    };
    let mut rows = vec![header];
    for value in histogram.values.iter().take(LISTED_VALUES) {
        let label = match &value.value {
            Some(text) => format!("{:?}", shorten(text, VALUE_CHARS)),
            None => "(absent)".to_owned(),
        };
        rows.push(row(label, &value.split));
    }
    let mut rest = Split {
        other_workstations: totals.other_workstations.map(|_| 0),
        ..Split::default()
    };
    let mut hidden = 0;
    let beyond = histogram
        .values
        .iter()
        .skip(LISTED_VALUES)
        .map(|v| &v.split);
    for split in beyond.chain(&histogram.other_values) {
        hidden += 1;
        rest.messages += split.messages;
        rest.workstation += split.workstation;
        rest.cluster += split.cluster;
        rest.overlap += split.overlap;
        rest.missing += split.missing;
        if let (Some(sum), Some(n)) = (&mut rest.other_workstations, split.other_workstations) {
            *sum += n;
        }
    }
    if hidden > 0 {
        let label = match histogram.other_values {
            Some(_) => "(more values)".to_owned(),
            None => format!("({hidden} more values)"),
        };
        rows.push(row(label, &rest));
    }
    table(&rows, out)
}

fn samples(outcome: &Outcome, out: &mut dyn Write) -> io::Result<()> {
    let counts = &outcome.counts;
    let samples = &outcome.samples;
    let kinds = [
        (
            "The workstation's",
            &samples.workstation,
            counts.workstation,
        ),
        ("The cluster's", &samples.cluster, counts.cluster),
        ("Processed twice or more", &samples.overlap, counts.overlap),
        ("Processed by nobody", &samples.missing, counts.missing),
    ];
    for (title, list, total) in kinds {
        if list.is_empty() {
            continue;
        }
        writeln!(out)?;
        writeln!(out, "{title}, the newest {} of {total}:", list.len())?;
        for sample in list {
            writeln!(out, "  {}", sample_line(&outcome.topic, sample))?;
        }
    }
    Ok(())
}

fn sample_line(topic: &str, sample: &Sample) -> String {
    let headers: Vec<String> = sample
        .headers
        .iter()
        .map(|h| match &h.value {
            Some(value) => format!("{}={value}", h.name),
            None => format!("{}=(null)", h.name),
        })
        .collect();
    let headers = if headers.is_empty() {
        "(no headers)".to_owned()
    } else {
        headers.join(" ")
    };
    format!("{topic}/{}@{}  {headers}", sample.partition, sample.offset)
}

fn verdict(outcome: &Outcome, out: &mut dyn Write) -> io::Result<()> {
    let counts = &outcome.counts;
    let live = outcome.decided_by.is_live();
    if counts.messages == 0 {
        return writeln!(out, "No message to preview: the partitions are empty.");
    }
    if outcome.passed {
        let text = if outcome.decided_by.has_others() {
            "Every message is processed exactly once: each workstation takes what its \
             intercept matches, and the cluster the rest."
        } else {
            "Every message is processed exactly once: the workstation takes what its \
             intercept matches, and the cluster the rest."
        };
        return wrap(text, out);
    }
    if counts.overlap > 0 {
        let why = if live {
            "the cluster's API does not leave them to an intercept, yet the workstation's API \
             takes them: the two sides do not agree on the intercept. A different intercept on \
             each side, a stale one on the agent, a workstation intercept ID the agent does not \
             know, or the agent looking at another container port than the intercept's (the \
             consumers' containerPort: --port) all do this."
        } else {
            "several intercepts match them (every workstation whose intercept matches takes \
             a message), or the agent looks at another container port than the workstation's \
             intercept (the consumers' containerPort: --port; the workload's ports: \
             --workload-port)."
        };
        wrap(
            &format!(
                "{} message{} would be processed twice (overlap): {why}",
                counts.overlap,
                plural(counts.overlap)
            ),
            out,
        )?;
    }
    if counts.missing > 0 {
        if counts.overlap > 0 {
            writeln!(out)?;
        }
        let why = if live {
            "the cluster's API leaves them to an intercept, and the workstation's API does not \
             take them: unless another workstation's intercept does, nobody processes them. \
             Different filters on each side, or an intercept gone from the workstation but not \
             from the agent (stale), do this."
        } else {
            "the agent leaves them to an intercept whose workstation does not take them."
        };
        wrap(
            &format!(
                "{} message{} would be processed by nobody (missing): {why}",
                counts.missing,
                plural(counts.missing)
            ),
            out,
        )?;
    }
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes `rows` as columns: the first left-aligned, the others right-aligned;
/// every row but the first indented.
fn table(rows: &[Vec<String>], out: &mut dyn Write) -> io::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for (i, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let indent = if c == 0 && i > 0 { 2 } else { 0 };
            widths[c] = widths[c].max(cell.chars().count() + indent);
        }
    }
    for (i, row) in rows.iter().enumerate() {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c == 0 {
                let indented = if i > 0 {
                    format!("  {cell}")
                } else {
                    cell.clone()
                };
                line.push_str(&format!("{indented:<width$}", width = widths[0]));
            } else {
                line.push_str(&format!("  {cell:>width$}", width = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Writes `text` wrapped at [`WIDTH`].
fn wrap(text: &str, out: &mut dyn Write) -> io::Result<()> {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WIDTH {
            writeln!(out, "{line}")?;
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_numbers_right() {
        let rows = vec![
            vec!["h:".to_owned(), "messages".to_owned()],
            vec!["\"a\"".to_owned(), "7".to_owned()],
            vec!["(absent)".to_owned(), "100".to_owned()],
        ];
        let mut out = Vec::new();
        table(&rows, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "h:          messages\n  \"a\"              7\n  (absent)       100\n"
        );
    }

    #[test]
    fn text_wraps_between_words() {
        let mut out = Vec::new();
        wrap(&"word ".repeat(30), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= WIDTH), "{text}");
        assert_eq!(text.split_whitespace().count(), 30);
    }
}
