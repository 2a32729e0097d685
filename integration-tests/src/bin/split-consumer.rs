//! The consumer process of the end-to-end scenarios: a `StreamConsumer`
//! through the SDK's stream adapter, configured like a real deployment by
//! Telepresence's environment, reporting what it does on stdout.
//!
//! Environment: `KAFKA_BROKERS`, `KAFKA_TOPIC`, `KAFKA_GROUP` (the base group;
//! `group_id` applies), the `TELEPRESENCE_*` variables, and for the scenarios
//! `TPK_FAILURE_POLICY` (`auto`, `hold`, `fail`, `consume`, `skip`),
//! `TPK_CONTAINER_PORT`, `TPK_TIMEOUT_MS`, and `TPK_ASSIGN=1` to take every
//! partition of the topic itself (no group membership; offsets are still
//! committed to the group) instead of subscribing, and `TPK_RELAY_TO=<topic>`
//! to write each message it processes to that topic (payload: its id) with
//! the message's routing context (`x-dev`, `x-path`), before it is done.
//!
//! stdout, one line per event: `processed <id> <partition> <offset>` for each
//! message processed here (its payload is its id), `progress <n>` when the
//! number of messages dealt with (processed, skipped, failed) changes, and
//! `assigned <n>` when the number of partitions assigned to it changes (so
//! that a test can tell a broker that assigns nothing from a stuck SDK).
//! SIGTERM: commit what is done and exit 0. A failed decision (under `fail`):
//! commit what is safe and exit 3.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use telepresence_kafka::stream::FilterContext;
use telepresence_kafka::{ClientBuilder, ErrorKind, FailurePolicy, WithRouting};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    match run().await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<ExitCode> {
    let mut builder = ClientBuilder::from_env()?;
    builder = builder.failure_policy(match var("TPK_FAILURE_POLICY").as_deref() {
        None | Some("auto") => FailurePolicy::Auto,
        Some("hold") => FailurePolicy::Hold,
        Some("fail") => FailurePolicy::Fail,
        Some("consume") => FailurePolicy::Consume,
        Some("skip") => FailurePolicy::Skip,
        Some(other) => anyhow::bail!("TPK_FAILURE_POLICY: unknown policy `{other}`"),
    });
    if let Some(port) = var("TPK_CONTAINER_PORT") {
        builder = builder.container_port(port.parse().context("TPK_CONTAINER_PORT")?);
    }
    if let Some(ms) = var("TPK_TIMEOUT_MS") {
        builder = builder.timeout(Duration::from_millis(ms.parse().context("TPK_TIMEOUT_MS")?));
    }
    let tp = builder
        .path_from_header("x-path")
        .routing_headers(["x-dev", "x-path"])
        .hold_backoff_max(Duration::from_millis(500))
        .build()?;

    let consumer: StreamConsumer<FilterContext> = ClientConfig::new()
        .set(
            "bootstrap.servers",
            var("KAFKA_BROKERS").context("KAFKA_BROKERS")?,
        )
        .set(
            "group.id",
            tp.group_id(&var("KAFKA_GROUP").context("KAFKA_GROUP")?),
        )
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "200")
        .create_with_context(FilterContext::default())?;
    let topic = var("KAFKA_TOPIC").context("KAFKA_TOPIC")?;
    if var("TPK_ASSIGN").is_some() {
        let metadata = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let mut partitions = rdkafka::TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            partitions.add_partition_offset(&topic, partition.id(), rdkafka::Offset::Stored)?;
        }
        consumer.assign(&partitions)?;
    } else {
        consumer.subscribe(&[&topic])?;
    }

    let relay = match var("TPK_RELAY_TO") {
        None => None,
        Some(topic) => {
            // One message per record batch: tansu 0.6.0 skips the rest of a
            // batch when a fetch starts inside it.
            let producer: FutureProducer = ClientConfig::new()
                .set(
                    "bootstrap.servers",
                    var("KAFKA_BROKERS").context("KAFKA_BROKERS")?,
                )
                .set("batch.num.messages", "1")
                .set("linger.ms", "0")
                .create()?;
            Some((producer, topic))
        }
    };

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut messages = tp.filter_stream(&consumer, 16);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut reported = 0;
    let mut assigned = 0;
    let mut out = std::io::stdout().lock();
    let code = loop {
        tokio::select! {
            _ = terminate.recv() => break ExitCode::SUCCESS,
            next = messages.next() => match next.context("the message stream ended")? {
                Ok(message) => {
                    let id = std::str::from_utf8(message.payload().unwrap_or_default())?;
                    if let Some((producer, topic)) = &relay {
                        let record = FutureRecord::<(), _>::to(topic)
                            .payload(id)
                            .with_routing(&tp.routing_headers(&message));
                        producer
                            .send(record, Duration::from_secs(10))
                            .await
                            .map_err(|(error, _)| error)
                            .context("relaying a message")?;
                    }
                    writeln!(out, "processed {id} {} {}", message.partition(), message.offset())?;
                    messages.done(&message)?;
                }
                Err(error) if error.kind() == ErrorKind::Kafka => {
                    tracing::warn!(%error, "Kafka error");
                }
                Err(error) => {
                    tracing::error!(%error, "decision failed; stopping");
                    break ExitCode::from(3);
                }
            },
            _ = tick.tick() => {
                let partitions = consumer.assignment().map_or(0, |list| list.count());
                if partitions != assigned {
                    writeln!(out, "assigned {partitions}")?;
                    assigned = partitions;
                }
            }
        }
        let progress = messages.progress().total();
        if progress != reported {
            writeln!(out, "progress {progress}")?;
            reported = progress;
        }

        out.flush()?;
    };
    messages.commit(CommitMode::Sync).context("committing")?;
    let stats = tp.stats();
    let progress = messages.progress();
    eprintln!(
        "processed={} skipped={} consume_decisions={} skip_decisions={} errors={} fallbacks={} held={} outages={}",
        progress.handed_out,
        progress.skipped,
        stats.consumed,
        stats.skipped,
        stats.errors,
        stats.fallbacks,
        stats.held,
        stats.outages
    );
    Ok(code)
}
