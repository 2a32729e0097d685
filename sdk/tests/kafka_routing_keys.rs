//! Routing keys that are not plain headers, through a real Kafka-protocol
//! broker (librdkafka's mock cluster, in-process): the pod and two
//! workstations, one routing by tracing baggage and one by record key, each
//! in its own group with the stream adapter, split a topic exactly.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use telepresence_kafka::{Baggage, Client, FailurePolicy};
use telepresence_mock_server::{Intercept, MockServer, Side};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const COUNT: usize = 240;
const ALICE: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";
const TENANT_42: &str = "9c0e1d2f-3a4b-4c5d-8e6f-7a8b9c0d1e2f:orders";
const KEY_HEADER: &str = "x-kafka-key";
/// Bounds every wait on the broker; none is a fixed sleep.
const PATIENCE: Duration = Duration::from_secs(30);

/// Who takes a message: alice's workstation, the tenant's, or the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taker {
    Alice,
    Tenant42,
    Pod,
}

/// A message as produced, and who must take it.
#[derive(Debug)]
struct Produced {
    key: Option<Vec<u8>>,
    headers: Vec<(&'static str, String)>,
    taker: Taker,
}

/// Seven kinds of message, in turn.
fn message(id: usize) -> Produced {
    let key = |text: &str| Some(text.as_bytes().to_vec());
    let (key, headers, taker) = match id % 7 {
        0 => (key(&format!("tenant-42:{id}")), vec![], Taker::Tenant42),
        1 => (
            key(&format!("tenant-7:{id}")),
            vec![("baggage", "x-dev=alice;ttl=60, trace=1".to_owned())],
            Taker::Alice,
        ),
        2 => (
            key(&format!("tenant-7:{id}")),
            vec![("baggage", "x-dev=carol,broken".to_owned())],
            Taker::Pod,
        ),
        3 => (
            None,
            vec![("uberctx-x-dev", "alice".to_owned())],
            Taker::Alice,
        ),
        // A key that is not UTF-8 is no key: the pod's.
        4 => (Some(b"tenant-42\xff".to_vec()), vec![], Taker::Pod),
        // A real header wins over baggage.
        5 => (
            None,
            vec![
                ("baggage", "x-dev=alice".to_owned()),
                ("x-dev", "bob".to_owned()),
            ],
            Taker::Pod,
        ),
        _ => (
            key(&format!("tenant-42:{id}")),
            vec![("baggage", "x-dev=bob".to_owned())],
            Taker::Tenant42,
        ),
    };
    let mut headers = headers;
    headers.push(("x-id", id.to_string()));
    Produced {
        key,
        headers,
        taker,
    }
}

async fn produce(broker: &Broker) -> BTreeMap<usize, (i32, i64)> {
    common::produce_keyed(
        broker,
        TOPIC,
        0..COUNT,
        16,
        |id| id as i32 % PARTITIONS,
        |id| message(id).headers,
        |id| message(id).key,
    )
    .await
}

async fn api(side: Side, intercepts: &[Intercept]) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercepts(intercepts.iter().cloned())
        .start()
        .await
        .unwrap()
}

/// One function builds every side's client: the same options everywhere.
fn sdk(server: &MockServer) -> Client {
    Client::builder()
        .api_url(server.url())
        .intercept_id(server.env().intercept_id)
        .baggage(Baggage::members(["x-dev"]))
        .key_as_header(KEY_HEADER)
        .failure_policy(FailurePolicy::Fail)
        .build()
        .unwrap()
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

/// The committed offset of every partition of the topic that has one.
fn committed(consumer: &StreamConsumer) -> BTreeMap<i32, i64> {
    common::committed(consumer, TOPIC, PARTITIONS)
}

/// Reads through the stream adapter until the committed offsets reach `end`
/// everywhere; returns the ids of the messages handed out.
async fn drain(consumer: &StreamConsumer, tp: &Client, end: &BTreeMap<i32, i64>) -> Vec<usize> {
    let mut processed = Vec::new();
    let mut messages = tp.filter_stream(consumer, 16);
    let mut check = tokio::time::interval(Duration::from_millis(50));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        tokio::select! {
            message = messages.next() => {
                let message = message.expect("the stream does not end").expect("no error");
                let id = std::str::from_utf8(message.payload().unwrap()).unwrap().parse().unwrap();
                processed.push(id);
                messages.done(&message).unwrap();
            }
            _ = check.tick() => {
                let _ = consumer.commit_consumer_state(CommitMode::Sync);
                let committed = committed(consumer);
                if committed == *end {
                    return processed;
                }
                assert!(tokio::time::Instant::now() < deadline, "not drained: {committed:?} of {end:?}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_and_record_keys_split_a_topic_exactly_once() {
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker).await;
    let mut end = BTreeMap::new();
    for &(partition, offset) in landed.values() {
        let next = end.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }
    let alice = Intercept::new(ALICE).header("x-dev", "alice");
    let tenant = Intercept::new(TENANT_42).header(KEY_HEADER, "^tenant-42");
    let pod = api(Side::Agent, &[alice.clone(), tenant.clone()]).await;
    let alices = api(Side::Client, &[alice]).await;
    let tenants = api(Side::Client, &[tenant]).await;
    let sides = [sdk(&pod), sdk(&alices), sdk(&tenants)];
    let consumers: Vec<StreamConsumer> = sides
        .iter()
        .map(|tp| consumer(&broker, &tp.group_id("orders")))
        .collect();
    let (by_pod, by_alice, by_tenant) = tokio::join!(
        drain(&consumers[0], &sides[0], &end),
        drain(&consumers[1], &sides[1], &end),
        drain(&consumers[2], &sides[2], &end),
    );
    drop(consumers);

    let mut seen = BTreeMap::new();
    for (taker, ids) in [
        (Taker::Pod, &by_pod),
        (Taker::Alice, &by_alice),
        (Taker::Tenant42, &by_tenant),
    ] {
        for &id in ids {
            let before = seen.insert(id, taker);
            assert_eq!(before, None, "{id} processed by {before:?} and {taker:?}");
        }
    }
    let all: BTreeSet<usize> = landed.keys().copied().collect();
    assert_eq!(
        seen.keys().copied().collect::<BTreeSet<_>>(),
        all,
        "every message processed"
    );
    for (id, taker) in seen {
        assert_eq!(taker, message(id).taker, "message {id}: {:?}", message(id));
    }

    // Every side decided every message, and skipped the same ones.
    let kind = |k: usize| (0..COUNT).filter(|id| id % 7 == k).count() as u64;
    for tp in &sides {
        let stats = tp.stats();
        assert_eq!(stats.consumed + stats.skipped, COUNT as u64);
        assert_eq!(stats.non_utf8_keys, kind(4));
        assert_eq!(stats.malformed_baggage, kind(2));
    }
}
