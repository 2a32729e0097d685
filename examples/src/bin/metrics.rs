//! A consumer whose Telepresence decisions Prometheus can scrape.
//!
//! The SDK's `metrics` feature reports through the `metrics` facade; this
//! program installs `metrics-exporter-prometheus`, which serves them at
//! `http://ADDRESS/metrics`, and consumes like the `consumer` example. A
//! workstation's, after 30 messages (from the test that runs it, a debug
//! build):
//!
//! ```text
//! telepresence_kafka_processed_total{side="workstation",topic="orders"} 10
//! telepresence_kafka_skipped_total{side="workstation",topic="orders"} 20
//! telepresence_kafka_decision_duration_seconds_bucket{side="workstation",topic="orders",le="0.025"} 30
//! telepresence_kafka_decision_duration_seconds_count{side="workstation",topic="orders"} 30
//! ```
//!
//! Outside Telepresence the client is disabled and reports nothing: the
//! program then serves only what the rest of it records.
//!
//! ```sh
//! KAFKA_BROKERS=localhost:9092 cargo run -p telepresence-kafka-examples --bin metrics -- --listen 127.0.0.1:9000
//! curl -s localhost:9000/metrics
//! ```

use std::net::SocketAddr;
use std::pin::pin;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rdkafka::consumer::CommitMode;
use rdkafka::message::Message;
use telepresence_kafka::metrics::DECISION_DURATION_SECONDS;
use telepresence_kafka::{Client, ErrorKind};
use telepresence_kafka_examples::{env_or, filtered_consumer, init_logging, shutdown_signal};

/// Bounds of the decision latency's buckets, in seconds: a cache hit, an
/// answer over loopback, retries, and decisions held through an outage.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0, 60.0,
];

/// A Kafka consumer that cooperates with Telepresence intercepts, as the
/// `consumer` example does, and serves its decisions to Prometheus.
#[derive(Parser)]
#[command(
    name = "metrics",
    after_help = "Environment: as the consumer example (KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP,
KAFKA_OPTIONS; Telepresence's TELEPRESENCE_API_PORT, TELEPRESENCE_API_HOST,
TELEPRESENCE_INTERCEPT_ID)."
)]
struct Args {
    /// Where to serve /metrics; in a pod, 0.0.0.0:PORT for Prometheus to
    /// reach it
    #[arg(long, env = "METRICS_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    let args = Args::parse();
    init_logging();
    // The recorder first: every decision from the first one is reported.
    PrometheusBuilder::new()
        .with_http_listener(args.listen)
        .set_buckets_for_metric(
            Matcher::Full(DECISION_DURATION_SECONDS.to_owned()),
            LATENCY_BUCKETS,
        )?
        .install()
        .with_context(|| format!("serving metrics at {}", args.listen))?;
    tracing::info!(address = %args.listen, "serving /metrics");

    let tp = Client::from_env().context("reading Telepresence's environment")?;
    let topic = env_or("KAFKA_TOPIC", "orders");
    let consumer = filtered_consumer(&tp, "orders", &topic)?;

    let mut messages = tp.filter_stream(&consumer, 32);
    let mut shutdown = pin!(shutdown_signal());
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            next = messages.next() => match next {
                None => break,
                Some(Err(error)) if error.kind() == ErrorKind::Config => {
                    // A workstation without its intercept ID, or in the
                    // pod's group: refused before anything was skipped.
                    tracing::error!(%error, "refusing to consume");
                    return Ok(std::process::ExitCode::from(2));
                }
                Some(Err(error)) => tracing::error!(%error, "cannot receive or decide a message"),
                Some(Ok(message)) => {
                    println!("processed {}/{}@{}", message.topic(), message.partition(), message.offset());
                    messages.done(&message)?;
                }
            },
        }
    }
    messages.commit(CommitMode::Sync).context("committing")?;
    Ok(std::process::ExitCode::SUCCESS)
}
