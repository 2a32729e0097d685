//! Writes messages with chosen headers, for trying intercepts by hand.
//!
//! ```sh
//! cargo run -p telepresence-kafka-examples --bin producer -- \
//!     --count 10 --header x-dev=alice --path /orders/new
//! ```
//!
//! The topic is created when missing (`--partitions`, default 3): some
//! brokers do not create topics on first use. Each message's payload is `message <n>`; `--header` adds a Kafka header to
//! every message (repeatable); `--path` adds the path header (`x-path` unless
//! `--path-header` says otherwise), which a consumer can send as the `path`
//! of its queries with `path_from_header`.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telepresence_kafka_examples::{IfExists, apply_kafka_options, create_topic, parse_key_value};

#[derive(Parser)]
#[command(about = "Writes messages with chosen headers")]
struct Args {
    /// Kafka bootstrap servers
    #[arg(long, env = "KAFKA_BROKERS", default_value = "localhost:9092")]
    brokers: String,
    /// Topic to write to
    #[arg(long, env = "KAFKA_TOPIC", default_value = "orders")]
    topic: String,
    /// How many messages
    #[arg(long, default_value_t = 1)]
    count: u32,
    /// Partitions of the topic, when this creates it (an existing topic is
    /// used as it is)
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// A header for every message, KEY=VALUE (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// A path to put in the path header
    #[arg(long)]
    path: Option<String>,
    /// The name of the path header
    #[arg(long, default_value = "x-path")]
    path_header: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    create_topic(&args.brokers, &args.topic, args.partitions, IfExists::Keep).await?;
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &args.brokers);
    apply_kafka_options(&mut config)?;
    let producer: FutureProducer = config.create().context("creating the producer")?;

    let mut headers = OwnedHeaders::new();
    for (key, value) in &args.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value),
        });
    }
    if let Some(path) = &args.path {
        headers = headers.insert(Header {
            key: &args.path_header,
            value: Some(path),
        });
    }
    for n in 0..args.count {
        let payload = format!("message {n}");
        let record = FutureRecord::<(), _>::to(&args.topic)
            .payload(&payload)
            .headers(headers.clone());
        producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)
            .with_context(|| format!("writing message {n} to {}", args.topic))?;
    }
    println!("produced {} messages to {}", args.count, args.topic);
    Ok(())
}
