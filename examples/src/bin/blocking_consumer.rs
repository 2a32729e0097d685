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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use telepresence_kafka::blocking;
use telepresence_kafka_examples::{apply_kafka_options, env_or, init_logging};

fn main() -> anyhow::Result<()> {
    init_logging();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    let tp = blocking::Client::from_env().context("reading Telepresence's environment")?;
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
    tracing::info!(processed = stats.consumed, skipped = stats.skipped, "done");
    Ok(())
}
