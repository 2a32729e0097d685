//! A hundred thousand messages through the stream adapter on both sides while
//! the API servers restart every second and, for some messages, answer 500,
//! hang, or drop the connection.
//!
//! The faults are tied to messages (a header), so both sides meet the same
//! failure for the same message, as when one API outage hits both; restarts
//! are short enough for the client's retries to ride over them. Then the
//! default policy splits exactly: the pod takes the failed messages, the
//! workstation leaves them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use telepresence_kafka::{Client, FailurePolicy};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};
use tokio::sync::Mutex;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 4;
const ID: &str = "chaos:orders";
const PATIENCE: Duration = Duration::from_secs(120);

fn is_alices(id: usize) -> bool {
    id % 3 == 0
}

/// The fault a message meets, if any: a few hundred of each kind.
fn chaos(id: usize) -> Option<&'static str> {
    match id {
        _ if id % 499 == 7 => Some("500"),
        _ if id % 9973 == 11 => Some("hang"),
        _ if id % 1499 == 13 => Some("close"),
        _ => None,
    }
}

async fn produce(broker: &Broker, count: usize) -> BTreeMap<usize, (i32, i64)> {
    common::produce(
        broker,
        TOPIC,
        0..count,
        256,
        |id| id as i32 % PARTITIONS,
        |id| {
            let mut headers = vec![(
                "x-dev",
                if is_alices(id) { "alice" } else { "bob" }.to_owned(),
            )];
            headers.extend(chaos(id).map(|fault| ("x-chaos", fault.to_owned())));
            headers
        },
    )
    .await
}

/// A mock API for `side` on `listen`, with the message-tied faults.
async fn start_api(
    side: Side,
    listen: &str,
) -> Result<MockServer, telepresence_mock_server::Error> {
    let server = MockServer::builder()
        .side(side)
        .listen(listen)
        .journal_capacity(0)
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await?;
    server.inject(Fault::status(500).when_header("x-chaos", "500"))?;
    server.inject(Fault::delay(Duration::from_secs(2)).when_header("x-chaos", "hang"))?;
    server.inject(Fault::close().when_header("x-chaos", "close"))?;
    Ok(server)
}

/// A server slot that a restarter can empty and fill again.
type Slot = Mutex<Option<MockServer>>;

/// Restarts the server on the same address: the old one stops at once (its
/// requests in flight finish in the background) and the new one binds as
/// soon as the port is free again.
async fn restart(slot: &Slot, side: Side, address: SocketAddr) {
    let mut slot = slot.lock().await;
    drop(slot.take());
    let listen = address.to_string();
    loop {
        match start_api(side, &listen).await {
            Ok(server) => {
                *slot = Some(server);
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
        }
    }
}

fn sdk(address: SocketAddr, intercept_id: &str, policy: FailurePolicy) -> Client {
    Client::builder()
        .api_url(format!("http://{address}"))
        .intercept_id(intercept_id)
        .failure_policy(policy)
        // Room for the retries to ride over a restart; a hang (2 s) still times out.
        .timeout(Duration::from_secs(1))
        .retries(5)
        .retry_backoff(Duration::from_millis(20))
        .build()
        .unwrap()
}

fn consumer(broker: &Broker, group: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("fetch.queue.backoff.ms", "0")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

fn id_of(message: &impl Message) -> usize {
    std::str::from_utf8(message.payload().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

/// Drains `count` messages through the adapter, returning the processed ids;
/// stops at the first decision error.
async fn drain(consumer: &StreamConsumer, tp: &Client, count: u64) -> (Vec<usize>, bool) {
    let mut processed = Vec::new();
    let mut messages = tp.filter_stream(consumer, 32);
    let mut failed = false;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while messages.progress().total() < count && !failed {
        tokio::select! {
            next = messages.next() => match next.expect("the stream does not end") {
                Ok(message) => {
                    processed.push(id_of(&message));
                    messages.done(&message).unwrap();
                }
                Err(_) => failed = true,
            },
            () = tokio::time::sleep(Duration::from_millis(20)) => {
                assert!(tokio::time::Instant::now() < deadline, "stuck at {:?}", messages.progress());
            }
        }
    }
    messages.commit(CommitMode::Sync).unwrap();
    (processed, failed)
}

/// Restarts both servers every second until told to stop.
fn restarter(
    servers: Arc<[(Slot, Side, SocketAddr); 2]>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u32> {
    tokio::spawn(async move {
        let mut restarts = 0;
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (slot, side, address) in servers.iter() {
                restart(slot, *side, *address).await;
            }
            restarts += 1;
        }
        restarts
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_the_default_policy_loses_nothing_and_repeats_nothing() {
    const COUNT: usize = 100_000;
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker, COUNT).await;
    assert_eq!(landed.len(), COUNT);

    let pod_api = start_api(Side::Agent, "127.0.0.1:0").await.unwrap();
    let workstation_api = start_api(Side::Client, "127.0.0.1:0").await.unwrap();
    let (pod_address, workstation_address) = (pod_api.address(), workstation_api.address());
    let servers = Arc::new([
        (Mutex::new(Some(pod_api)), Side::Agent, pod_address),
        (
            Mutex::new(Some(workstation_api)),
            Side::Client,
            workstation_address,
        ),
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let restarts = restarter(servers.clone(), stop.clone());

    let pod = sdk(pod_address, "", FailurePolicy::Auto);
    let workstation = sdk(workstation_address, ID, FailurePolicy::Auto);
    let (pod_consumer, workstation_consumer) = (
        consumer(&broker, &pod.group_id("orders")),
        consumer(&broker, &workstation.group_id("orders")),
    );
    let ((by_pod, _), (by_workstation, _)) = tokio::join!(
        drain(&pod_consumer, &pod, COUNT as u64),
        drain(&workstation_consumer, &workstation, COUNT as u64),
    );
    stop.store(true, Ordering::SeqCst);
    let restarts = restarts.await.unwrap();
    assert!(
        restarts >= 2,
        "the servers restarted during the run ({restarts} times)"
    );

    let pod_set: BTreeSet<usize> = by_pod.iter().copied().collect();
    let workstation_set: BTreeSet<usize> = by_workstation.iter().copied().collect();
    assert_eq!(
        pod_set.len(),
        by_pod.len(),
        "the pod processed nothing twice"
    );
    assert_eq!(
        workstation_set.len(),
        by_workstation.len(),
        "the workstation processed nothing twice"
    );
    assert!(
        pod_set.is_disjoint(&workstation_set),
        "no message on both sides"
    );
    assert_eq!(
        pod_set.len() + workstation_set.len(),
        COUNT,
        "no message lost"
    );

    let failed: BTreeSet<usize> = (0..COUNT).filter(|&id| chaos(id).is_some()).collect();
    let expected: BTreeSet<usize> = (0..COUNT)
        .filter(|&id| is_alices(id) && chaos(id).is_none())
        .collect();
    assert_eq!(
        workstation_set, expected,
        "the workstation leaves the failed messages to the pod"
    );
    for (side, tp) in [("pod", &pod), ("workstation", &workstation)] {
        let stats = tp.stats();
        assert_eq!(
            stats.fallbacks,
            failed.len() as u64,
            "{side}: one fallback per failed message: {stats:?}"
        );
        assert_eq!(stats.errors, stats.fallbacks, "{side}");
        assert_eq!(stats.consumed + stats.skipped, COUNT as u64, "{side}");
        assert!(stats.retries > 0, "{side}: connections were retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_fail_stops_without_committing_past_the_failure_and_resumes() {
    const COUNT: usize = 10_000;
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce(&broker, COUNT).await;
    let workstation_api = start_api(Side::Client, "127.0.0.1:0").await.unwrap();
    let tp = sdk(workstation_api.address(), ID, FailurePolicy::Fail);
    let group = tp.group_id("orders");

    let first = consumer(&broker, &group);
    let (first_run, failed) = drain(&first, &tp, COUNT as u64).await;
    assert!(failed, "a chaos message stops the consumer");
    drop(first);
    let done: BTreeSet<usize> = first_run.iter().copied().collect();
    let committed = committed(&broker, &group);
    for partition in 0..PARTITIONS {
        let first_unprocessed = landed
            .iter()
            .filter(|(id, (p, _))| *p == partition && is_alices(**id) && !done.contains(id))
            .map(|(_, (_, offset))| *offset)
            .min();
        if let (Some(&at), Some(bound)) = (committed.get(&partition), first_unprocessed) {
            assert!(
                at <= bound,
                "partition {partition}: committed {at} past {bound}"
            );
        }
    }

    // The API recovers; the restarted consumer does the rest, once.
    workstation_api.clear_faults();
    let alices: BTreeSet<usize> = (0..COUNT).filter(|&id| is_alices(id)).collect();
    let second = consumer(&broker, &group);
    let mut messages = tp.filter_stream(&second, 32);
    let mut again = BTreeSet::new();
    tokio::time::timeout(PATIENCE, async {
        while done.len() + again.len() < alices.len() {
            let message = messages.next().await.unwrap().unwrap();
            assert!(again.insert(id_of(&message)), "nothing processed twice");
            messages.done(&message).unwrap();
        }
    })
    .await
    .expect("the rest is processed");
    assert!(done.is_disjoint(&again), "nothing processed twice");
    assert_eq!(&done | &again, alices, "nothing lost");
}

fn committed(broker: &Broker, group: &str) -> BTreeMap<i32, i64> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(TOPIC, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}
