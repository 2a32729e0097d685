//! Kafka's side of the checks: the brokers, the topic, and the group this
//! side reads in, seen from outside it (no join, no commit).

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::groups::GroupList;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

use super::{Check, name};
use crate::kafka::{self, PartitionLag};

/// Partitions listed in a line at most; a topic with hundreds would drown it.
const LISTED_PARTITIONS: usize = 12;

/// What to check.
#[derive(Clone, Debug)]
pub(super) struct Settings {
    pub(super) brokers: String,
    pub(super) options: Vec<(String, String)>,
    pub(super) topic: Option<String>,
    /// The group this side reads in (or must), when known.
    pub(super) group: Option<String>,
    pub(super) timeout: Duration,
    /// The group line, placed after the topic's.
    pub(super) group_check: Option<Check>,
}

/// Runs the checks; blocking (librdkafka's calls are).
pub(super) fn check(settings: Settings) -> Vec<Check> {
    let mut checks = Vec::new();
    let Settings {
        brokers,
        options,
        topic,
        group,
        timeout,
        group_check,
    } = settings;
    let answered = brokers_and_topic(&brokers, &options, topic.as_deref(), timeout, &mut checks);
    checks.extend(group_check);
    let Some(group) = group else {
        checks.push(Check::info(
            name::GROUP,
            "not checked: give --group (or KAFKA_GROUP), the pod's group, or --group-id",
        ));
        return checks;
    };
    // Brokers that do not answer would only repeat their failure.
    let Ok(partitions) = answered else {
        return checks;
    };
    checks.push(members(&brokers, &options, &group, timeout));
    if let (Some(topic), Some(partitions)) = (topic, partitions) {
        checks.push(lag(
            &brokers,
            &options,
            &group,
            &topic,
            &partitions,
            timeout,
        ));
    }
    checks
}

/// The broker and topic lines; the topic's partitions when it is usable;
/// `Err` when the brokers did not answer.
fn brokers_and_topic(
    brokers: &str,
    options: &[(String, String)],
    topic: Option<&str>,
    timeout: Duration,
    checks: &mut Vec<Check>,
) -> Result<Option<Vec<i32>>, ()> {
    let metadata = kafka::client_config(brokers, options)
        .create::<BaseConsumer>()
        .and_then(|client| client.fetch_metadata(topic, timeout));
    let metadata = match metadata {
        Ok(metadata) => metadata,
        Err(error) => {
            checks.push(Check::fail(
                name::BROKER,
                format!("{brokers}: no metadata within {timeout:?}: {error}"),
                "check --brokers (or KAFKA_BROKERS): host:port of brokers reachable from here, \
                 and the security settings (-X or KAFKA_OPTIONS) the consumer uses",
            ));
            return Err(());
        }
    };
    checks.push(Check::pass(name::BROKER, broker_line(brokers, &metadata)));
    let Some(topic) = topic else {
        checks.push(Check::info(
            name::TOPIC,
            "not checked: give --topic (or KAFKA_TOPIC)",
        ));
        return Ok(None);
    };
    let (check, partitions) = topic_check(brokers, topic, &metadata);
    checks.push(check);
    Ok(partitions)
}

fn broker_line(brokers: &str, metadata: &Metadata) -> String {
    let known: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{} at {}:{}", b.id(), b.host(), b.port()))
        .collect();
    format!(
        "{brokers}: {} broker(s) answer ({})",
        known.len(),
        known.join(", ")
    )
}

fn topic_check(brokers: &str, topic: &str, metadata: &Metadata) -> (Check, Option<Vec<i32>>) {
    let found = metadata.topics().iter().find(|t| t.name() == topic);
    let missing = || {
        Check::fail(
            name::TOPIC,
            format!("{topic}: no such topic at {brokers}"),
            "check --topic (or KAFKA_TOPIC) against the topics the brokers have, or create it",
        )
    };
    let Some(found) = found else {
        return (missing(), None);
    };
    match found.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => return (missing(), None),
        Some(error) => {
            return (
                Check::fail(
                    name::TOPIC,
                    format!("{topic}: the brokers answer {error}"),
                    "check that the brokers let this client describe the topic (ACLs, -X or \
                     KAFKA_OPTIONS)",
                ),
                None,
            );
        }
    }
    let mut partitions: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    let leaderless: Vec<String> = found
        .partitions()
        .iter()
        .filter(|p| p.leader() < 0 || p.error().is_some())
        .map(|p| p.id().to_string())
        .collect();
    if partitions.is_empty() || !leaderless.is_empty() {
        return (
            Check::fail(
                name::TOPIC,
                format!(
                    "{topic}: {} partition(s), without a leader: {}",
                    partitions.len(),
                    if leaderless.is_empty() {
                        "all (none exists)".to_owned()
                    } else {
                        leaderless.join(", ")
                    }
                ),
                "the brokers cannot serve these partitions now: see the cluster's health",
            ),
            None,
        );
    }
    (
        Check::pass(
            name::TOPIC,
            format!("{topic}: {} partition(s)", partitions.len()),
        ),
        Some(partitions),
    )
}

/// Who is in the group now.
fn members(brokers: &str, options: &[(String, String)], group: &str, timeout: Duration) -> Check {
    let listed = kafka::client_config(brokers, options)
        .create::<BaseConsumer>()
        .and_then(|client| client.fetch_group_list(Some(group), timeout));
    match listed {
        Ok(list) => Check::info(name::MEMBERS, members_line(group, &list)),
        // librdkafka's mock cluster, for one, does not describe groups.
        Err(KafkaError::GroupListFetch(RDKafkaErrorCode::UnsupportedFeature)) => Check::info(
            name::MEMBERS,
            format!("{group}: the brokers do not describe groups (DescribeGroups unsupported)"),
        ),
        Err(error) => Check::fail(
            name::MEMBERS,
            format!("{group}: cannot describe the group: {error}"),
            format!(
                "check that the brokers let this client describe group {group} (ACLs, -X or \
                 KAFKA_OPTIONS)"
            ),
        ),
    }
}

fn members_line(group: &str, list: &GroupList) -> String {
    let Some(found) = list.groups().iter().find(|g| g.name() == group) else {
        return format!("{group}: no consumer in it now");
    };
    let members: Vec<(String, String)> = found
        .members()
        .iter()
        .map(|m| (m.client_id().to_owned(), m.client_host().to_owned()))
        .collect();
    describe_members(group, found.state(), &members)
}

/// The members as `client ID at host`, for one line.
fn describe_members(group: &str, state: &str, members: &[(String, String)]) -> String {
    if members.is_empty() {
        return format!("{group}: no consumer in it now (state {state})");
    }
    let listed: Vec<String> = members
        .iter()
        .map(|(client, host)| format!("{client} at {host}"))
        .collect();
    format!(
        "{group}: {} consumer(s) (state {state}): {}",
        members.len(),
        listed.join(", ")
    )
}

/// How far the group's commits are behind the end of each partition.
fn lag(
    brokers: &str,
    options: &[(String, String)],
    group: &str,
    topic: &str,
    partitions: &[i32],
    timeout: Duration,
) -> Check {
    let positions = kafka::observer(brokers, options, group)
        .and_then(|consumer| kafka::lag(&consumer, topic, partitions, timeout));
    match positions {
        Ok(positions) => Check::info(name::LAG, lag_line(group, topic, &positions)),
        Err(error) => Check::fail(
            name::LAG,
            format!("{group} on {topic}: cannot read the committed offsets: {error}"),
            format!(
                "check that the brokers let this client read group {group}'s offsets (ACLs, -X \
                 or KAFKA_OPTIONS)"
            ),
        ),
    }
}

fn lag_line(group: &str, topic: &str, positions: &[PartitionLag]) -> String {
    let committed: Vec<i64> = positions.iter().filter_map(PartitionLag::lag).collect();
    let total = if committed.is_empty() {
        "nothing committed yet (a consumer starts where auto.offset.reset says)".to_owned()
    } else {
        format!(
            "{} message(s) behind on the {} partition(s) with a commit",
            committed.iter().sum::<i64>(),
            committed.len()
        )
    };
    let mut parts: Vec<String> = positions
        .iter()
        .take(LISTED_PARTITIONS)
        .map(|p| match (p.committed, p.lag()) {
            (Some(at), Some(lag)) => format!("p{} {lag} (at {at} of {})", p.partition, p.high),
            _ => format!("p{} no commit ({} in the log)", p.partition, p.high - p.low),
        })
        .collect();
    if positions.len() > LISTED_PARTITIONS {
        parts.push(format!("{} more", positions.len() - LISTED_PARTITIONS));
    }
    format!("{group} on {topic}: {total}: {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_listed_by_client_and_host() {
        assert_eq!(
            describe_members(
                "orders",
                "Stable",
                &[
                    ("consumer-1".into(), "/10.0.0.7".into()),
                    ("consumer-2".into(), "/10.0.0.8".into())
                ]
            ),
            "orders: 2 consumer(s) (state Stable): consumer-1 at /10.0.0.7, consumer-2 at /10.0.0.8"
        );
        assert_eq!(
            describe_members("orders", "Empty", &[]),
            "orders: no consumer in it now (state Empty)"
        );
    }

    #[test]
    fn lag_is_per_partition_with_a_total_of_the_committed_ones() {
        let at = |partition, committed, low, high| PartitionLag {
            partition,
            committed,
            low,
            high,
        };
        assert_eq!(
            lag_line(
                "g",
                "t",
                &[
                    at(0, Some(1), 0, 4),
                    at(1, None, 0, 2),
                    at(2, Some(3), 0, 3)
                ]
            ),
            "g on t: 3 message(s) behind on the 2 partition(s) with a commit: \
             p0 3 (at 1 of 4), p1 no commit (2 in the log), p2 0 (at 3 of 3)"
        );
        assert_eq!(
            lag_line("g", "t", &[at(0, None, 2, 5)]),
            "g on t: nothing committed yet (a consumer starts where auto.offset.reset says): \
             p0 no commit (3 in the log)"
        );
        let many: Vec<PartitionLag> = (0..20).map(|p| at(p, Some(0), 0, 0)).collect();
        assert!(lag_line("g", "t", &many).ends_with("p11 0 (at 0 of 0), 8 more"));
    }
}
