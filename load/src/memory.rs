//! `tpk-load client-memory`: a long-running SDK client's memory, sampled as
//! decisions go by. A bounded client stays flat after warming up: the cache
//! holds at most its capacity, and nothing is kept per message.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use telepresence_kafka::{Client, HeaderList};
use telepresence_mock_server::{Intercept, MockServer};

use crate::report::Rss;

#[derive(clap::Parser)]
pub struct MemoryArgs {
    /// Decisions to make
    #[arg(long, default_value_t = 1_000_000)]
    decisions: u64,
    /// Decisions in flight
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Distinct routing values (more than the cache holds makes it evict)
    #[arg(long, default_value_t = 50_000)]
    distinct: u64,
    /// Cache capacity
    #[arg(long, default_value_t = 10_000)]
    cache_capacity: usize,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

pub async fn run(args: MemoryArgs) -> anyhow::Result<()> {
    let server = MockServer::builder()
        .journal_capacity(0)
        .intercept(Intercept::new("memory:orders").header("x-dev", "^alice"))
        .start()
        .await?;
    let tp = Client::builder()
        .api_url(server.url())
        .intercept_id("memory:orders")
        .decision_cache(Duration::from_secs(3600), ["x-dev"])
        .decision_cache_capacity(args.cache_capacity)
        .build()?;
    let pid = std::process::id();
    let start = Rss::of(pid)?;
    let mut samples = Vec::new();
    let checkpoints = 10;
    let per_checkpoint = args.decisions / checkpoints;
    for checkpoint in 0..checkpoints {
        let first = checkpoint * per_checkpoint;
        futures_util::stream::iter(first..first + per_checkpoint)
            .map(|n| {
                let tp = &tp;
                let distinct = args.distinct;
                async move {
                    let dev = format!("alice-{}", n % distinct);
                    let trace = format!("00-{n:032x}-00f067aa0ba902b7-01");
                    let headers: [(&str, Option<&[u8]>); 2] = [
                        ("x-dev", Some(dev.as_bytes())),
                        ("traceparent", Some(trace.as_bytes())),
                    ];
                    tp.should_consume(&HeaderList::new(&headers)).await
                }
            })
            .buffer_unordered(args.concurrency)
            .for_each(|answer| {
                answer.expect("the API answers");
                std::future::ready(())
            })
            .await;
        samples.push(((checkpoint + 1) * per_checkpoint, Rss::of(pid)?.kib));
    }
    let stats = tp.stats();
    let after_warmup = samples[0].1;
    let end = samples[samples.len() - 1].1;
    if args.json {
        println!(
            "{}",
            json!({
                "decisions": args.decisions,
                "cache_hits": stats.cache_hits,
                "requests": stats.requests,
                "rss_kib": { "start": start.kib, "samples": samples, "after_first_tenth": after_warmup, "end": end },
            })
        );
    } else {
        println!(
            "{} decisions ({} from the cache, {} requests)",
            args.decisions, stats.cache_hits, stats.requests
        );
        let mib = |kib: u64| kib as f64 / 1024.0;
        println!(
            "rss {:.1} MiB at start, {:.1} MiB after the first tenth, {:.1} MiB at the end",
            mib(start.kib),
            mib(after_warmup),
            mib(end)
        );
        let line: Vec<String> = samples
            .iter()
            .map(|(n, kib)| format!("{n}: {:.1}", mib(*kib)))
            .collect();
        println!("samples (decisions: MiB) {}", line.join(", "));
    }
    Ok(())
}
