//! Small helpers the example programs share; each program in `src/bin/`
//! is otherwise complete on its own.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::types::RDKafkaErrorCode;
use telepresence_kafka::stream::FilterContext;
use telepresence_kafka::{Baggage, Client, ClientBuilder};

/// An in-process Kafka: librdkafka's mock cluster, on a thread of its own
/// (it is neither `Send` nor `Sync`), with one topic, alive until dropped.
///
/// Other processes can reach it at [`bootstrap`](Self::bootstrap) on
/// loopback. Consumers should set `group.protocol=consumer`: with the classic
/// protocol the mock delays a new group's first assignment by seconds.
pub struct EmbeddedKafka {
    /// The bootstrap servers, `127.0.0.1:PORT`.
    pub bootstrap: String,
    _stop: mpsc::Sender<()>,
}

impl EmbeddedKafka {
    /// Starts a one-broker cluster with `topic` of `partitions` partitions.
    pub fn start(topic: &str, partitions: i32) -> anyhow::Result<Self> {
        Self::with_topics(&[(topic, partitions)])
    }

    /// Starts a one-broker cluster with these topics, each `(name, partitions)`.
    pub fn with_topics(topics: &[(&str, i32)]) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let topics: Vec<(String, i32)> = topics.iter().map(|&(t, p)| (t.to_owned(), p)).collect();
        std::thread::spawn(move || {
            let started = MockCluster::new(1).and_then(|cluster| {
                for (topic, partitions) in &topics {
                    cluster.create_topic(topic, *partitions, 1)?;
                }
                Ok(cluster)
            });
            match started {
                Ok(cluster) => {
                    let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                    // Returns when the sender is dropped with this value.
                    let _ = stop_rx.recv();
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            }
        });
        let bootstrap = ready_rx.recv()?.context("starting the in-process Kafka")?;
        Ok(Self {
            bootstrap,
            _stop: stop_tx,
        })
    }
}

/// The SDK client of the programs that take part in a pipeline, configured
/// from Telepresence's environment: the routing key `x-dev` may be a header
/// or a member of the message's tracing baggage, and is passed on to what
/// each message causes ([`Client::routing_headers`]).
///
/// Every hop builds its client with this one function: the pod and the
/// workstation of each service must ask their APIs with the same headers.
pub fn pipeline_client() -> anyhow::Result<Client> {
    ClientBuilder::from_env()
        .context("reading Telepresence's environment")?
        .baggage(Baggage::members(["x-dev"]))
        .routing_headers(["x-dev"])
        .build()
        .context("configuring the Telepresence client")
}

/// A consumer for the stream adapter, subscribed to `topic`: brokers from
/// `KAFKA_BROKERS`, the group `tp.group_id(KAFKA_GROUP or group)` (on a
/// workstation, one of its own), `KAFKA_OPTIONS` applied last.
pub fn filtered_consumer(
    tp: &Client,
    group: &str,
    topic: &str,
) -> anyhow::Result<StreamConsumer<FilterContext>> {
    let mut config = ClientConfig::new();
    config
        .set(
            "bootstrap.servers",
            env_or("KAFKA_BROKERS", "localhost:9092"),
        )
        .set("group.id", tp.group_id(&env_or("KAFKA_GROUP", group)))
        .set("auto.offset.reset", "earliest")
        // The stream adapter stores offsets itself, only for messages that are
        // done or deliberately skipped; commits then never lose a message.
        .set("enable.auto.offset.store", "false");
    apply_kafka_options(&mut config)?;
    // The context tells the stream adapter of rebalances: it commits before
    // partitions move and hands out nothing of a partition that left.
    let consumer: StreamConsumer<FilterContext> = config
        .create_with_context(FilterContext::default())
        .context("creating the consumer")?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Ctrl-C, or SIGTERM as Kubernetes sends it.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM can be handled");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// The value of an environment variable, or `default` when unset or empty.
pub fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Applies `KAFKA_OPTIONS` (`key=value,key=value`, librdkafka settings) to
/// `config`, for settings the examples do not set themselves, such as
/// `group.protocol=consumer` or security options.
pub fn apply_kafka_options(config: &mut ClientConfig) -> anyhow::Result<()> {
    let options = env_or("KAFKA_OPTIONS", "");
    for option in options.split(',').filter(|o| !o.trim().is_empty()) {
        let (key, value) = option
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("KAFKA_OPTIONS: `{option}` is not key=value"))?;
        config.set(key.trim(), value.trim());
    }
    Ok(())
}

/// Whether [`create_topic`] may find the topic there already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfExists {
    /// Use it as it is.
    Keep,
    /// Refuse: the caller needs a fresh topic.
    Fail,
}

/// Creates `topic` with `partitions` partitions (replication 1). Brokers
/// that do not create topics on first use (tansu, for one) need it before a
/// producer writes or a consumer subscribes. `KAFKA_OPTIONS` applies, as to
/// the examples' other clients.
pub async fn create_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    if_exists: IfExists,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    apply_kafka_options(&mut config)?;
    let admin: AdminClient<DefaultClientContext> =
        config.create().context("connecting to the brokers")?;
    if if_exists == IfExists::Keep && topic_exists(&admin, topic) {
        return Ok(());
    }
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .with_context(|| format!("creating topic {topic} at {brokers}"))?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if if_exists == IfExists::Keep => {}
            Err((topic, error)) => anyhow::bail!("creating topic {topic} at {brokers}: {error}"),
        }
    }
    Ok(())
}

/// Whether the brokers know `topic`: then nothing needs creating, and the
/// caller needs no right to create topics (nor a broker that can, such as
/// librdkafka's mock cluster).
fn topic_exists(admin: &AdminClient<DefaultClientContext>, topic: &str) -> bool {
    admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .is_ok_and(|metadata| {
            metadata
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        })
}

/// Parses `KEY=VALUE`, for `--header` flags.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
