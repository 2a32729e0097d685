//! The stream adapter inside a consumer group: a rebalance while decisions
//! are in flight, and a hold longer than the consumer's poll interval.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use telepresence_kafka::stream::{FilterContext, ManagedConsumer, Rebalances};
use telepresence_kafka::{Client, HeaderList};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};
use tokio::sync::Mutex;

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 4;
const ID: &str = "group:orders";
const PATIENCE: Duration = Duration::from_secs(300);

fn is_alices(id: usize) -> bool {
    id % 3 == 0
}

async fn produce(broker: &Broker, count: usize) {
    common::produce(
        broker,
        TOPIC,
        0..count,
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
}

async fn api(side: Side, listen: &str) -> MockServer {
    MockServer::builder()
        .side(side)
        .listen(listen)
        .journal_capacity(0)
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

fn consumer(broker: &Broker, group: &str, extra: &[(&str, &str)]) -> StreamConsumer<FilterContext> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("fetch.queue.backoff.ms", "0");
    for (key, value) in extra {
        config.set(*key, *value);
    }
    let consumer: StreamConsumer<FilterContext> = config
        .create_with_context(FilterContext::default())
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

/// What one consumer of a group handed out, in order.
#[derive(Default)]
struct Member {
    processed: Mutex<Vec<usize>>,
    progress: AtomicU64,
    revoked: AtomicU64,
}

/// Processes messages one at a time, as a user's loop would, until `stop`.
async fn run_member(
    consumer: StreamConsumer<FilterContext>,
    tp: Client,
    member: Arc<Member>,
    stop: Arc<AtomicBool>,
) {
    let mut messages = tp.filter_stream(&consumer, 32);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            next = messages.next() => {
                let message = next.expect("the stream does not end").expect("no decision fails");
                member.processed.lock().await.push(id_of(&message));
                messages.done(&message).unwrap();
            }
            _ = tick.tick() => {}
        }
        let progress = messages.progress();
        member.progress.store(progress.total(), Ordering::SeqCst);
        member.revoked.store(progress.revoked, Ordering::SeqCst);
    }
    messages.commit(CommitMode::Sync).unwrap();
}

async fn until(what: &str, condition: impl AsyncFn() -> bool) {
    tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("waited too long for {what}"));
}

/// A second pod joins the group while the first has decisions in flight:
/// partitions move, and every message of the pod's share is processed once,
/// by one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_mid_stream_loses_nothing_and_hands_out_nothing_twice() {
    const COUNT: usize = 20_000;
    let broker = start_broker(TOPIC, PARTITIONS);
    produce(&broker, COUNT).await;
    let pod_api = api(Side::Agent, "127.0.0.1:0").await;
    // Slow answers keep a full window of decisions in flight.
    pod_api
        .admin()
        .inject_fault(Fault::delay(Duration::from_millis(5)))
        .await
        .unwrap();
    let tp = Client::builder().api_url(pod_api.url()).build().unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (first, second) = (Arc::new(Member::default()), Arc::new(Member::default()));
    // Small fetches interleave the partitions in the window of decisions, so
    // that a revocation finds messages of its partitions there.
    let small_fetches = [("max.partition.fetch.bytes", "512")];
    let first_consumer = consumer(&broker, "orders", &small_fetches);
    let first_context = first_consumer.context().clone();
    let first_task = tokio::spawn(run_member(
        first_consumer,
        tp.clone(),
        first.clone(),
        stop.clone(),
    ));
    until("the first pod to be under way", async || {
        first.progress.load(Ordering::SeqCst) >= COUNT as u64 / 4
    })
    .await;

    let second_consumer = consumer(&broker, "orders", &small_fetches);
    let second_context = second_consumer.context().clone();
    let second_task = tokio::spawn(run_member(
        second_consumer,
        tp.clone(),
        second.clone(),
        stop.clone(),
    ));

    let share: BTreeSet<usize> = (0..COUNT).filter(|&id| !is_alices(id)).collect();
    until("the pod's share to be processed", async || {
        let done = first.processed.lock().await.len() + second.processed.lock().await.len();
        done >= share.len()
    })
    .await;
    // Anything handed out twice would show up now, or soon after.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Counted before the consumers close, which revokes their partitions too.
    let revocations = (
        first_context.rebalances().count(),
        second_context.rebalances().count(),
    );
    stop.store(true, Ordering::SeqCst);
    first_task.await.unwrap();
    second_task.await.unwrap();

    let (a, b) = (
        first.processed.lock().await.clone(),
        second.processed.lock().await.clone(),
    );
    let (set_a, set_b): (BTreeSet<usize>, BTreeSet<usize>) =
        (a.iter().copied().collect(), b.iter().copied().collect());
    assert!(revocations.0 >= 1, "the first pod gave partitions up");
    assert!(
        !b.is_empty(),
        "the second pod got partitions and processed messages"
    );
    assert_eq!(
        set_a.len(),
        a.len(),
        "the first pod processed nothing twice"
    );
    assert_eq!(
        set_b.len(),
        b.len(),
        "the second pod processed nothing twice"
    );
    let twice: Vec<&usize> = set_a.intersection(&set_b).take(10).collect();
    assert!(
        twice.is_empty(),
        "no message handed out twice within the group: {twice:?}"
    );
    assert_eq!(&set_a | &set_b, share, "nothing lost");
    eprintln!(
        "first pod: {} processed, {} undecided messages dropped at revocation; second pod: {} processed; revocations {} and {}",
        a.len(),
        first.revoked.load(Ordering::SeqCst),
        b.len(),
        revocations.0,
        revocations.1
    );
}

/// The workstation's API is away for longer than `max.poll.interval.ms`:
/// the adapter pauses the held partitions and keeps polling, so the
/// consumer never leaves its group, and nothing is lost or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_longer_than_the_poll_interval_keeps_the_consumer_in_its_group() {
    const COUNT: usize = 3_000;
    let broker = start_broker(TOPIC, PARTITIONS);
    produce(&broker, COUNT).await;
    let first_api = api(Side::Client, "127.0.0.1:0").await;
    let address = first_api.address();
    let tp = Client::builder()
        .api_url(first_api.url())
        .intercept_id(ID)
        .timeout(Duration::from_millis(200))
        .hold_backoff_max(Duration::from_millis(200))
        .build()
        .unwrap();
    let consumer = consumer(
        &broker,
        &tp.group_id("orders"),
        &[("max.poll.interval.ms", "1500")],
    );
    let context = consumer.context().clone();
    let member = Arc::new(Member::default());
    let stop = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(run_member(
        consumer,
        tp.clone(),
        member.clone(),
        stop.clone(),
    ));

    until("the workstation to be under way", async || {
        member.progress.load(Ordering::SeqCst) >= COUNT as u64 / 3
    })
    .await;
    first_api.shutdown().await;
    // Away for three poll intervals, while the held decisions retry.
    until("decisions to be held", async || tp.stats().held > 0).await;
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let _second_api = api(Side::Client, &address.to_string()).await;

    let alices: BTreeSet<usize> = (0..COUNT).filter(|&id| is_alices(id)).collect();
    until("the workstation's share", async || {
        member.processed.lock().await.len() >= alices.len()
    })
    .await;
    // Counted before the consumer closes, which revokes its partitions too.
    let revocations = context.rebalances().count();
    stop.store(true, Ordering::SeqCst);
    task.await.unwrap();

    let processed = member.processed.lock().await.clone();
    let set: BTreeSet<usize> = processed.iter().copied().collect();
    assert_eq!(set.len(), processed.len(), "nothing processed twice");
    assert_eq!(set, alices, "nothing lost");
    assert_eq!(
        revocations, 0,
        "the consumer kept its partitions through the hold"
    );
    let stats = tp.stats();
    assert!(stats.held > 0 && stats.fallbacks == 0, "{stats:?}");
}

/// A consumer that records what is stored and reports revocations.
#[derive(Default)]
struct Recorder {
    rebalances: Rebalances,
    stored: std::sync::Mutex<Vec<(i32, i64)>>,
}

impl ManagedConsumer for Recorder {
    fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
        let mut stored = self.stored.lock().unwrap();
        for element in offsets.elements() {
            if let Offset::Offset(next) = element.offset() {
                stored.push((element.partition(), next));
            }
        }
        Ok(())
    }
    fn commit_stored(&self, _: CommitMode) -> KafkaResult<()> {
        Ok(())
    }
    fn rebalances(&self) -> Option<&Rebalances> {
        Some(&self.rebalances)
    }
}

/// A message as received, with an `x-dev` header when `dev` is given.
fn received(partition: i32, offset: i64, dev: Option<&str>) -> KafkaResult<OwnedMessage> {
    let headers = match dev {
        Some(dev) => OwnedHeaders::new().insert(Header {
            key: "x-dev",
            value: Some(dev),
        }),
        None => OwnedHeaders::new(),
    };
    Ok(OwnedMessage::new(
        Some(format!("{partition}/{offset}").into_bytes()),
        None,
        TOPIC.to_owned(),
        Timestamp::NotAvailable,
        partition,
        offset,
        Some(headers),
    ))
}

/// Skips before a message still pending are stored with that message's
/// `done`, in one store; skips with nothing pending after them are stored
/// before the stream returns control.
#[tokio::test]
async fn skips_before_a_pending_message_are_stored_with_its_done() {
    let workstation_api = api(Side::Client, "127.0.0.1:0").await;
    // Answers from the cache, so that one poll decides every message.
    let tp = Client::builder()
        .api_url(workstation_api.url())
        .intercept_id(ID)
        .decision_cache(Duration::from_secs(600), ["x-dev"])
        .build()
        .unwrap();
    for dev in ["alice", "bob"] {
        let headers = [("x-dev", Some(dev.as_bytes()))];
        tp.should_consume(&HeaderList::new(&headers)).await.unwrap();
    }
    let devs = ["bob", "bob", "alice", "bob", "bob"];
    let partition: Vec<_> = (0..)
        .zip(devs)
        .map(|(offset, dev)| received(0, offset, Some(dev)))
        .collect();
    let recorder = Recorder::default();
    let mut messages = tp.filter_messages(&recorder, futures_util::stream::iter(partition), 32);

    let alices = messages.next().await.unwrap().unwrap();
    assert_eq!(alices.offset(), 2);
    let stored = || recorder.stored.lock().unwrap().clone();
    assert_eq!(stored(), [], "the skips wait for the pending message");
    messages.done(&alices).unwrap();
    assert_eq!(
        stored(),
        [(0, 3)],
        "one store for the skips and the message"
    );
    assert!(messages.next().await.is_none());
    assert_eq!(stored(), [(0, 3), (0, 5)], "the trailing skips");
}

/// What the adapter does at a revocation, step by step: the messages of the
/// revoked partition it received but has not let out are dropped, the
/// others go on; nothing of the revoked partition is stored afterwards.
#[tokio::test]
async fn a_revocation_drops_the_undecided_messages_of_the_revoked_partitions() {
    let pod_api = api(Side::Agent, "127.0.0.1:0").await;
    let tp = Client::builder().api_url(pod_api.url()).build().unwrap();
    let received: Vec<KafkaResult<OwnedMessage>> = (0..4)
        .flat_map(|offset| [received(0, offset, None), received(1, offset, None)])
        .collect();
    let recorder = Recorder::default();
    let mut messages = tp.filter_messages(&recorder, futures_util::stream::iter(received), 32);

    // One poll receives all eight and starts their decisions...
    let first = futures_util::poll!(messages.next());
    assert!(first.is_pending(), "the decisions are in flight");
    // ...then partition 1 is revoked before any decision is let out.
    let mut revoked = TopicPartitionList::new();
    revoked.add_partition(TOPIC, 1);
    recorder.rebalances.revoking(&revoked);

    let mut handed_out = Vec::new();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        handed_out.push((message.partition(), message.offset()));
        messages.done(&message).unwrap();
    }
    assert_eq!(handed_out, [(0, 0), (0, 1), (0, 2), (0, 3)]);
    assert_eq!(messages.progress().revoked, 4);
    let stored = recorder.stored.lock().unwrap().clone();
    assert!(
        stored.iter().all(|(partition, _)| *partition == 0),
        "{stored:?}"
    );
    assert_eq!(stored.last(), Some(&(0, 4)));
}

/// A consumer that stops (its close revokes its partitions, which commits
/// from inside librdkafka's rebalance callback) returns promptly, and the
/// next one in the group starts right after the last message done: nothing
/// skipped, nothing handed out twice. Round after round, so that a close
/// that can hang shows up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_consumer_commits_what_is_done_and_returns() {
    const ROUNDS: usize = 10;
    const PER_ROUND: usize = 20;
    let broker = start_broker("closing", 1);
    common::produce(
        &broker,
        "closing",
        0..ROUNDS * PER_ROUND + 50,
        256,
        |_| 0,
        |_| Vec::new(),
    )
    .await;
    let tp = Client::disabled();
    let mut processed = Vec::new();
    for round in 0..ROUNDS {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &broker.bootstrap)
            .set("group.id", "closing")
            .set("group.protocol", "consumer")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.offset.store", "false");
        let consumer: StreamConsumer<FilterContext> = config
            .create_with_context(FilterContext::default())
            .unwrap();
        consumer.subscribe(&["closing"]).unwrap();
        {
            let mut messages = tp.filter_stream(&consumer, 32);
            for _ in 0..PER_ROUND {
                let message = tokio::time::timeout(PATIENCE, messages.next())
                    .await
                    .expect("messages come")
                    .unwrap()
                    .unwrap();
                processed.push(id_of(&message));
                messages.done(&message).unwrap();
            }
        }
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || drop(consumer)),
        )
        .await
        .unwrap_or_else(|_| panic!("round {round}: closing the consumer hangs"))
        .unwrap();
    }
    assert_eq!(processed, (0..ROUNDS * PER_ROUND).collect::<Vec<_>>());
}
