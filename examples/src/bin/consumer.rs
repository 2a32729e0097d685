//! A Kafka consumer that cooperates with Telepresence intercepts.
//!
//! The same binary runs in the pod and on a workstation under an intercept:
//! Telepresence's environment (`TELEPRESENCE_API_PORT`, `TELEPRESENCE_API_HOST`,
//! `TELEPRESENCE_INTERCEPT_ID`) tells the SDK which side it is on; without it,
//! every message is processed as usual. The routing key `x-dev` may be a
//! header or a member of the message's tracing baggage.
//!
//! It is also the last stage of the pipeline example: with
//! `KAFKA_TOPIC=invoices` it reads what the `invoicer` example writes.
//!
//! Configuration, from the environment:
//! - `KAFKA_BROKERS` (default `localhost:9092`), `KAFKA_TOPIC` (`orders`),
//!   `KAFKA_GROUP` (`orders`; on a workstation the intercept ID is appended);
//! - `KAFKA_OPTIONS`: extra librdkafka settings, `key=value,key=value`;
//! - `KAFKA_MAX_MESSAGES`: stop once this many messages are dealt with,
//!   processed here or left to the other side (default: never).
//!
//! Ctrl-C or SIGTERM stops it: the message in hand is finished, what was
//! handled is committed, and it exits. When the Telepresence API fails, the
//! workstation waits for it (nothing is skipped) and the pod processes the
//! messages; both say so in their logs.
//!
//! ```sh
//! KAFKA_BROKERS=localhost:9092 cargo run -p telepresence-kafka-examples --bin consumer
//! ```

use std::io::Write;
use std::pin::pin;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use rdkafka::consumer::CommitMode;
use rdkafka::message::{Headers, Message};
use telepresence_kafka::ErrorKind;
use telepresence_kafka_examples::{
    env_or, filtered_consumer, init_logging, pipeline_client, shutdown_signal,
};

/// A Kafka consumer that cooperates with Telepresence intercepts: in the pod
/// it processes what no intercept takes, on a workstation exactly what its
/// intercept takes.
#[derive(Parser)]
#[command(
    name = "consumer",
    after_help = "Environment:
  KAFKA_BROKERS       bootstrap servers [default: localhost:9092]
  KAFKA_TOPIC         the topic [default: orders]
  KAFKA_GROUP         the pod's group; a workstation reads in GROUP-<id> [default: orders]
  KAFKA_OPTIONS       extra librdkafka settings: key=value,key=value
  KAFKA_MAX_MESSAGES  stop once this many messages are dealt with [default: never]

Set by Telepresence:
  TELEPRESENCE_API_PORT, TELEPRESENCE_API_HOST  the API (unset: not under Telepresence)
  TELEPRESENCE_INTERCEPT_ID                     the intercept's ID, on a workstation

This crate's own:
  TELEPRESENCE_KAFKA_CONTAINER_PORT  the container port, for a workload with several

A misconfiguration that would lose messages (a workstation without its
intercept ID, or in the pod's group) stops it, exit code 2, before any
message is skipped."
)]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    Args::parse();
    init_logging();
    let tp = pipeline_client()?;
    let topic = env_or("KAFKA_TOPIC", "orders");
    let group = tp.group_id(&env_or("KAFKA_GROUP", "orders"));
    let max_messages: Option<u64> = match std::env::var("KAFKA_MAX_MESSAGES") {
        Ok(n) => Some(n.parse().context("KAFKA_MAX_MESSAGES")?),
        Err(_) => None,
    };
    tracing::info!(
        telepresence = tp.is_enabled(),
        side = if tp.is_workstation() { "workstation" } else { "cluster" },
        %group,
        %topic,
        "starting"
    );

    // A workstation without its intercept ID (or a pod with one) would lose
    // or repeat messages: stop now, before subscribing. An API that does not
    // answer yet is no reason to stop; the decisions wait for it or fall back.
    match tp.check_side().await {
        Err(error) if error.kind() == ErrorKind::Config => {
            tracing::error!(%error, "refusing to consume");
            return Ok(std::process::ExitCode::from(2));
        }
        Err(error) => tracing::warn!(%error, "cannot check the Telepresence API's side yet"),
        Ok(()) => {}
    }

    // Offsets stored by the stream adapter, rebalances heard: see the helper.
    let consumer = filtered_consumer(&tp, "orders", &topic)?;

    let mut messages = tp.filter_stream(&consumer, 32);
    let mut shutdown = pin!(shutdown_signal());
    // The last messages may all be left to the other side; then only the
    // tick notices that the count is reached.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
    let mut processed: u64 = 0;
    loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break;
            }
            next = messages.next() => match next {
                None => break,
                Some(Err(error)) if error.kind() == ErrorKind::Config => {
                    // Refused before anything was skipped: nothing to commit.
                    tracing::error!(%error, "refusing to consume");
                    return Ok(std::process::ExitCode::from(2));
                }
                Some(Err(error)) => tracing::error!(%error, "cannot receive or decide a message"),
                Some(Ok(message)) => {
                    handle(&message);
                    messages.done(&message)?;
                    processed += 1;
                }
            },
            _ = tick.tick() => {}
        }
        // Every message handed out is handled by now: the count is of
        // messages dealt with, not of decisions made ahead of them.
        if max_messages.is_some_and(|max| messages.progress().total() >= max) {
            break;
        }
    }
    messages.commit(CommitMode::Sync).context("committing")?;
    let progress = messages.progress();
    let stats = tp.stats();
    tracing::info!(
        processed,
        left_to_the_other_side = progress.skipped,
        decisions_held = stats.held,
        decisions_by_failure_policy = stats.fallbacks,
        api_outages = stats.outages,
        "done"
    );
    Ok(std::process::ExitCode::SUCCESS)
}

/// The work: here, one line per message on stdout (a closed stdout is no
/// reason to stop consuming).
fn handle(message: &impl Message) {
    let developer = message
        .headers()
        .and_then(|headers| headers.iter().find(|h| h.key == "x-dev"))
        .and_then(|header| header.value)
        .map(String::from_utf8_lossy);
    let _ = writeln!(
        std::io::stdout().lock(),
        "processed {}/{}@{} x-dev={} payload={}",
        message.topic(),
        message.partition(),
        message.offset(),
        developer.as_deref().unwrap_or("-"),
        message
            .payload()
            .map(String::from_utf8_lossy)
            .as_deref()
            .unwrap_or(""),
    );
}
