//! `tpk-load kafka`: a consumer's throughput with and without the SDK, on the
//! demo's workload, through librdkafka's in-process mock cluster.
//!
//! Both runs read the same topic from the start, every partition assigned
//! (offsets committed to a group of their own; no group protocol, whose
//! coordination in the mock cluster sometimes stalls). The baseline reads
//! every message and does nothing else; a second consumer also reads every
//! header of every message through librdkafka, as any filter on headers
//! must (the ceiling of such a filter); the others are workstation
//! consumers: the stream adapter asks the (in-process) mock API about every
//! message, up to `--depth` at once, and marks what it hands out done. With
//! the cache, a plain loop that awaits each decision and stores no offset
//! shows what the decision costs apart from the stream adapter.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use telepresence_kafka::{Client, ClientBuilder};
use telepresence_mock_server::{Intercept, MockServer};

const TOPIC: &str = "orders";
const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";

#[derive(clap::Parser)]
pub struct KafkaArgs {
    /// Messages to produce and consume
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Partitions of the topic
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Decisions in flight in the stream adapter
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Also measure with the decision cache (keyed by `x-dev`), this TTL in seconds
    #[arg(long)]
    cache_ttl: Option<u64>,
    /// librdkafka's `queued.max.messages.kbytes` for every consumer. With its
    /// default (64 MiB) a consumer slower than the in-process broker lets the
    /// prefetch queue grow, and then slows down the longer the run: at
    /// 200 000 messages the cached run measured half its rate at 100 000.
    #[arg(long, default_value_t = 1024)]
    queued_kbytes: u32,
    /// Times each fast consumer (all but the uncached one) reads the topic,
    /// taking turns; each figure is the median of its runs
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Skip the run without the cache (to profile the cached one)
    #[arg(long, requires = "cache_ttl")]
    cached_only: bool,
    /// Run this consumer alone, `--repeat` times (to profile it or count
    /// its instructions); the cached ones use `--cache-ttl`, 60 s if not given
    #[arg(long, value_enum, conflicts_with = "cached_only")]
    only: Option<Only>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// The consumers `--only` can run alone.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Only {
    /// Reads every message and does nothing else.
    Baseline,
    /// Also reads every header of every message.
    Headers,
    /// Awaits the SDK's decision from the cache on each message.
    Decisions,
    /// Filters with the SDK's stream adapter, decisions from the cache.
    Cached,
}

pub async fn run(args: KafkaArgs) -> anyhow::Result<()> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let (_stop, stop_rx) = mpsc::channel::<()>();
    let partitions = args.partitions;
    std::thread::spawn(move || {
        let cluster =
            MockCluster::new(1).and_then(|c| c.create_topic(TOPIC, partitions, 1).map(|()| c));
        match cluster {
            Ok(cluster) => {
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                let _ = stop_rx.recv();
            }
            Err(error) => {
                let _ = ready_tx.send(Err(error));
            }
        }
    });
    let bootstrap = ready_rx.recv()?.context("starting the mock cluster")?;
    produce(&bootstrap, args.messages).await?;
    check_nothing_dropped(&bootstrap, args.partitions)?;

    let server = MockServer::builder()
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await?;
    let client = Client::builder().api_url(server.url()).intercept_id(ID);
    if let Some(only) = args.only {
        let (name, rate) = run_alone(only, &bootstrap, &args, client).await?;
        if args.json {
            println!(
                "{}",
                json!({ "messages": args.messages, "consumer": name, "msgs_per_s": rate })
            );
        } else {
            println!("{} messages, {name}: {rate:.0} msg/s", args.messages);
        }
        return Ok(());
    }
    let tp = client.clone().build()?;
    let cached = match args.cache_ttl {
        Some(ttl) => Some(
            client
                .decision_cache(Duration::from_secs(ttl), ["x-dev"])
                .build()?,
        ),
        None => None,
    };
    // The fast consumers take turns, so that a slow moment of the machine
    // falls on all of them alike rather than on whichever ran then; each
    // figure is the median of its runs.
    let mut readers = vec![("baseline", Reader::Baseline), ("headers", Reader::Headers)];
    if let Some(cached) = &cached {
        readers.push(("workstation-decisions", Reader::Decisions(cached)));
        readers.push(("workstation-cached", Reader::Sdk(cached)));
    }
    let mut runs = vec![Vec::new(); readers.len()];
    for turn in 0..args.repeat.max(1) {
        for ((name, reader), runs) in readers.iter().zip(&mut runs) {
            let group = format!("{name}-{turn}");
            runs.push(drain(&bootstrap, &args, &group, *reader).await?);
        }
    }
    let mut medians = runs.into_iter().map(median);
    let baseline = medians.next().expect("the baseline always runs");
    let headers = medians.next().expect("the header reader always runs");
    let with_cache = cached.is_some().then(|| {
        let plain = medians.next().expect("runs with the cache");
        let stream = medians.next().expect("runs with the cache");
        (plain, stream)
    });
    // Uncached, the rate is the API's, far below the noise: one run.
    let with_sdk = if args.cached_only {
        None
    } else {
        Some(drain(&bootstrap, &args, "workstation", Reader::Sdk(&tp)).await?)
    };

    let rate = |d: Duration| args.messages as f64 / d.as_secs_f64();
    if args.json {
        println!(
            "{}",
            json!({
                "messages": args.messages,
                "repeat": args.repeat.max(1),
                "depth": args.depth,
                "baseline_msgs_per_s": rate(baseline),
                "headers_msgs_per_s": rate(headers),
                "headers_ratio": rate(headers) / rate(baseline),
                "sdk_msgs_per_s": with_sdk.map(rate),
                "sdk_ratio": with_sdk.map(|d| rate(d) / rate(baseline)),
                "decisions_msgs_per_s": with_cache.map(|(d, _)| rate(d)),
                "decisions_ratio": with_cache.map(|(d, _)| rate(d) / rate(baseline)),
                "cached_msgs_per_s": with_cache.map(|(_, d)| rate(d)),
                "cached_ratio": with_cache.map(|(_, d)| rate(d) / rate(baseline)),
            })
        );
    } else {
        println!(
            "{} messages, {} partitions, medians of {} runs",
            args.messages,
            args.partitions,
            args.repeat.max(1)
        );
        println!("without the SDK             {:>9.0} msg/s", rate(baseline));
        let line = |name: &str, d: Duration| {
            println!(
                "{name:<27} {:>9.0} msg/s ({:.2} of the baseline)",
                rate(d),
                rate(d) / rate(baseline)
            );
        };
        line("reading every header", headers);
        if let Some(d) = with_sdk {
            line(&format!("workstation, depth {}", args.depth), d);
        }
        if let Some((plain, stream)) = with_cache {
            line("cached decisions, no stream", plain);
            line("workstation, cached", stream);
        }
    }
    Ok(())
}

/// `--only`: one consumer, `--repeat` times; its name and median rate in
/// messages per second.
async fn run_alone(
    only: Only,
    bootstrap: &str,
    args: &KafkaArgs,
    client: ClientBuilder,
) -> anyhow::Result<(&'static str, f64)> {
    let cached = || {
        let ttl = Duration::from_secs(args.cache_ttl.unwrap_or(60));
        client.clone().decision_cache(ttl, ["x-dev"]).build()
    };
    let tp;
    let (name, reader) = match only {
        Only::Baseline => ("baseline", Reader::Baseline),
        Only::Headers => ("headers", Reader::Headers),
        Only::Decisions => {
            tp = cached()?;
            ("workstation-decisions", Reader::Decisions(&tp))
        }
        Only::Cached => {
            tp = cached()?;
            ("workstation-cached", Reader::Sdk(&tp))
        }
    };
    let mut runs = Vec::new();
    for turn in 0..args.repeat.max(1) {
        runs.push(drain(bootstrap, args, &format!("{name}-{turn}"), reader).await?);
    }
    Ok((name, args.messages as f64 / median(runs).as_secs_f64()))
}

async fn produce(bootstrap: &str, count: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()?;
    let sends = (0..count).map(|n| {
        let producer = &producer;
        async move {
            let payload = n.to_string();
            let dev = ["alice", "bob", "carol", ""][n % 4];
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "x-dev",
                    value: Some(dev),
                })
                .insert(Header {
                    key: "traceparent",
                    value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                });
            let record = FutureRecord::<(), _>::to(TOPIC)
                .payload(&payload)
                .headers(headers);
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map(drop)
                .map_err(|(e, _)| e)
        }
    });
    let results: Vec<_> = futures_util::stream::iter(sends)
        .buffer_unordered(512)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(())
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

/// The mock cluster keeps about 5 MiB of each partition's log and drops the
/// oldest batches past it: a run that reads fewer messages than it produced
/// would wait for them forever.
fn check_nothing_dropped(bootstrap: &str, partitions: i32) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for partition in 0..partitions {
        let (low, high) = consumer.fetch_watermarks(TOPIC, partition, Duration::from_secs(10))?;
        if low > 0 {
            anyhow::bail!(
                "the in-process cluster dropped the first {low} of the {high} messages of \
                 partition {partition} (it keeps about 5 MiB per partition): use fewer \
                 --messages or more --partitions"
            );
        }
    }
    Ok(())
}

/// What a consumer does with each message.
#[derive(Clone, Copy)]
enum Reader<'a> {
    /// Nothing.
    Baseline,
    /// Reads every header's name and value, nothing else.
    Headers,
    /// Filters with the SDK and marks what it hands out done.
    Sdk(&'a Client),
    /// Awaits the SDK's decision on each message, nothing else: no stream
    /// adapter, no offsets.
    Decisions(&'a Client),
}

/// Reads `--messages` messages, every partition assigned, in a group of its
/// own; the clock starts at the first one, so the start-up is not counted.
async fn drain(
    bootstrap: &str,
    args: &KafkaArgs,
    group: &str,
    reader: Reader<'_>,
) -> anyhow::Result<Duration> {
    let (count, depth) = (args.messages, args.depth);
    // A workstation reads in a group of its own, as the SDK checks.
    let group = match reader {
        Reader::Sdk(tp) | Reader::Decisions(tp) => tp.group_id(group),
        _ => group.to_owned(),
    };
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        // With its default (1 s), the fetcher pauses whenever a consumer is
        // ahead of it, and the pauses, not the consumer, set the rate.
        .set("fetch.queue.backoff.ms", "0")
        // With its default (500 ms), the last fetch of a run often waits
        // for data that never comes while another partition's last batch
        // is still on its way: a run measured a third of its rate, all of
        // it lost in the last tenth of its messages.
        .set("fetch.wait.max.ms", "10")
        .set("queued.max.messages.kbytes", args.queued_kbytes.to_string())
        .create()?;
    // Every partition assigned, no group protocol: the mock cluster's group
    // coordination sometimes stalls a new member for good, and a rate
    // measurement has nothing to learn from it.
    let mut assignment = rdkafka::TopicPartitionList::new();
    for partition in 0..args.partitions {
        assignment.add_partition_offset(TOPIC, partition, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    consumer.recv().await?;
    let started = Instant::now();
    match reader {
        Reader::Baseline => {
            for _ in 1..count {
                consumer.recv().await?;
            }
        }
        Reader::Headers => {
            for _ in 1..count {
                let message = consumer.recv().await?;
                for header in message.headers().iter().flat_map(|h| h.iter()) {
                    std::hint::black_box((header.key, header.value));
                }
            }
        }
        Reader::Decisions(tp) => {
            for _ in 1..count {
                let message = consumer.recv().await?;
                std::hint::black_box(tp.should_consume(&message).await?);
            }
        }
        Reader::Sdk(tp) => {
            let mut messages = tp.filter_stream(&consumer, depth);
            // Skips at the end are let out only when the stream is polled:
            // a tick polls it when nothing is handed out. One timer for the
            // run, polled only when the stream has nothing: a timer made per
            // message would cost this loop more than the baseline's whole
            // iteration.
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            let mut seen = 1;
            while seen < count {
                tokio::select! {
                    biased;
                    message = messages.next() => {
                        let message = message.context("the stream ended")??;
                        messages.done(&message)?;
                    }
                    _ = tick.tick() => {}
                }
                seen = 1 + messages.progress().total() as usize;
            }
        }
    }
    Ok(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run whose topic outgrew the mock cluster's log would wait forever
    /// for messages the cluster dropped; it says so instead.
    #[tokio::test]
    async fn a_topic_the_cluster_trimmed_is_refused_before_reading() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 1, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        produce(&bootstrap, 1_000).await.unwrap();
        check_nothing_dropped(&bootstrap, 1).expect("1 000 messages fit");
        // About 100 bytes each: far past the 5 MiB the cluster keeps.
        produce(&bootstrap, 80_000).await.unwrap();
        let error = check_nothing_dropped(&bootstrap, 1).unwrap_err();
        let error = error.to_string();
        assert!(
            error.contains("dropped the first") && error.contains("partition 0"),
            "{error}"
        );
    }

    /// `--only` runs the consumer it names and reads the whole topic with it
    /// (bench/instructions.sh counts each consumer's work this way).
    #[tokio::test]
    async fn each_consumer_runs_alone_to_the_last_message() {
        use clap::Parser;

        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            kafka: KafkaArgs,
        }
        let args = Cli::parse_from(["tpk-load", "--messages", "400", "--partitions", "2"]).kafka;
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic(TOPIC, 2, 1).unwrap();
        let bootstrap = cluster.bootstrap_servers();
        produce(&bootstrap, 400).await.unwrap();
        let server = MockServer::builder()
            .intercept(Intercept::new(ID).header("x-dev", "alice"))
            .start()
            .await
            .unwrap();
        let client = Client::builder().api_url(server.url()).intercept_id(ID);
        for (only, expected) in [
            (Only::Baseline, "baseline"),
            (Only::Headers, "headers"),
            (Only::Decisions, "workstation-decisions"),
            (Only::Cached, "workstation-cached"),
        ] {
            let (name, rate) = run_alone(only, &bootstrap, &args, client.clone())
                .await
                .unwrap();
            assert_eq!(name, expected);
            assert!(rate > 0.0, "{name}: {rate}");
        }
        // The two workstation consumers asked the API, but not about each
        // of their 800 messages: the rest came from their caches.
        let journal = server.admin().journal().await.unwrap();
        let asked = journal
            .iter()
            .filter(|entry| entry.endpoint == "/consume-here")
            .count();
        assert!((1..400).contains(&asked), "{asked} queries");
    }
}
