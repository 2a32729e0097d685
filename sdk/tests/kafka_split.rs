//! The whole point, against a real Kafka-protocol broker (librdkafka's mock
//! cluster, in-process): a cluster consumer and a workstation consumer, each
//! in its own group with the stream adapter, split a topic exactly.

mod api;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use api::requests_to;
use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;

use telepresence_api::endpoint;
use telepresence_kafka::{Client, ErrorKind, FailurePolicy};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";
/// Bounds every wait on the broker; none is a fixed sleep.
const PATIENCE: Duration = Duration::from_secs(30);

/// Who each message is for: a third are alice's, in every partition.
fn developer(id: usize) -> Option<&'static str> {
    match (id / PARTITIONS as usize) % 3 {
        0 => Some("alice"),
        1 => Some("bob"),
        _ => None,
    }
}

/// Produces `count` messages with ids `first..`, returning where each landed.
async fn produce(broker: &Broker, first: usize, count: usize) -> BTreeMap<usize, (i32, i64)> {
    common::produce(
        broker,
        TOPIC,
        first..first + count,
        1,
        |id| id as i32 % PARTITIONS,
        |id| {
            let mut headers = vec![
                ("x-id", id.to_string()),
                ("x-path", format!("/orders/{id}")),
            ];
            headers.extend(developer(id).map(|dev| ("x-dev", dev.to_owned())));
            headers
        },
    )
    .await
}

fn consumer(broker: &Broker, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        // The next-generation protocol: no initial rebalance delay in the mock.
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

fn intercept() -> Intercept {
    Intercept::new(ID)
        .header("x-dev", "alice")
        .path_prefix("/orders/")
        .metadata("owner", "alice")
}

async fn api(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(intercept())
        .start()
        .await
        .unwrap()
}

fn sdk(server: &MockServer, policy: FailurePolicy) -> Client {
    let env = server.env();
    Client::builder()
        .api_url(server.url())
        .intercept_id(env.intercept_id)
        .path_from_header("x-path")
        .failure_policy(policy)
        .build()
        .unwrap()
}

/// The committed offset of every partition of the topic that has one.
fn committed(consumer: &StreamConsumer) -> BTreeMap<i32, i64> {
    common::committed(consumer, TOPIC, PARTITIONS)
}

/// Reads through the stream adapter until the committed offsets reach `end`
/// on every partition, and returns the ids of the messages it processed.
///
/// Like a consumer that works on several messages at once, it holds up to
/// eight handed-out messages before marking the oldest done, and marks the
/// rest done on every check. Each check commits and asserts that no
/// partition's committed offset is past a message still held.
async fn drain(consumer: &StreamConsumer, tp: &Client, end: &BTreeMap<i32, i64>) -> Vec<usize> {
    let mut processed = Vec::new();
    let mut messages = tp.filter_stream(consumer, 16);
    let mut held = std::collections::VecDeque::new();
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        tokio::select! {
            message = messages.next() => {
                let message = message.expect("the stream does not end").expect("no error");
                processed.push(id_of(&message));
                held.push_back(message);
                if held.len() > 8 {
                    messages.done(&held.pop_front().unwrap()).unwrap();
                }
            }
            _ = check.tick() => {
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                let committed = committed(consumer);
                for message in &held {
                    let at = committed.get(&message.partition()).copied().unwrap_or(0);
                    assert!(at <= message.offset(), "committed {at} past held {}/{}", message.partition(), message.offset());
                }
                if committed == *end && held.is_empty() {
                    return processed;
                }
                for message in held.drain(..) {
                    messages.done(&message).unwrap();
                }
                assert!(tokio::time::Instant::now() < deadline, "not drained: {committed:?} of {end:?}");
            }
        }
    }
}

/// The next offset of every partition after `landed`.
fn ends(landed: &BTreeMap<usize, (i32, i64)>) -> BTreeMap<i32, i64> {
    let mut end = BTreeMap::new();
    for &(partition, offset) in landed.values() {
        let next = end.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }
    end
}

/// The first message of each partition a fresh consumer of `group` receives.
async fn first_per_partition(broker: &Broker, group: &str) -> BTreeMap<i32, i64> {
    let consumer = consumer(broker, group);
    let mut first = BTreeMap::new();
    tokio::time::timeout(PATIENCE, async {
        while first.len() < PARTITIONS as usize {
            let message = consumer.recv().await.unwrap();
            first.entry(message.partition()).or_insert(message.offset());
        }
    })
    .await
    .expect("a message on every partition");
    first
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_and_the_workstation_split_a_topic_exactly_once() {
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker, 0, 900).await;
    let end = ends(&landed);
    let (pod, workstation) = (api(Side::Agent).await, api(Side::Client).await);
    let (cluster_tp, workstation_tp) = (
        sdk(&pod, FailurePolicy::Fail),
        sdk(&workstation, FailurePolicy::Fail),
    );
    let cluster_group = cluster_tp.group_id("orders");
    let workstation_group = workstation_tp.group_id("orders");
    assert_eq!(cluster_group, "orders");
    assert_ne!(workstation_group, cluster_group);

    let (cluster_consumer, workstation_consumer) = (
        consumer(&broker, &cluster_group),
        consumer(&broker, &workstation_group),
    );
    let (by_cluster, by_workstation) = tokio::join!(
        drain(&cluster_consumer, &cluster_tp, &end),
        drain(&workstation_consumer, &workstation_tp, &end),
    );
    drop((cluster_consumer, workstation_consumer));

    let cluster: BTreeSet<usize> = by_cluster.iter().copied().collect();
    let workstation: BTreeSet<usize> = by_workstation.iter().copied().collect();
    assert_eq!(
        cluster.len(),
        by_cluster.len(),
        "the cluster processed nothing twice"
    );
    assert_eq!(
        workstation.len(),
        by_workstation.len(),
        "the workstation processed nothing twice"
    );
    assert!(
        cluster.is_disjoint(&workstation),
        "no message processed on both sides"
    );
    let all: BTreeSet<usize> = landed.keys().copied().collect();
    assert_eq!(&cluster | &workstation, all, "every message processed");
    let alices: BTreeSet<usize> = all
        .iter()
        .copied()
        .filter(|&id| developer(id) == Some("alice"))
        .collect();
    assert_eq!(
        workstation, alices,
        "the workstation processed exactly alice's messages"
    );

    // Restarted, each group resumes after everything: new messages come first.
    let sentinels = produce(&broker, 900, PARTITIONS as usize).await;
    let expected: BTreeMap<i32, i64> = sentinels.values().copied().collect();
    assert_eq!(first_per_partition(&broker, &cluster_group).await, expected);
    assert_eq!(
        first_per_partition(&broker, &workstation_group).await,
        expected
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fail_the_consumer_stops_without_committing_past_the_failed_message() {
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker, 0, 90).await;
    let workstation = api(Side::Client).await;
    let tp = sdk(&workstation, FailurePolicy::Fail);
    let group = tp.group_id("orders");
    // The 20th decision fails.
    workstation
        .admin()
        .inject_fault(
            Fault::status(500)
                .after(19)
                .times(1)
                .endpoint("/consume-here"),
        )
        .await
        .unwrap();

    let consumer = consumer(&broker, &group);
    let mut first_run = BTreeSet::new();
    {
        // A careless consumer: it logs the failure and reads on to the end
        // of the topic. The failed message must still hold its partition back.
        let mut messages = tp.filter_stream(&consumer, 4);
        let mut failures = 0;
        let mut check = tokio::time::interval(Duration::from_millis(20));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            tokio::select! {
                message = messages.next() => match message.expect("the stream does not end") {
                    Ok(message) => {
                        first_run.insert(id_of(&message));
                        messages.done(&message).unwrap();
                    }
                    Err(error) => {
                        assert_eq!(error.kind(), ErrorKind::Status, "{error}");
                        failures += 1;
                    }
                },
                _ = check.tick() => {
                    if requests_to(&workstation, endpoint::CONSUME_HERE).await == landed.len() {
                        break;
                    }
                    assert!(tokio::time::Instant::now() < deadline, "every message decided");
                }
            }
        }
        assert_eq!(failures, 1);
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    let failed: usize = workstation
        .admin()
        .journal()
        .await
        .unwrap()
        .iter()
        .find(|e| e.fault.is_some())
        .and_then(|e| e.header("x-id")?.parse().ok())
        .expect("the failed request is journaled with its message's id");
    let (partition, offset) = landed[&failed];
    let committed_after_failure = committed(&consumer);
    assert!(
        committed_after_failure
            .get(&partition)
            .is_none_or(|&c| c <= offset),
        "committed {committed_after_failure:?} moved past the failed message at {partition}/{offset}"
    );
    drop(consumer);

    // Restarted with a healthy API, the rest is processed, the failed
    // message included. Only what the careless consumer processed after the
    // failure, in the failed message's partition, comes again.
    let consumer = self::consumer(&broker, &group);
    let second_run: BTreeSet<usize> = drain(&consumer, &tp, &ends(&landed))
        .await
        .into_iter()
        .collect();
    for id in first_run.intersection(&second_run) {
        let (p, o) = landed[id];
        assert!(
            p == partition && o > offset,
            "{id} at {p}/{o} processed twice"
        );
    }
    let alices: BTreeSet<usize> = landed
        .keys()
        .copied()
        .filter(|&id| developer(id) == Some("alice"))
        .collect();
    assert_eq!(&first_run | &second_run, alices, "nothing lost");
    if developer(failed) == Some("alice") {
        assert!(second_run.contains(&failed));
    }
}

/// The crate's quick start, as written: one decision per message, every
/// offset committed. Stops after `count` messages.
async fn quick_start_loop(consumer: &StreamConsumer, tp: &Client, count: usize) -> BTreeSet<usize> {
    let mut processed = BTreeSet::new();
    for _ in 0..count {
        let msg = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .expect("a message")
            .unwrap();
        if tp.should_consume(&msg).await.unwrap() {
            processed.insert(id_of(&msg));
        }
        consumer.commit_message(&msg, CommitMode::Async).unwrap();
    }
    processed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_loop_processes_each_sides_share() {
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker, 0, 60).await;
    let (pod, workstation) = (api(Side::Agent).await, api(Side::Client).await);
    let (cluster_tp, workstation_tp) = (
        sdk(&pod, FailurePolicy::Auto),
        sdk(&workstation, FailurePolicy::Auto),
    );
    let (cluster_consumer, workstation_consumer) = (
        consumer(&broker, &cluster_tp.group_id("orders")),
        consumer(&broker, &workstation_tp.group_id("orders")),
    );
    let (cluster, workstation) = tokio::join!(
        quick_start_loop(&cluster_consumer, &cluster_tp, landed.len()),
        quick_start_loop(&workstation_consumer, &workstation_tp, landed.len()),
    );
    let alices: BTreeSet<usize> = landed
        .keys()
        .copied()
        .filter(|&id| developer(id) == Some("alice"))
        .collect();
    let others: BTreeSet<usize> = landed
        .keys()
        .copied()
        .filter(|id| !alices.contains(id))
        .collect();
    assert_eq!(workstation, alices);
    assert_eq!(cluster, others);
}

fn id_of(message: &impl Message) -> usize {
    std::str::from_utf8(message.payload().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}
