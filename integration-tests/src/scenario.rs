//! The parts of an end-to-end scenario: messages, a topic, the two
//! Telepresence APIs as containers, and consumer processes.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use telepresence_kafka::ClientBuilder;
use telepresence_mock_server::testcontainers::{
    AsyncRunner, ContainerAsync, ImageExt, MockServerContainer, MockServerImage, PORT,
};
use telepresence_mock_server::{ConsumerEnv, Intercept, Side, TelepresenceVersion};
use testcontainers::core::IntoContainerPort;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::{MOCK_SERVER_IMAGE, ensure_image, free_port};

/// How long any wait may last; every wait is on a condition, none is a sleep.
pub const PATIENCE: Duration = Duration::from_secs(60);
/// The topic of every scenario (each has a broker of its own).
pub const TOPIC: &str = "orders";
/// The consumer group of the pod; the workstation's is derived from it.
pub const GROUP: &str = "orders";
/// The intercept of the scenarios.
pub const INTERCEPT_ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";

/// The intercept alice started: `--http-header x-dev=alice
/// --http-path-prefix /orders/ --http-meta owner=alice --http-meta team=payments`.
pub fn alices_intercept() -> Intercept {
    Intercept::new(INTERCEPT_ID)
        .header("x-dev", "alice")
        .path_prefix("/orders/")
        .metadata("owner", "alice")
        .metadata("team", "payments")
}

/// One message: its id (also its payload), developer header and path header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestMessage {
    /// Unique in a scenario.
    pub id: usize,
    /// The `x-dev` header, if any.
    pub dev: Option<&'static str>,
    /// The `x-path` header.
    pub path: String,
}

impl TestMessage {
    /// Whether [`alices_intercept`] matches it.
    pub fn matches_alice(&self) -> bool {
        self.dev == Some("alice") && self.path.starts_with("/orders/")
    }
}

/// Messages `ids` with a mix of headers: alice, bob, carol and no developer
/// in turn, and one alice message in four on a path the intercept excludes.
pub fn mixed_messages(ids: std::ops::Range<usize>) -> Vec<TestMessage> {
    ids.map(|id| {
        let dev = [Some("alice"), Some("bob"), Some("carol"), None][id % 4];
        let path = if id % 16 == 0 {
            format!("/admin/{id}")
        } else {
            format!("/orders/{id}")
        };
        TestMessage { id, dev, path }
    })
    .collect()
}

/// The ids of `messages` that `keep` selects.
pub fn ids(messages: &[TestMessage], keep: impl Fn(&TestMessage) -> bool) -> BTreeSet<usize> {
    messages.iter().filter(|m| keep(m)).map(|m| m.id).collect()
}

/// Creates the scenario topic.
pub async fn create_topic(bootstrap: &str, partitions: i32) {
    create_topic_named(bootstrap, TOPIC, partitions).await;
}

/// Creates a topic.
pub async fn create_topic_named(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("topic creation is answered");
    for result in results {
        result.expect("the topic is created");
    }
}

/// Produces the messages, returning where each one landed.
pub async fn produce(bootstrap: &str, messages: &[TestMessage]) -> BTreeMap<usize, (i32, i64)> {
    // One message per record batch, by configuration as well as by sending
    // them one after the other: tansu 0.6.0 skips the rest of a batch when a
    // fetch starts inside it, which would look like a lost message.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .create()
        .expect("a producer");
    let mut landed = BTreeMap::new();
    for message in messages {
        let payload = message.id.to_string();
        let mut headers = OwnedHeaders::new().insert(Header {
            key: "x-path",
            value: Some(message.path.as_str()),
        });
        if let Some(dev) = message.dev {
            headers = headers.insert(Header {
                key: "x-dev",
                value: Some(dev),
            });
        }
        let record = FutureRecord::<(), _>::to(TOPIC)
            .payload(&payload)
            .headers(headers);
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .expect("the broker takes the message");
        landed.insert(message.id, (delivery.partition, delivery.offset));
    }
    landed
}

/// The committed offset of each partition of the topic, for `group`.
pub fn committed(bootstrap: &str, group: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("a consumer");
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(TOPIC, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .expect("committed offsets are answered")
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// The Telepresence release the scenarios mock unless they say otherwise.
pub const NEWEST: &str = "2.27";

/// A mock Telepresence API container for `side` of `release`, with
/// `intercepts`, on a fixed host port (so that it keeps its address across a
/// stop and a start).
pub async fn api(
    side: Side,
    release: &str,
    intercepts: Vec<Intercept>,
) -> ContainerAsync<MockServerImage> {
    let (name, tag) = MOCK_SERVER_IMAGE;
    ensure_image(name, tag, "mock-server");
    let release: TelepresenceVersion = release.parse().expect("a Telepresence release");
    let image = MockServerImage::default()
        .with_side(side)
        .with_telepresence_version(release)
        .with_intercepts(intercepts);
    let mut last_error = None;
    for _ in 0..3 {
        let port = free_port();
        match image
            .clone()
            .with_mapped_port(port, PORT.tcp())
            .start()
            .await
        {
            Ok(container) => return container,
            Err(error) => last_error = Some(error),
        }
    }
    panic!("the mock server container does not start: {last_error:?}");
}

/// The environment Telepresence gives alice's consumer beside `container`:
/// the container's, with her intercept's ID on the workstation even while
/// the intercept does not exist yet (she has it before she starts it).
pub async fn consumer_env(container: &ContainerAsync<MockServerImage>) -> ConsumerEnv {
    consumer_env_of(container, INTERCEPT_ID).await
}

/// [`consumer_env`] for the intercept `intercept_id`.
pub async fn consumer_env_of(
    container: &ContainerAsync<MockServerImage>,
    intercept_id: &str,
) -> ConsumerEnv {
    let env = container.env().await.expect("the container's address");
    match container.image().side() {
        Side::Client => ConsumerEnv::new(env.api_port, env.api_host, intercept_id),
        Side::Agent => env,
    }
}

/// An SDK client builder configured from `env` the way a consumer process
/// is configured from its environment.
pub fn client_builder(env: &ConsumerEnv) -> ClientBuilder {
    let vars = env.vars();
    ClientBuilder::from_env_vars(|name| {
        vars.iter()
            .find(|(var, _)| *var == name)
            .map(|(_, value)| value.into())
    })
    .expect("the environment a mock server gives is valid")
}

/// What a consumer process reported, and how it ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// The ids it processed, in order.
    pub processed: Vec<usize>,
    /// Its log.
    pub stderr: String,
}

#[derive(Debug, Default)]
struct Reports {
    /// Partitions assigned, as last reported.
    assigned: usize,
    processed: Vec<usize>,
    progress: u64,
}

/// A consumer process (the `split-consumer` binary) on the host, reading the
/// scenario topic through the SDK.
pub struct ConsumerProcess {
    child: Child,
    reports: Arc<Mutex<Reports>>,
    stdout_done: tokio::task::JoinHandle<()>,
}

impl ConsumerProcess {
    /// Starts `binary` (the path of `split-consumer`) against the broker,
    /// with the API's environment and extra variables.
    pub fn spawn(
        binary: &str,
        bootstrap: &str,
        api: Option<&ConsumerEnv>,
        extra: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(binary);
        command
            .env("KAFKA_BROKERS", bootstrap)
            .env("KAFKA_TOPIC", TOPIC)
            .env("KAFKA_GROUP", GROUP)
            .env_remove(telepresence_api::env::API_PORT)
            .env_remove("TELEPRESENCE_API_HOST")
            .env_remove("TELEPRESENCE_INTERCEPT_ID")
            .envs(extra.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(api) = api {
            command.envs(api.vars());
        }
        let mut child = command.spawn().expect("the consumer process starts");
        let reports = Arc::new(Mutex::new(Reports::default()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let shared = reports.clone();
        let stdout_done = tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let mut words = line.split(' ');
                let mut reports = shared.lock().unwrap();
                match (words.next(), words.next()) {
                    (Some("processed"), Some(id)) => {
                        reports.processed.push(id.parse().expect("an id"))
                    }
                    (Some("progress"), Some(n)) => reports.progress = n.parse().expect("a count"),
                    (Some("assigned"), Some(n)) => reports.assigned = n.parse().expect("a count"),
                    _ => panic!("unexpected consumer output: {line}"),
                }
            }
        });
        Self {
            child,
            reports,
            stdout_done,
        }
    }

    /// How many messages it has dealt with (processed or skipped) so far.
    pub fn progress(&self) -> u64 {
        self.reports.lock().unwrap().progress
    }

    /// The ids processed so far.
    pub fn processed(&self) -> Vec<usize> {
        self.reports.lock().unwrap().processed.clone()
    }

    /// Waits until the process has dealt with (processed or skipped) at
    /// least `count` messages.
    pub async fn wait_for_progress(&self, count: u64) {
        let reached = async {
            loop {
                if self.reports.lock().unwrap().progress >= count {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(PATIENCE, reached).await.is_err() {
            let (progress, assigned) = {
                let reports = self.reports.lock().unwrap();
                (reports.progress, reports.assigned)
            };
            if assigned == 0 {
                panic!(
                    "the consumer dealt with {progress} messages, not {count}, and the broker \
                     gives it no partition: a broker defect (tansu 0.6.0 can keep a departed \
                     member as the group's leader and hand out empty assignments), not a \
                     failure of the SDK"
                );
            }
            panic!(
                "the consumer dealt with {progress} messages, not {count} ({assigned} partitions assigned)"
            );
        }
    }

    /// Waits until it has processed at least `count` messages.
    pub async fn wait_for_processed(&self, count: usize) {
        let reached = async {
            while self.reports.lock().unwrap().processed.len() < count {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(PATIENCE, reached)
            .await
            .unwrap_or_else(|_| panic!("the consumer did not process {count} messages"));
    }

    /// Stops it the way Kubernetes does (SIGTERM) and collects what it did.
    pub async fn stop(self) -> Finished {
        self.signal("-TERM").await
    }

    /// Kills it at once (SIGKILL): no commit, no goodbye; collects what it
    /// reported before.
    pub async fn kill(self) -> Finished {
        self.signal("-KILL").await
    }

    async fn signal(self, signal: &str) -> Finished {
        let pid = self.child.id().expect("still running").to_string();
        let signalled = std::process::Command::new("kill")
            .args([signal, &pid])
            .status();
        assert!(signalled.is_ok_and(|s| s.success()), "{signal} sent");
        self.wait().await
    }

    /// Waits for it to exit by itself.
    pub async fn wait(mut self) -> Finished {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("the consumer exits")
            .expect("its status");
        let _ = self.stdout_done.await;
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr).await;
        }
        let processed = self.reports.lock().unwrap().processed.clone();
        Finished {
            status,
            processed,
            stderr,
        }
    }
}
