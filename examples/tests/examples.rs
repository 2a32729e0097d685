//! Every example program, run as a user would run it, against embedded parts:
//! an in-process Kafka and in-process mock API servers.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telepresence_kafka_examples::EmbeddedKafka;
use telepresence_mock_server::{Intercept, MockServer, Side};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TOPIC: &str = "orders";
const ID: &str = "demo:orders";
const PATIENCE: Duration = Duration::from_secs(60);

fn developer(id: usize) -> &'static str {
    if id % 3 == 0 { "alice" } else { "bob" }
}

/// `count` messages spread round-robin over `partitions`, so that every
/// partition has some: left to librdkafka's sticky partitioner, a quick run
/// can leave one empty and then nothing is committed there.
async fn produce(kafka: &EmbeddedKafka, partitions: i32, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .unwrap();
    for id in 0..count {
        let payload = id.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "x-dev",
            value: Some(developer(id)),
        });
        let record = FutureRecord::<(), _>::to(TOPIC)
            .partition(i32::try_from(id).unwrap() % partitions)
            .payload(&payload)
            .headers(headers);
        producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

async fn api(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(
            Intercept::new(ID)
                .header("x-dev", "alice")
                .metadata("owner", "alice"),
        )
        .start()
        .await
        .unwrap()
}

/// An example binary with the environment a consumer gets from `server`
/// (none when `None`) and from Kafka.
fn example(name: &str, server: Option<&MockServer>, kafka: Option<&EmbeddedKafka>) -> Command {
    let path = match name {
        "demo" => env!("CARGO_BIN_EXE_demo"),
        "consumer" => env!("CARGO_BIN_EXE_consumer"),
        "blocking_consumer" => env!("CARGO_BIN_EXE_blocking_consumer"),
        "producer" => env!("CARGO_BIN_EXE_producer"),
        "intercept_info" => env!("CARGO_BIN_EXE_intercept_info"),
        "invoicer" => env!("CARGO_BIN_EXE_invoicer"),
        "metrics" => env!("CARGO_BIN_EXE_metrics"),
        other => panic!("no example {other}"),
    };
    let mut command = Command::new(path);
    command.kill_on_drop(true);
    for name in [
        telepresence_kafka::API_PORT_ENV,
        telepresence_kafka::API_HOST_ENV,
        telepresence_kafka::INTERCEPT_ID_ENV,
    ] {
        command.env_remove(name);
    }
    if let Some(server) = server {
        command.envs(server.env().vars());
    }
    if let Some(kafka) = kafka {
        command
            .env("KAFKA_BROKERS", &kafka.bootstrap)
            .env("KAFKA_TOPIC", TOPIC)
            .env("KAFKA_GROUP", "orders")
            .env("KAFKA_OPTIONS", "group.protocol=consumer");
    }
    command
}

/// The payloads of the `processed ...` lines, read until `expected` of them.
async fn read_processed(child: &mut Child, expected: usize) -> BTreeSet<usize> {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut processed = BTreeSet::new();
    while processed.len() < expected {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("the example makes progress")
            .unwrap()
            .expect("the example is still running");
        let payload = line.rsplit("payload=").next().unwrap();
        processed.insert(payload.parse().unwrap());
    }
    processed
}

fn ids(count: usize, dev: &str) -> BTreeSet<usize> {
    (0..count).filter(|&id| developer(id) == dev).collect()
}

/// Starts an example with its stdout piped, for `read_processed`.
fn spawn(command: &mut Command) -> Child {
    command.stdout(Stdio::piped()).spawn().unwrap()
}

/// Of the 30 messages produced, the pod processes bob's and the workstation
/// alice's: each exactly, nothing lost, nothing twice.
async fn assert_split(in_pod: &mut Child, on_workstation: &mut Child) {
    let (by_pod, by_workstation) = tokio::join!(
        read_processed(in_pod, ids(30, "bob").len()),
        read_processed(on_workstation, ids(30, "alice").len()),
    );
    assert_eq!(by_pod, ids(30, "bob"), "the pod's share");
    assert_eq!(by_workstation, ids(30, "alice"), "the workstation's share");
}

#[tokio::test]
async fn the_demo_splits_exactly_on_embedded_defaults() {
    let output = tokio::time::timeout(PATIENCE, example("demo", None, None).output())
        .await
        .expect("the demo finishes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("overlap (must be 0)                        0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("missing (must be 0)                        0"),
        "{stdout}"
    );
    assert!(stdout.contains("the split is exact"), "{stdout}");
}

#[tokio::test]
async fn the_consumer_example_runs_unchanged_on_both_sides_and_commits_on_sigterm() {
    let kafka = EmbeddedKafka::start(TOPIC, 3).unwrap();
    produce(&kafka, 3, 30).await;
    let (pod, workstation) = (api(Side::Agent).await, api(Side::Client).await);
    let mut in_pod = spawn(&mut example("consumer", Some(&pod), Some(&kafka)));
    let mut on_workstation = spawn(&mut example("consumer", Some(&workstation), Some(&kafka)));
    assert_split(&mut in_pod, &mut on_workstation).await;

    for mut child in [in_pod, on_workstation] {
        let pid = child.id().unwrap().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::time::timeout(PATIENCE, child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "{status}");
    }

    // What each side handled was committed: restarted, they have nothing left.
    for (group, side) in [
        ("orders".to_owned(), "pod"),
        (format!("orders-{}", ID.replace(':', "-")), "workstation"),
    ] {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &kafka.bootstrap)
            .set("group.id", &group)
            .create()
            .unwrap();
        let mut partitions = rdkafka::TopicPartitionList::new();
        for p in 0..3 {
            partitions.add_partition(TOPIC, p);
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(5))
            .unwrap();
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(o) => o,
                other => panic!(
                    "{side}: partition {} has no committed offset: {other:?}",
                    e.partition()
                ),
            })
            .sum();
        assert_eq!(total, 30, "{side} committed every offset");
    }
}

#[tokio::test]
async fn the_blocking_consumer_example_processes_its_share() {
    let kafka = EmbeddedKafka::start(TOPIC, 2).unwrap();
    produce(&kafka, 2, 30).await;
    let workstation = api(Side::Client).await;
    let mut child = spawn(
        example("blocking_consumer", Some(&workstation), Some(&kafka))
            .env("KAFKA_MAX_MESSAGES", "30"),
    );
    let processed = read_processed(&mut child, ids(30, "alice").len()).await;
    assert_eq!(processed, ids(30, "alice"));
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "stops by itself after 30 decisions");
}

#[tokio::test]
async fn the_producer_example_writes_the_headers_it_is_given() {
    let kafka = EmbeddedKafka::start(TOPIC, 1).unwrap();
    let output = example("producer", None, Some(&kafka))
        .args([
            "--count",
            "3",
            "--header",
            "x-dev=alice",
            "--header",
            "x-team=core",
            "--path",
            "/orders/new",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "produced 3 messages to orders\n"
    );

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", "check")
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    for n in 0..3 {
        let message = tokio::time::timeout(PATIENCE, consumer.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.payload(), Some(format!("message {n}").as_bytes()));
        let headers: Vec<(String, String)> = message
            .headers()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h.key.to_owned(),
                    String::from_utf8_lossy(h.value.unwrap()).into_owned(),
                )
            })
            .collect();
        let expected = [
            ("x-dev", "alice"),
            ("x-team", "core"),
            ("x-path", "/orders/new"),
        ];
        assert_eq!(headers, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}

#[tokio::test]
async fn the_intercept_info_example_routes_by_metadata() {
    let workstation = api(Side::Client).await;
    let output = example("intercept_info", Some(&workstation), None)
        .args(["--header", "x-dev=alice"])
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "intercepted: true (asked the workstation side)\nmetadata: owner=alice\nroute: work.alice\n"
    );

    let output = example("intercept_info", Some(&workstation), None)
        .args(["--header", "x-dev=bob"])
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "intercepted: false (asked the workstation side)\nroute: work.default\n"
    );

    let output = example("intercept_info", None, None)
        .output()
        .await
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "not under Telepresence: every message is processed here, untagged\n"
    );
}

/// Runs a consumer that must refuse to start: its exit code and its log.
async fn refused(mut command: Command) -> (Option<i32>, String) {
    let output = tokio::time::timeout(PATIENCE, command.stdout(Stdio::piped()).output())
        .await
        .expect("the consumer stops by itself")
        .unwrap();
    assert!(
        output.stdout.is_empty(),
        "nothing processed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Stops a consumer the way Kubernetes does.
async fn stop(mut child: Child) {
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(PATIENCE, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
}

/// A workstation misconfigured by `mistake` is refused (exit code 2, the
/// cause named by `named`) before any message; started right, it processes
/// all of alice's messages while the pod processes the rest: nothing lost.
async fn refused_then_nothing_lost(mistake: impl FnOnce(&mut Command), named: &str) {
    let kafka = EmbeddedKafka::start(TOPIC, 3).unwrap();
    produce(&kafka, 3, 30).await;
    let (pod, workstation) = (api(Side::Agent).await, api(Side::Client).await);
    let mut in_pod = spawn(&mut example("consumer", Some(&pod), Some(&kafka)));

    let mut misconfigured = example("consumer", Some(&workstation), Some(&kafka));
    mistake(&mut misconfigured);
    let (code, stderr) = refused(misconfigured).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(named), "{stderr}");

    let mut on_workstation = spawn(&mut example("consumer", Some(&workstation), Some(&kafka)));
    assert_split(&mut in_pod, &mut on_workstation).await;
    stop(in_pod).await;
    stop(on_workstation).await;
}

/// A workstation started without TELEPRESENCE_INTERCEPT_ID would join the
/// pod's group and skip alice's messages.
#[tokio::test]
async fn a_workstation_without_its_intercept_id_refuses_and_nothing_is_lost() {
    refused_then_nothing_lost(
        |consumer| {
            consumer.env_remove("TELEPRESENCE_INTERCEPT_ID");
        },
        "Set TELEPRESENCE_INTERCEPT_ID",
    )
    .await;
}

/// A workstation in the pod's group (here forced through KAFKA_OPTIONS):
/// Kafka would split the partitions, and the workstation would skip the
/// pod's messages on its own.
#[tokio::test]
async fn a_workstation_in_the_pods_group_refuses_and_nothing_is_lost() {
    refused_then_nothing_lost(
        |consumer| {
            consumer.env("KAFKA_OPTIONS", "group.protocol=consumer,group.id=orders");
        },
        "reads in group \"orders\", which is not its own",
    )
    .await;
}

/// A workload with two ports, alice's intercept on the second: told its
/// container port (TELEPRESENCE_KAFKA_CONTAINER_PORT), the pod leaves
/// alice's messages to her; without it, it processes them too.
#[tokio::test]
async fn a_multi_port_pod_told_its_container_port_splits_exactly() {
    let kafka = EmbeddedKafka::start(TOPIC, 3).unwrap();
    produce(&kafka, 3, 30).await;
    let pod = MockServer::builder()
        .side(Side::Agent)
        .workload_ports([8080, 9090])
        .intercept(
            Intercept::new(ID)
                .container_port(9090)
                .header("x-dev", "alice"),
        )
        .start()
        .await
        .unwrap();
    let workstation = api(Side::Client).await;

    let mut in_pod = spawn(
        example("consumer", Some(&pod), Some(&kafka))
            .env("TELEPRESENCE_KAFKA_CONTAINER_PORT", "9090"),
    );
    let mut on_workstation = spawn(&mut example("consumer", Some(&workstation), Some(&kafka)));
    assert_split(&mut in_pod, &mut on_workstation).await;
    stop(in_pod).await;
    stop(on_workstation).await;

    // Without the port, the pod's API looks at the first port only: the pod
    // processes alice's messages as well (the duplicates the docs describe).
    let mut portless =
        spawn(example("consumer", Some(&pod), Some(&kafka)).env("KAFKA_GROUP", "portless"));
    assert_eq!(
        read_processed(&mut portless, 30).await,
        ids(30, "alice").union(&ids(30, "bob")).copied().collect()
    );
    stop(portless).await;
}

/// An address on loopback that nothing listens on, for an example to serve
/// at.
fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// The samples of a Prometheus scrape, by name and labels (sorted).
#[derive(Debug, Default)]
struct Scrape(std::collections::BTreeMap<(String, Vec<(String, String)>), f64>);

impl Scrape {
    /// `GET /metrics` over plain HTTP/1.1; `None` while nothing answers.
    async fn get(address: &str) -> Option<Self> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        let request =
            format!("GET /metrics HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        Some(Self::parse(body))
    }

    /// Prometheus's text format, as far as these samples go: no comments,
    /// no escapes in label values.
    fn parse(text: &str) -> Self {
        let mut samples = std::collections::BTreeMap::new();
        for line in text
            .lines()
            .filter(|l| l.starts_with("telepresence_kafka_"))
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut labels: Vec<(String, String)> = labels
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap();
                    (k.to_owned(), v.trim_matches('"').to_owned())
                })
                .collect();
            labels.sort();
            samples.insert((name.to_owned(), labels), value.parse().unwrap());
        }
        Self(samples)
    }

    /// The sample of `name` for `side` and the test's topic (0 when absent).
    fn value(&self, name: &str, side: &str) -> f64 {
        let labels = vec![
            ("side".to_owned(), side.to_owned()),
            ("topic".to_owned(), TOPIC.to_owned()),
        ];
        self.0
            .get(&(name.to_owned(), labels))
            .copied()
            .unwrap_or(0.0)
    }

    /// Decisions made on `side`: processed and skipped.
    fn decisions(&self, side: &str) -> f64 {
        self.value("telepresence_kafka_processed_total", side)
            + self.value("telepresence_kafka_skipped_total", side)
    }
}

/// The metrics example, on both sides: Prometheus's scrape counts what each
/// side processed and skipped of the 30 messages, under its side and the
/// topic, and times every decision.
#[tokio::test]
async fn the_metrics_example_serves_each_sides_decisions_to_prometheus() {
    let kafka = EmbeddedKafka::start(TOPIC, 2).unwrap();
    produce(&kafka, 2, 30).await;
    let (pod, workstation) = (api(Side::Agent).await, api(Side::Client).await);
    let alice = ids(30, "alice").len() as f64;
    let bob = ids(30, "bob").len() as f64;
    let mut children = Vec::new();
    for (server, side, processed, skipped) in [
        (&pod, "cluster", bob, alice),
        (&workstation, "workstation", alice, bob),
    ] {
        let address = free_address();
        let child = example("metrics", Some(server), Some(&kafka))
            .args(["--listen", &address])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        children.push(child);
        // Scraped until every message is decided (a condition, not a delay).
        let scrape = tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(scrape) = Scrape::get(&address).await {
                    if scrape.decisions(side) >= 30.0 {
                        return scrape;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("every message is decided");
        let value = |name: &str| scrape.value(name, side);
        assert_eq!(
            value("telepresence_kafka_processed_total"),
            processed,
            "{side}: {scrape:?}"
        );
        assert_eq!(value("telepresence_kafka_skipped_total"), skipped, "{side}");
        assert_eq!(value("telepresence_kafka_fallbacks_total"), 0.0, "{side}");
        assert_eq!(value("telepresence_kafka_held_total"), 0.0, "{side}");
        assert_eq!(
            value("telepresence_kafka_decision_duration_seconds_count"),
            30.0,
            "{side}: a histogram, with buckets"
        );
        assert!(
            scrape.0.keys().any(|(name, labels)| {
                name == "telepresence_kafka_decision_duration_seconds_bucket"
                    && labels.contains(&("le".to_owned(), "0.001".to_owned()))
            }),
            "{side}: the example's buckets"
        );
    }
    for child in children {
        stop(child).await;
    }
}

/// Every example says what it does and what it reads with `--help`, and
/// starts nothing.
#[tokio::test]
async fn every_example_answers_help_without_starting() {
    for name in [
        "demo",
        "consumer",
        "blocking_consumer",
        "producer",
        "intercept_info",
        "invoicer",
        "metrics",
    ] {
        let output =
            tokio::time::timeout(PATIENCE, example(name, None, None).arg("--help").output())
                .await
                .expect("--help returns at once")
                .unwrap();
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{name}: {help}");
        assert!(help.contains("Usage:"), "{name}: {help}");
    }
    let output = example("consumer", None, None)
        .arg("--help")
        .output()
        .await
        .unwrap();
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "KAFKA_BROKERS",
        "TELEPRESENCE_INTERCEPT_ID",
        "TELEPRESENCE_KAFKA_CONTAINER_PORT",
    ] {
        assert!(help.contains(variable), "{variable}: {help}");
    }
}

/// An order of the pipeline test: alice's (one in three) carry her name in an
/// `x-dev` header or, every other one, only in W3C baggage among other
/// members; the rest are bob's. Keyed by id, so that the invoices, keyed
/// like their orders, spread over the partitions.
async fn produce_orders(kafka: &EmbeddedKafka, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .unwrap();
    for id in 0..count {
        let payload = id.to_string();
        let headers = match (developer(id), id % 2) {
            ("alice", 1) => OwnedHeaders::new().insert(Header {
                key: "baggage",
                value: Some("tenant=acme,x-dev=alice;ttl=60"),
            }),
            (dev, _) => OwnedHeaders::new().insert(Header {
                key: "x-dev",
                value: Some(dev),
            }),
        };
        let record = FutureRecord::to("orders")
            .partition(i32::try_from(id).unwrap() % 2)
            .key(&payload)
            .payload(&payload)
            .headers(headers);
        producer
            .send(record, Duration::from_secs(5))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

/// A mock API for one side of one service of the pipeline: alice's
/// intercept `id` takes `x-dev=alice`.
async fn pipeline_api(side: Side, id: &str) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(Intercept::new(id).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

/// Waits until `group` has committed all `count` messages of `topic`'s two
/// partitions: every message was processed or deliberately skipped.
async fn wait_for_commits(kafka: &EmbeddedKafka, topic: &str, group: &str, count: i64) {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let committed = || {
        let mut partitions = rdkafka::TopicPartitionList::new();
        for p in 0..2 {
            partitions.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(partitions, Duration::from_secs(5))
            .unwrap();
        committed
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().unwrap_or(0).max(0))
            .sum::<i64>()
    };
    let all = async {
        while committed() < count {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(PATIENCE, all)
        .await
        .unwrap_or_else(|_| panic!("{group} committed {} of {count} on {topic}", committed()));
}

/// Stops a stage the way Kubernetes does, and reads everything it reported.
async fn stop_and_read(mut child: Child) -> Vec<usize> {
    let stdout = child.stdout.take().unwrap();
    stop(child).await;
    let mut lines = BufReader::new(stdout).lines();
    let mut handled = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        handled.push(line.rsplit("payload=").next().unwrap().parse().unwrap());
    }
    handled
}

/// orders -> invoicer -> invoices -> consumer, with alice's intercepts on
/// both services: her orders, whether her name is a header or a baggage
/// member, and the invoices they cause are processed on her workstation,
/// once each, and nothing else is; the pods process everything else.
#[tokio::test]
async fn the_pipeline_routes_an_order_and_the_invoice_it_causes_to_the_same_workstation() {
    const COUNT: usize = 30;
    let kafka = EmbeddedKafka::with_topics(&[("orders", 2), ("invoices", 2)]).unwrap();
    produce_orders(&kafka, COUNT).await;
    let (invoicer_id, mailer_id) = ("pipeline:invoicer", "pipeline:mailer");
    let stage = |name: &str, server: &MockServer, group: &str, topic: &str| {
        let mut command = example(name, Some(server), Some(&kafka));
        command.env("KAFKA_GROUP", group).env("KAFKA_TOPIC", topic);
        spawn(&mut command)
    };
    let apis = [
        pipeline_api(Side::Agent, invoicer_id).await,
        pipeline_api(Side::Client, invoicer_id).await,
        pipeline_api(Side::Agent, mailer_id).await,
        pipeline_api(Side::Client, mailer_id).await,
    ];
    let stages = [
        stage("invoicer", &apis[0], "invoicer", "orders"),
        stage("invoicer", &apis[1], "invoicer", "orders"),
        stage("consumer", &apis[2], "mailer", "invoices"),
        stage("consumer", &apis[3], "mailer", "invoices"),
    ];
    let groups = [
        ("orders", "invoicer".to_owned()),
        (
            "orders",
            format!("invoicer-{}", invoicer_id.replace(':', "-")),
        ),
        ("invoices", "mailer".to_owned()),
        (
            "invoices",
            format!("mailer-{}", mailer_id.replace(':', "-")),
        ),
    ];
    for (topic, group) in &groups {
        wait_for_commits(&kafka, topic, group, COUNT as i64).await;
    }

    let mut handled = Vec::new();
    for child in stages {
        handled.push(stop_and_read(child).await);
    }
    let alices = ids(COUNT, "alice");
    let others: BTreeSet<usize> = (0..COUNT).filter(|id| !alices.contains(id)).collect();
    let expected = [
        ("the invoicer's pod", &others),
        ("the invoicer on alice's workstation", &alices),
        ("the mailer's pod", &others),
        ("the mailer on alice's workstation", &alices),
    ];
    for ((who, want), got) in expected.into_iter().zip(&handled) {
        let set: BTreeSet<usize> = got.iter().copied().collect();
        assert_eq!(
            set.len(),
            got.len(),
            "{who} handled a message twice: {got:?}"
        );
        assert_eq!(&set, want, "{who}");
    }
}
