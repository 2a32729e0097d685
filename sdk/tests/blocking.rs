//! The blocking client: same answers, no async runtime in sight.

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use telepresence_kafka::{ErrorKind, FailurePolicy, HeaderList, blocking};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};

const ID: &str = "abc:orders";

fn server(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(
            Intercept::new(ID)
                .header("x-dev", "alice")
                .metadata("owner", "alice"),
        )
        .start_blocking()
        .unwrap()
}

fn client(server: &MockServer, policy: FailurePolicy) -> blocking::Client {
    telepresence_kafka::Client::builder()
        .api_url(server.url())
        .intercept_id(server.env().intercept_id)
        .failure_policy(policy)
        .timeout(Duration::from_millis(300))
        .build_blocking()
        .unwrap()
}

/// Runs an admin call to its end on a runtime of its own, kept apart from
/// the blocking client (which must not run inside one).
fn block_on<T>(call: impl Future<Output = Result<T, telepresence_mock_server::Error>>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(call)
        .unwrap()
}

fn dev(name: &str) -> Vec<(&'static str, Option<Vec<u8>>)> {
    vec![("x-dev", Some(name.as_bytes().to_vec()))]
}

fn ask(tp: &blocking::Client, dev_name: &str) -> Result<bool, telepresence_kafka::Error> {
    let owned = dev(dev_name);
    let pairs: Vec<(&str, Option<&[u8]>)> = owned.iter().map(|(k, v)| (*k, v.as_deref())).collect();
    tp.should_consume(&HeaderList::new(&pairs))
}

#[test]
fn both_sides_answer_like_the_async_client() {
    let workstation = server(Side::Client);
    let tp = client(&workstation, FailurePolicy::Fail);
    assert!(ask(&tp, "alice").unwrap());
    assert!(!ask(&tp, "bob").unwrap());
    let info = tp
        .intercept_info(&HeaderList::new(&[("x-dev", Some(b"alice"))]))
        .unwrap();
    assert_eq!(info.metadata["owner"], "alice");
    tp.healthz().unwrap();

    let pod = server(Side::Agent);
    let tp = client(&pod, FailurePolicy::Fail);
    assert!(!ask(&tp, "alice").unwrap());
    assert!(ask(&tp, "bob").unwrap());
    assert_eq!(tp.stats().consumed, 1);
}

#[test]
fn the_failure_policy_applies() {
    let workstation = server(Side::Client);
    block_on(workstation.admin().inject_fault(Fault::status(503)));
    assert_eq!(
        ask(&client(&workstation, FailurePolicy::Fail), "alice")
            .unwrap_err()
            .kind(),
        ErrorKind::Status
    );
    assert!(ask(&client(&workstation, FailurePolicy::Consume), "alice").unwrap());
    assert!(!ask(&client(&workstation, FailurePolicy::Skip), "alice").unwrap());
    // The workstation's default holds: the call returns the API's answer
    // once the API answers again.
    block_on(workstation.admin().clear_faults());
    block_on(
        workstation
            .admin()
            .inject_fault(Fault::status(503).times(3).endpoint("/consume-here")),
    );
    let held = client(&workstation, FailurePolicy::Auto);
    assert!(ask(&held, "alice").unwrap());
    let stats = held.stats();
    assert_eq!((stats.held, stats.errors, stats.fallbacks), (1, 3, 0));
}

#[test]
fn a_disabled_client_answers_without_a_request() {
    let tp = telepresence_kafka::Client::builder()
        .build_blocking()
        .unwrap();
    assert!(!tp.is_enabled());
    assert!(ask(&tp, "anyone").unwrap());
    assert_eq!(tp.stats().requests, 0);
}

#[test]
fn a_base_consumer_loop_processes_exactly_its_share() {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (_stop, stop_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("orders", 2, 1).unwrap();
        ready_tx.send(cluster.bootstrap_servers()).unwrap();
        let _ = stop_rx.recv();
    });
    let bootstrap = ready_rx.recv().unwrap();

    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    for id in 0..30 {
        let payload = id.to_string();
        let dev = if id % 3 == 0 { "alice" } else { "bob" };
        let record = BaseRecord::<(), _>::to("orders").payload(&payload).headers(
            OwnedHeaders::new().insert(Header {
                key: "x-dev",
                value: Some(dev),
            }),
        );
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(5)).unwrap();

    let workstation = server(Side::Client);
    let tp = client(&workstation, FailurePolicy::Fail);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", tp.group_id("orders"))
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&["orders"]).unwrap();

    let mut processed = BTreeSet::new();
    let mut decided = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while decided < 30 {
        assert!(
            Instant::now() < deadline,
            "only {decided} of 30 messages arrived"
        );
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message.unwrap();
        if tp.should_consume(&message).unwrap() {
            processed.insert(
                std::str::from_utf8(message.payload().unwrap())
                    .unwrap()
                    .parse::<u32>()
                    .unwrap(),
            );
        }
        consumer.commit_message(&message, CommitMode::Sync).unwrap();
        decided += 1;
    }
    let alices: BTreeSet<u32> = (0..30).filter(|id| id % 3 == 0).collect();
    assert_eq!(processed, alices);
}
