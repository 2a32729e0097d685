//! The stream adapter on both sides while the APIs misbehave.
//!
//! The main test drives a hundred thousand messages through a pod and a
//! workstation while each side's API fails on a schedule of its own, drawn
//! from a seed: it stops (once for longer than the client's whole retry
//! budget), hangs, answers 500, answers garbage, or fails some requests. Each
//! failure starts when its side has dealt with a given share of the messages
//! (the long outage first, so that it always meets a consumer in mid-stream,
//! however fast or slow the machine), and the consumers keep polling until
//! their API's schedule is over. With the defaults (the workstation holds, the pod processes)
//! nothing may be lost; the only duplicates allowed are messages of the
//! intercept that the pod processed because its own API failed.
//!
//! The second test ties faults to messages and checks `FailurePolicy::Fail`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use telepresence_kafka::{Client, FailurePolicy, HeaderList};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 4;
const ID: &str = "chaos:orders";
/// A bound on a whole drain: a hang becomes a failure, never a pass.
const PATIENCE: Duration = Duration::from_secs(600);

fn is_alices(id: usize) -> bool {
    id % 3 == 0
}

/// A mock API for `side` on `listen`.
async fn start_api(
    side: Side,
    listen: &str,
) -> Result<MockServer, telepresence_mock_server::Error> {
    MockServer::builder()
        .side(side)
        .listen(listen)
        .journal_capacity(0)
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
}

fn sdk(address: SocketAddr, intercept_id: &str, policy: FailurePolicy) -> Client {
    Client::builder()
        .api_url(format!("http://{address}"))
        .intercept_id(intercept_id)
        .failure_policy(policy)
        .timeout(Duration::from_secs(1))
        .retries(3)
        .retry_backoff(Duration::from_millis(20))
        .hold_backoff_max(Duration::from_millis(500))
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

/// What an API does for a while.
#[derive(Clone, Copy, Debug)]
enum Misbehaviour {
    /// Not running: connections are refused.
    Down,
    /// Answers after 3 s, past the client's 1 s timeout.
    Hang,
    /// Answers 500.
    Errors,
    /// Answers 200 with a body that is no answer.
    Garbage,
    /// Answers 500 to a third of the requests.
    Flaky,
}

/// One failure: when it starts (after its side dealt with this many
/// messages), what it is, and for how long.
#[derive(Clone, Copy, Debug)]
struct Failure {
    at_progress: u64,
    what: Misbehaviour,
    lasts: Duration,
}

/// A side's failures, from the seed: a dozen, spread over the stream, the
/// first of them an outage far longer than the client's retry budget (1 s).
fn schedule(rng: &mut fastrand::Rng, count: u64) -> Vec<Failure> {
    let kinds = [
        Misbehaviour::Down,
        Misbehaviour::Hang,
        Misbehaviour::Errors,
        Misbehaviour::Garbage,
        Misbehaviour::Flaky,
    ];
    let mut failures: Vec<Failure> = (0..12)
        .map(|_| Failure {
            at_progress: rng.u64(count / 20..count * 9 / 10),
            what: kinds[rng.usize(..kinds.len())],
            lasts: Duration::from_millis(rng.u64(100..2500)),
        })
        .collect();
    failures.sort_by_key(|f| f.at_progress);
    // First, so that nothing before it can delay it past the end of the
    // stream: it starts while its side has most of its messages left.
    failures[0].what = Misbehaviour::Down;
    failures[0].lasts = Duration::from_secs(4);
    failures
}

/// An API on a fixed address that its schedule breaks and mends.
struct ChaosApi {
    side: Side,
    address: SocketAddr,
    server: tokio::sync::Mutex<Option<MockServer>>,
}

impl ChaosApi {
    async fn start(side: Side) -> Arc<Self> {
        let server = start_api(side, "127.0.0.1:0").await.unwrap();
        Arc::new(Self {
            side,
            address: server.address(),
            server: tokio::sync::Mutex::new(Some(server)),
        })
    }

    /// Runs every one of `failures` as its side's `progress` reaches it,
    /// then says so in `done`; returns how many began while the side still
    /// had messages to deal with (out of `count`).
    async fn run(
        self: Arc<Self>,
        failures: Vec<Failure>,
        progress: Arc<AtomicU64>,
        count: u64,
        done: Arc<AtomicBool>,
    ) -> usize {
        let mut mid_stream = 0;
        for failure in failures {
            while progress.load(Ordering::SeqCst) < failure.at_progress {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if progress.load(Ordering::SeqCst) < count {
                mid_stream += 1;
            }
            self.misbehave(failure).await;
        }
        done.store(true, Ordering::SeqCst);
        mid_stream
    }

    async fn misbehave(&self, failure: Failure) {
        let mut slot = self.server.lock().await;
        let fault = match failure.what {
            Misbehaviour::Down => {
                if let Some(server) = slot.take() {
                    server.shutdown().await;
                }
                tokio::time::sleep(failure.lasts).await;
                *slot = Some(self.restart().await);
                return;
            }
            Misbehaviour::Hang => Fault::delay(Duration::from_secs(3)),
            Misbehaviour::Errors => Fault::status(500),
            Misbehaviour::Garbage => Fault::body("<html>maintenance</html>"),
            Misbehaviour::Flaky => Fault::status(500).fraction(0.33),
        };
        let server = slot.as_ref().expect("running between failures");
        server.admin().inject_fault(fault).await.unwrap();
        tokio::time::sleep(failure.lasts).await;
        server.admin().clear_faults().await.unwrap();
    }

    /// A new server on the same address, as soon as the port is free again.
    async fn restart(&self) -> MockServer {
        let listen = self.address.to_string();
        loop {
            match start_api(self.side, &listen).await {
                Ok(server) => return server,
                Err(_) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }
}

/// Drains `count` messages through the adapter, publishing its progress,
/// and goes on polling until `until` is set (when given); returns the
/// processed ids, and whether a decision failed (then it stops).
async fn drain(
    consumer: &StreamConsumer,
    tp: &Client,
    count: u64,
    progress: &AtomicU64,
    until: Option<&AtomicBool>,
) -> (Vec<usize>, bool) {
    let mut processed = Vec::new();
    let mut messages = tp.filter_stream(consumer, 32);
    let mut failed = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tokio::time::timeout(PATIENCE, async {
        // The last messages may all be skipped: then `next` has nothing to
        // return, and only the tick sees that the work is done.
        let more_to_come = || until.is_some_and(|done| !done.load(Ordering::SeqCst));
        while (messages.progress().total() < count || more_to_come()) && !failed {
            tokio::select! {
                next = messages.next() => match next.expect("the stream does not end") {
                    Ok(message) => {
                        processed.push(id_of(&message));
                        messages.done(&message).unwrap();
                    }
                    Err(_) => failed = true,
                },
                _ = tick.tick() => {}
            }
            progress.store(messages.progress().total(), Ordering::SeqCst);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("stuck at {:?}", messages.progress()));
    messages.commit(CommitMode::Sync).unwrap();
    (processed, failed)
}

fn chaos_seed() -> u64 {
    match std::env::var("CHAOS_SEED") {
        Ok(seed) => seed.parse().expect("CHAOS_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_api_failures_lose_nothing_under_the_default_policy() {
    const COUNT: usize = 100_000;
    let seed = chaos_seed();
    eprintln!("chaos seed {seed} (rerun with CHAOS_SEED={seed})");
    let mut rng = fastrand::Rng::with_seed(seed);
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = common::produce(
        &broker,
        TOPIC,
        0..COUNT,
        256,
        |id| id as i32 % PARTITIONS,
        |id| {
            vec![(
                "x-dev",
                if is_alices(id) { "alice" } else { "bob" }.to_owned(),
            )]
        },
    )
    .await;
    assert_eq!(landed.len(), COUNT);

    let (pod_api, workstation_api) = (
        ChaosApi::start(Side::Agent).await,
        ChaosApi::start(Side::Client).await,
    );
    let pod = sdk(pod_api.address, "", FailurePolicy::Auto);
    let workstation = sdk(workstation_api.address, ID, FailurePolicy::Auto);
    let (pod_schedule, workstation_schedule) = (
        schedule(&mut rng, COUNT as u64),
        schedule(&mut rng, COUNT as u64),
    );
    eprintln!("pod API: {pod_schedule:?}\nworkstation API: {workstation_schedule:?}");
    let (pod_done, workstation_done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (pod_progress, workstation_progress) =
        (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let pod_chaos = tokio::spawn(pod_api.clone().run(
        pod_schedule,
        pod_progress.clone(),
        COUNT as u64,
        pod_done.clone(),
    ));
    let workstation_chaos = tokio::spawn(workstation_api.clone().run(
        workstation_schedule,
        workstation_progress.clone(),
        COUNT as u64,
        workstation_done.clone(),
    ));

    let (pod_consumer, workstation_consumer) = (
        consumer(&broker, &pod.group_id("orders")),
        consumer(&broker, &workstation.group_id("orders")),
    );
    // Each consumer goes on until its API's schedule is over too, so that
    // the last failures meet a consumer, and an API that is up again.
    let ((by_pod, pod_failed), (by_workstation, workstation_failed)) = tokio::join!(
        drain(
            &pod_consumer,
            &pod,
            COUNT as u64,
            &pod_progress,
            Some(&pod_done)
        ),
        drain(
            &workstation_consumer,
            &workstation,
            COUNT as u64,
            &workstation_progress,
            Some(&workstation_done)
        ),
    );
    let mid_stream = (pod_chaos.await.unwrap(), workstation_chaos.await.unwrap());
    let context = format!("seed {seed}");
    eprintln!(
        "{context}: failures that began in mid-stream: pod {}, workstation {}",
        mid_stream.0, mid_stream.1
    );
    assert!(
        !pod_failed && !workstation_failed,
        "{context}: no decision returns an error under Auto"
    );
    assert!(
        mid_stream.0 >= 1 && mid_stream.1 >= 1,
        "{context}: the long outage, first of each schedule, began in mid-stream"
    );

    let pod_set: BTreeSet<usize> = by_pod.iter().copied().collect();
    let workstation_set: BTreeSet<usize> = by_workstation.iter().copied().collect();
    assert_eq!(
        pod_set.len(),
        by_pod.len(),
        "{context}: the pod processed nothing twice"
    );
    assert_eq!(
        workstation_set.len(),
        by_workstation.len(),
        "{context}: the workstation processed nothing twice"
    );
    let processed = &pod_set | &workstation_set;
    let lost: Vec<usize> = (0..COUNT)
        .filter(|id| !processed.contains(id))
        .take(20)
        .collect();
    assert!(
        lost.is_empty(),
        "{context}: no message lost; lost: {lost:?}..."
    );

    let alices: BTreeSet<usize> = (0..COUNT).filter(|&id| is_alices(id)).collect();
    assert_eq!(
        workstation_set, alices,
        "{context}: the workstation processes exactly its share, held or not"
    );
    let duplicates = &pod_set & &workstation_set;
    // An outage ends with the first answer a quiet second after its last
    // failure. Falling back is fast, so a side may deal with its last
    // message while its API is still failing, and then ask nothing more:
    // one more decision each, with both APIs up again, ends what is open.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let bobs = HeaderList::new(&[("x-dev", Some(b"bob"))]);
    assert!(pod.should_consume(&bobs).await.unwrap());
    assert!(!workstation.should_consume(&bobs).await.unwrap());
    let (pod_stats, workstation_stats) = (pod.stats(), workstation.stats());
    eprintln!(
        "{context}: {} duplicates (alice's messages the pod processed because its API failed); \
         pod {pod_stats:?}; workstation {workstation_stats:?}",
        duplicates.len()
    );
    assert!(
        duplicates.is_subset(&alices),
        "{context}: only the intercept's messages can be duplicated"
    );
    assert!(
        duplicates.len() as u64 <= pod_stats.fallbacks,
        "{context}: each duplicate is a fallback of the pod ({} duplicates, {} fallbacks)",
        duplicates.len(),
        pod_stats.fallbacks
    );
    assert!(
        workstation_stats.held > 0 && workstation_stats.fallbacks == 0,
        "{context}: {workstation_stats:?}"
    );
    assert!(
        pod_stats.fallbacks > 0 && pod_stats.held == 0,
        "{context}: {pod_stats:?}"
    );
    assert!(
        workstation_stats.outages > 0 && pod_stats.outages > 0,
        "{context}"
    );
}

/// The fault a message meets in the `Fail` test, if any.
fn chaos(id: usize) -> Option<&'static str> {
    match id {
        _ if id % 499 == 7 => Some("500"),
        _ if id % 9973 == 11 => Some("hang"),
        _ if id % 1499 == 13 => Some("close"),
        _ => None,
    }
}

async fn produce_with_chaos(broker: &Broker, count: usize) -> BTreeMap<usize, (i32, i64)> {
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

/// A workstation API with the faults tied to messages.
async fn start_faulty_api() -> MockServer {
    let server = start_api(Side::Client, "127.0.0.1:0").await.unwrap();
    server
        .admin()
        .inject_fault(Fault::status(500).when_header("x-chaos", "500"))
        .await
        .unwrap();
    server
        .admin()
        .inject_fault(Fault::delay(Duration::from_secs(2)).when_header("x-chaos", "hang"))
        .await
        .unwrap();
    server
        .admin()
        .inject_fault(Fault::close().when_header("x-chaos", "close"))
        .await
        .unwrap();
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_fail_stops_without_committing_past_the_failure_and_resumes() {
    const COUNT: usize = 10_000;
    let broker = start_broker(TOPIC, PARTITIONS);
    let landed = produce_with_chaos(&broker, COUNT).await;
    let workstation_api = start_faulty_api().await;
    let tp = sdk(workstation_api.address(), ID, FailurePolicy::Fail);
    let group = tp.group_id("orders");

    let first = consumer(&broker, &group);
    let (first_run, failed) = drain(&first, &tp, COUNT as u64, &AtomicU64::new(0), None).await;
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
    workstation_api.admin().clear_faults().await.unwrap();
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
