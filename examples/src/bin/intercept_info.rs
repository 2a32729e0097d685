//! What the intercept says about a message, and one way to use it.
//!
//! `/intercept-info` returns the matching intercept's metadata (set with
//! `telepresence intercept --http-meta key=value`). A consumer can use it to
//! tag its work, or to route it: here, to the queue of the metadata's `owner`.
//!
//! ```sh
//! cargo run -p telepresence-kafka-examples --bin intercept_info -- --header x-dev=alice
//! ```

use clap::Parser;
use telepresence_kafka::{Client, ErrorKind, HeaderList};
use telepresence_kafka_examples::parse_key_value;

#[derive(Parser)]
#[command(about = "Asks /intercept-info about a message given by its headers")]
struct Args {
    /// A message header, KEY=VALUE (repeatable)
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    headers: Vec<(String, String)>,
    /// The message's path
    #[arg(long)]
    path: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tp = Client::from_env()?;
    let pairs: Vec<(&str, Option<&[u8]>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_bytes())))
        .collect();
    let mut message = HeaderList::new(&pairs);
    if let Some(path) = &args.path {
        message = message.path(path);
    }
    let info = match tp.intercept_info(&message).await {
        Ok(info) => info,
        Err(error) if error.kind() == ErrorKind::NotConfigured => {
            println!("not under Telepresence: every message is processed here, untagged");
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    let side = if info.client_side {
        "workstation"
    } else {
        "cluster"
    };
    println!("intercepted: {} (asked the {side} side)", info.intercepted);
    for (key, value) in &info.metadata {
        println!("metadata: {key}={value}");
    }
    // Routing work by metadata: the intercept's owner gets it in their queue.
    let queue = match info.metadata.get("owner") {
        Some(owner) if info.intercepted => format!("work.{owner}"),
        _ => "work.default".to_owned(),
    };
    println!("route: {queue}");
    Ok(())
}
