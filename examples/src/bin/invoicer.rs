//! The middle of a pipeline: reads orders, writes one invoice per order it
//! processes, and passes the order's routing context on to the invoice.
//!
//! With intercepts on this service and on the one that reads invoices
//! (the `consumer` example with `KAFKA_TOPIC=invoices`), alice's order is
//! processed on her workstation, and so is the invoice it causes: the
//! invoice carries the order's `x-dev` header, or its tracing baggage, so
//! the next intercept routes it the same way. Without the routing context,
//! the invoice would reach the pod of the second service instead.
//!
//! Configuration, from the environment:
//! - `KAFKA_BROKERS` (default `localhost:9092`), `KAFKA_TOPIC` (`orders`),
//!   `KAFKA_OUTPUT_TOPIC` (`invoices`), `KAFKA_GROUP` (`invoicer`; on a
//!   workstation the intercept ID is appended);
//! - `KAFKA_OPTIONS`: extra librdkafka settings for the consumer,
//!   `key=value,key=value`.
//!
//! An order is done once its invoice is written: a crash in between writes
//! that invoice again after the restart (at least once). Ctrl-C or SIGTERM
//! stops it after the order in hand, committing what is done.
//!
//! ```sh
//! KAFKA_BROKERS=localhost:9092 cargo run -p telepresence-kafka-examples --bin invoicer
//! ```

use std::io::Write;
use std::pin::pin;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::CommitMode;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telepresence_kafka::{Client, ErrorKind, WithRouting};
use telepresence_kafka_examples::{
    env_or, filtered_consumer, init_logging, pipeline_client, shutdown_signal,
};

/// Reads orders and writes an invoice for each order this side processes,
/// carrying the order's routing context.
#[derive(Parser)]
#[command(
    name = "invoicer",
    after_help = "Environment:
  KAFKA_BROKERS       bootstrap servers [default: localhost:9092]
  KAFKA_TOPIC         the orders [default: orders]
  KAFKA_OUTPUT_TOPIC  the invoices [default: invoices]
  KAFKA_GROUP         the pod's group; a workstation reads in GROUP-<id> [default: invoicer]
  KAFKA_OPTIONS       extra librdkafka settings for the consumer: key=value,key=value

Set by Telepresence:
  TELEPRESENCE_API_PORT, TELEPRESENCE_API_HOST  the API (unset: not under Telepresence)
  TELEPRESENCE_INTERCEPT_ID                     the intercept's ID, on a workstation"
)]
struct Args {}

#[tokio::main]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    Args::parse();
    init_logging();
    let tp = pipeline_client()?;
    let brokers = env_or("KAFKA_BROKERS", "localhost:9092");
    let orders = env_or("KAFKA_TOPIC", "orders");
    let invoices = env_or("KAFKA_OUTPUT_TOPIC", "invoices");
    let group = tp.group_id(&env_or("KAFKA_GROUP", "invoicer"));
    tracing::info!(telepresence = tp.is_enabled(), %group, %orders, %invoices, "starting");

    let consumer = filtered_consumer(&tp, "invoicer", &orders)?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .context("creating the producer")?;

    let mut messages = tp.filter_stream(&consumer, 32);
    let mut shutdown = pin!(shutdown_signal());
    loop {
        let order = tokio::select! {
            () = &mut shutdown => break,
            next = messages.next() => match next {
                None => break,
                Some(Err(error)) if error.kind() == ErrorKind::Config => {
                    tracing::error!(%error, "refusing to consume");
                    return Ok(std::process::ExitCode::from(2));
                }
                Some(Err(error)) => {
                    tracing::error!(%error, "cannot receive or decide an order");
                    continue;
                }
                Some(Ok(order)) => order,
            },
        };
        invoice(&tp, &producer, &invoices, &order).await?;
        messages.done(&order)?;
    }
    messages.commit(CommitMode::Sync).context("committing")?;
    tracing::info!(invoiced = messages.progress().handed_out, "done");
    Ok(std::process::ExitCode::SUCCESS)
}

/// Writes the order's invoice, with the order's routing context, and says so
/// on stdout.
async fn invoice(
    tp: &Client,
    producer: &FutureProducer,
    invoices: &str,
    order: &BorrowedMessage<'_>,
) -> anyhow::Result<()> {
    let payload = order.payload().unwrap_or_default();
    let mut record = FutureRecord::<[u8], [u8]>::to(invoices)
        .payload(payload)
        .with_routing(&tp.routing_headers(order));
    if let Some(key) = order.key() {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)
        .context("writing an invoice")?;
    let _ = writeln!(
        std::io::stdout().lock(),
        "invoiced {}/{}@{} payload={}",
        order.topic(),
        order.partition(),
        order.offset(),
        String::from_utf8_lossy(payload),
    );
    Ok(())
}
