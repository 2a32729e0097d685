//! The whole story in one command: a topic, a pod, a workstation, and an
//! intercept that splits the messages between them exactly.
//!
//! ```sh
//! cargo run --release -p telepresence-kafka-examples --bin demo
//! ```
//!
//! By default everything runs in this process, nothing to install: Kafka is
//! librdkafka's mock cluster, and two mock Telepresence API servers stand in
//! for the traffic-agent in the pod (agent side) and the user daemon on the
//! workstation (client side), with one intercept: messages with
//! `x-dev: alice`. A producer writes a mix of messages; a cluster consumer and
//! a workstation consumer, each in its own consumer group, read the topic
//! through the SDK's stream adapter. The table at the end says whether the
//! split was exact, and so does the exit code (0: exact, 1: not).
//!
//! `--brokers` uses real brokers instead (a fresh topic is created), and
//! `--cluster-api` / `--workstation-api` real or external API servers.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use rdkafka::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use telepresence_kafka::Client;
use telepresence_kafka_examples::{EmbeddedKafka, IfExists, create_topic};
use telepresence_mock_server::{Intercept, MockServer, Side};

const INTERCEPT_ID: &str = "3f1c9a52-7d4e-4b8a-9c61-0e2f5a7b8d90:orders";
const DEVELOPERS: [&str; 4] = ["alice", "bob", "carol", ""];

#[derive(Parser)]
#[command(about = "Runs a pod and a workstation side by side on one topic and checks the split")]
struct Args {
    /// Kafka bootstrap servers [default: an in-process Kafka, librdkafka's mock cluster]
    #[arg(long, value_name = "HOST:PORT,...")]
    brokers: Option<String>,
    /// The cluster side's Telepresence API [default: an in-process mock server, agent side]
    #[arg(long, value_name = "URL")]
    cluster_api: Option<String>,
    /// The workstation's Telepresence API [default: an in-process mock server, client side]
    #[arg(long, value_name = "URL")]
    workstation_api: Option<String>,
    /// The intercept ID the workstation sends
    #[arg(long, default_value = INTERCEPT_ID)]
    intercept_id: String,
    /// Messages to produce
    #[arg(long, default_value_t = 3000)]
    messages: usize,
    /// Partitions of the demo topic
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Decisions in flight per consumer
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// One side's consumer: its name and its SDK client.
struct Reader {
    name: &'static str,
    tp: Client,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let run_id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let topic = format!("tpk-demo-{run_id}");

    let embedded = match &args.brokers {
        None => Some(EmbeddedKafka::start(&topic, args.partitions)?),
        Some(_) => None,
    };
    let brokers = match (&embedded, &args.brokers) {
        (Some(kafka), _) => kafka.bootstrap.clone(),
        (None, Some(brokers)) => {
            create_topic(brokers, &topic, args.partitions, IfExists::Fail).await?;
            brokers.clone()
        }
        (None, None) => unreachable!(),
    };

    let intercept = Intercept::new(&args.intercept_id)
        .header("x-dev", "alice")
        .metadata("owner", "alice");
    let mut servers = Vec::new();
    let cluster_api = match &args.cluster_api {
        Some(url) => url.clone(),
        None => {
            let server = MockServer::builder()
                .side(Side::Agent)
                .intercept(intercept.clone())
                .start()
                .await?;
            let url = server.url();
            servers.push(server);
            url
        }
    };
    let workstation_api = match &args.workstation_api {
        Some(url) => url.clone(),
        None => {
            let server = MockServer::builder()
                .side(Side::Client)
                .intercept(intercept)
                .start()
                .await?;
            let url = server.url();
            servers.push(server);
            url
        }
    };
    let cluster = Reader {
        name: "cluster",
        tp: Client::builder().api_url(&cluster_api).build()?,
    };
    let workstation = Reader {
        name: "workstation",
        tp: Client::builder()
            .api_url(&workstation_api)
            .intercept_id(&args.intercept_id)
            .build()?,
    };

    println!(
        "Kafka:            {}",
        describe(&args.brokers, &brokers, "in-process mock cluster")
    );
    println!("topic:            {topic} ({} partitions)", args.partitions);
    println!(
        "cluster API:      {}",
        describe(
            &args.cluster_api,
            &cluster_api,
            "in-process mock, agent side"
        )
    );
    println!(
        "workstation API:  {}",
        describe(
            &args.workstation_api,
            &workstation_api,
            "in-process mock, client side"
        )
    );
    println!("intercept:        {} (x-dev: alice)", args.intercept_id);
    println!();

    let bars = MultiProgress::new();
    let produce_bar = bars.add(bar(args.messages, "producer"));
    let produced = produce(&brokers, &topic, args.messages, &produce_bar).await?;
    produce_bar.finish();

    let base_group = format!("tpk-demo-{run_id}");
    let consume_side = |reader| {
        consume(
            reader,
            &brokers,
            &topic,
            &base_group,
            embedded.is_some(),
            &args,
            &bars,
        )
    };
    let ((by_cluster, cluster_busy), (by_workstation, workstation_busy)) =
        tokio::try_join!(consume_side(&cluster), consume_side(&workstation))?;
    let elapsed = cluster_busy.max(workstation_busy);

    let produced_ids: BTreeSet<usize> = (0..produced).collect();
    let overlap = by_cluster.intersection(&by_workstation).count();
    let missing = produced_ids
        .difference(&(&by_cluster | &by_workstation))
        .count();
    let decisions = cluster.tp.stats().consumed
        + cluster.tp.stats().skipped
        + workstation.tp.stats().consumed
        + workstation.tp.stats().skipped;
    let alices = by_workstation
        .iter()
        .filter(|&&id| developer(id) == "alice")
        .count();

    println!();
    println!("{:<34}{:>10}", "produced", produced);
    println!("{:<34}{:>10}", "processed by the cluster", by_cluster.len());
    println!(
        "{:<34}{:>10}",
        "processed by the workstation",
        by_workstation.len()
    );
    println!("{:<34}{:>10}", "  of which x-dev: alice", alices);
    println!("{:<34}{:>10}", "overlap (must be 0)", overlap);
    println!("{:<34}{:>10}", "missing (must be 0)", missing);
    println!(
        "{:<34}{:>10.0}",
        "decisions per second",
        decisions as f64 / elapsed.as_secs_f64()
    );
    let fallbacks = cluster.tp.stats().fallbacks + workstation.tp.stats().fallbacks;
    if fallbacks > 0 {
        println!("{:<34}{:>10}", "fallbacks (API failures)", fallbacks);
    }
    let exact = overlap == 0 && missing == 0;
    println!();
    println!(
        "{}",
        if exact {
            "the split is exact"
        } else {
            "the split is NOT exact"
        }
    );
    drop(servers);
    Ok(exact)
}

fn describe(flag: &Option<String>, address: &str, embedded: &str) -> String {
    match flag {
        Some(_) => address.to_owned(),
        None => format!("{embedded} at {address}"),
    }
}

fn bar(length: usize, name: &str) -> ProgressBar {
    let bar = ProgressBar::new(length as u64);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos:>6}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(name.to_owned());
    bar
}

/// Who a message is for: a mix, a quarter of them alice's.
fn developer(id: usize) -> &'static str {
    DEVELOPERS[id % DEVELOPERS.len()]
}

async fn produce(
    brokers: &str,
    topic: &str,
    count: usize,
    bar: &ProgressBar,
) -> anyhow::Result<usize> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;
    let sends = (0..count).map(|id| {
        let producer = &producer;
        async move {
            let payload = id.to_string();
            let path = format!("/orders/{id}");
            let mut headers = OwnedHeaders::new().insert(Header {
                key: "x-path",
                value: Some(&path),
            });
            let dev = developer(id);
            if !dev.is_empty() {
                headers = headers.insert(Header {
                    key: "x-dev",
                    value: Some(dev),
                });
            }
            let record = FutureRecord::<(), _>::to(topic)
                .payload(&payload)
                .headers(headers);
            let sent = producer.send(record, Duration::from_secs(30)).await;
            bar.inc(1);
            sent.map(drop).map_err(|(error, _)| error)
        }
    });
    let results: Vec<_> = futures_util::stream::iter(sends)
        .buffer_unordered(256)
        .collect()
        .await;
    for result in results {
        result.context("producing")?;
    }
    Ok(count)
}

/// One side's consumer, in its own group, through the stream adapter, until
/// it has decided every produced message. Returns the ids it processed.
async fn consume(
    side: &Reader,
    brokers: &str,
    topic: &str,
    base_group: &str,
    embedded: bool,
    args: &Args,
    bars: &MultiProgress,
) -> anyhow::Result<(BTreeSet<usize>, Duration)> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", side.tp.group_id(base_group))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false");
    if embedded {
        // The mock cluster delays a classic group's first assignment by
        // seconds; the next-generation protocol starts at once.
        config.set("group.protocol", "consumer");
    }
    let consumer: StreamConsumer = config.create().context("creating a consumer")?;
    consumer.subscribe(&[topic])?;

    let bar = bars.add(bar(args.messages, side.name));
    let mut processed = BTreeSet::new();
    let mut messages = side.tp.filter_stream(&consumer, args.concurrency);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut first_decision = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let decided = messages.progress().total() as usize;
        // The rate counts from the first decision, not from joining the group.
        if decided > 0 && first_decision.is_none() {
            first_decision = Some(Instant::now());
        }
        bar.set_position(decided as u64);
        bar.set_message(format!("processed {}", processed.len()));
        if decided >= args.messages {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{}: only {decided} decisions in 300 s",
            side.name
        );
        tokio::select! {
            message = messages.next() => {
                let message = message.context("the stream ended")??;
                let id = message
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| p.parse().ok())
                    .context("a demo message has its id as payload")?;
                processed.insert(id);
                messages.done(&message)?;
            }
            _ = tick.tick() => {}
        }
    }
    messages.commit(CommitMode::Sync)?;
    bar.finish();
    let busy = first_decision.map_or(Duration::ZERO, |first| first.elapsed());
    Ok((processed, busy))
}
