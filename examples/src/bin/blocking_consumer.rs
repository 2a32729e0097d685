//! A synchronous consumer: `BaseConsumer` with the blocking client.
//!
//! Same environment and behaviour as the `consumer` example (`KAFKA_BROKERS`,
//! `KAFKA_TOPIC`, `KAFKA_GROUP`, `KAFKA_OPTIONS`, `KAFKA_MAX_MESSAGES`), one
//! message at a time: decide, process or skip, commit. Ctrl-C or SIGTERM
//! stops it after the message in hand.
//!
//! ```sh
//! KAFKA_BROKERS=localhost:9092 cargo run -p telepresence-kafka-examples --bin blocking_consumer
//! ```

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use telepresence_kafka::{ErrorKind, blocking};
use telepresence_kafka_examples::{apply_kafka_options, env_or, init_logging};

/// A synchronous Kafka consumer (`BaseConsumer` and the blocking client)
/// that cooperates with Telepresence intercepts, one message at a time.
#[derive(Parser)]
#[command(
    name = "blocking_consumer",
    after_help = "Environment: the same as the consumer example's (run `consumer --help`):
  KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_GROUP, KAFKA_OPTIONS, KAFKA_MAX_MESSAGES,
  TELEPRESENCE_API_PORT, TELEPRESENCE_API_HOST, TELEPRESENCE_INTERCEPT_ID,
  TELEPRESENCE_KAFKA_CONTAINER_PORT."
)]
struct Args {}

fn main() -> anyhow::Result<ExitCode> {
    Args::parse();
    init_logging();
    match consume() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Refused before anything was skipped: nothing to commit.
        Err(error) => match error.downcast_ref::<telepresence_kafka::Error>() {
            Some(refusal) if refusal.kind() == ErrorKind::Config => {
                tracing::error!(error = %refusal, "refusing to consume");
                Ok(ExitCode::from(2))
            }
            _ => Err(error),
        },
    }
}

fn consume() -> anyhow::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let tp = blocking::Client::from_env()?;
    // A workstation without its intercept ID (or a pod with one) would lose
    // or repeat messages. An API that does not answer yet is no reason to
    // stop: the decisions wait for it or fall back.
    match tp.check_side() {
        Err(error) if error.kind() == ErrorKind::Config => return Err(error.into()),
        Err(error) => tracing::warn!(%error, "cannot check the Telepresence API's side yet"),
        Ok(()) => {}
    }
    let topic = env_or("KAFKA_TOPIC", "orders");
    let max_messages: u64 = env_or("KAFKA_MAX_MESSAGES", &u64::MAX.to_string())
        .parse()
        .context("KAFKA_MAX_MESSAGES")?;

    let mut config = ClientConfig::new();
    config
        .set(
            "bootstrap.servers",
            env_or("KAFKA_BROKERS", "localhost:9092"),
        )
        .set("group.id", tp.group_id(&env_or("KAFKA_GROUP", "orders")))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    apply_kafka_options(&mut config)?;
    let consumer: BaseConsumer = config.create().context("creating the consumer")?;
    // A workstation in the pod's group would skip the pod's messages for good.
    tp.check_group(&consumer)?;
    consumer.subscribe(&[&topic])?;

    let mut decided = 0;
    while decided < max_messages && !stop.load(Ordering::Relaxed) {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        if tp.should_consume(&message)? {
            let _ = writeln!(
                std::io::stdout().lock(),
                "processed {}/{}@{} payload={}",
                message.topic(),
                message.partition(),
                message.offset(),
                message
                    .payload()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
            );
        }
        // Processed or skipped, the offset moves on.
        consumer.commit_message(&message, CommitMode::Sync)?;
        decided += 1;
    }
    let stats = tp.stats();
    tracing::info!(
        consume_decisions = stats.consumed,
        skip_decisions = stats.skipped,
        "done"
    );
    Ok(())
}
