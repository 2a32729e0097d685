//! `tpk-load`: drives a Telepresence API server (the mock server, or any URL)
//! with realistic queries and reports throughput and latency percentiles;
//! also measures a server's time from start to its first healthy answer.
//!
//! ```sh
//! tpk-load run --url http://127.0.0.1:9980 --concurrency 64 --duration 10s
//! tpk-load run --url http://127.0.0.1:9980 --requests 1000000 --rss-pid 1234 --json
//! tpk-load startup --runs 20 -- target/release/telepresence-mock-server --listen 127.0.0.1:9980
//! tpk-load kafka --messages 20000 --depth 32
//! tpk-load soak --url http://127.0.0.1:9980 --requests 1000000 --swap-every 100ms
//! tpk-load client-memory --decisions 1000000
//! tpk-load breakdown --queries 20000
//! ```
//!
//! Each query is what a consumer sends: `GET /consume-here` with
//! `path=/orders/<n>` and `containerPort=8080`, the caller's intercept ID and
//! ten message headers (a trace context among them), `x-dev` alternating
//! between `alice` and `bob` so both answers occur. Every worker keeps one
//! keep-alive HTTP/1.1 connection, so the concurrency is the number of
//! connections.

mod breakdown;
mod kafka;
mod memory;
mod report;
mod soak;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use telepresence_api::CALLER_INTERCEPT_ID_HEADER;

use crate::report::{LoadReport, Rss, StartupReport};

#[derive(Parser)]
#[command(
    name = "tpk-load",
    version,
    about = "Load tool for Telepresence API servers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sends queries at a fixed concurrency and reports throughput and latency.
    Run(RunArgs),
    /// Starts a server command repeatedly and reports the time to its first
    /// `200` on `/healthz`.
    Startup(StartupArgs),
    /// A Kafka consumer's throughput with and without the SDK, through an
    /// in-process Kafka.
    Kafka(kafka::KafkaArgs),
    /// A long run while the intercepts are replaced, checking every answer.
    Soak(soak::SoakArgs),
    /// A long-running SDK client's memory as decisions go by.
    ClientMemory(memory::MemoryArgs),
    /// Where an uncached decision's time goes, layer by layer, against the
    /// raw loopback round trip.
    Breakdown(breakdown::BreakdownArgs),
}

#[derive(Parser)]
struct RunArgs {
    /// The server's base URL
    #[arg(long, default_value = "http://127.0.0.1:9980")]
    url: String,
    /// The endpoint to query
    #[arg(long, default_value = "/consume-here")]
    endpoint: String,
    /// Concurrent connections, each with one request in flight
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// How long to send, e.g. `10s`, `500ms` (ignored with --requests)
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Send exactly this many requests instead of running for a duration
    #[arg(long)]
    requests: Option<u64>,
    /// Unmeasured time before measuring, to fill connection pools and caches
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// The caller's intercept ID header
    #[arg(long, default_value = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders")]
    caller_id: String,
    /// Report the resident memory of this process before and after
    #[arg(long)]
    rss_pid: Option<u32>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

#[derive(Parser)]
struct StartupArgs {
    /// The URL the server will answer on
    #[arg(long, default_value = "http://127.0.0.1:9980")]
    url: String,
    /// How many starts to measure
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
    /// The server command and its arguments
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |at| text.split_at(at));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{text}`: the unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => run(args).await,
        Command::Startup(args) => startup(args).await,
        Command::Kafka(args) => kafka::run(args).await,
        Command::Soak(args) => soak::run(args).await,
        Command::ClientMemory(args) => memory::run(args).await,
        Command::Breakdown(args) => breakdown::run(args).await,
    }
}

/// The parts of every query that do not change.
struct Template {
    authority: String,
    address: String,
    endpoint: String,
    caller_id: HeaderValue,
}

impl Template {
    fn new(url: &str, endpoint: &str, caller_id: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("--url {url}"))?;
        if uri.scheme_str() != Some("http") {
            bail!("--url {url}: only http:// is supported");
        }
        let authority = uri.authority().context("--url has no host")?.to_string();
        let address = match uri.port_u16() {
            Some(_) => authority.clone(),
            None => format!("{authority}:80"),
        };
        Ok(Self {
            authority,
            address,
            endpoint: endpoint.to_owned(),
            caller_id: HeaderValue::from_str(caller_id).context("--caller-id")?,
        })
    }

    fn request(&self, n: u64) -> Request<Empty<Bytes>> {
        let path = format!("/orders/{n}");
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("path", &path)
            .append_pair("containerPort", "8080")
            .finish();
        let dev = if n % 2 == 0 { "alice" } else { "bob" };
        Request::get(format!("{}?{query}", self.endpoint))
            .header("host", &self.authority)
            .header(CALLER_INTERCEPT_ID_HEADER, self.caller_id.clone())
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("x-dev", dev)
            .header("content-type", "application/json")
            .header("x-request-id", "5f0c6b1e-6a47-4a3e-9f1c-2b1d8c9e7a10")
            .header("x-tenant", "acme")
            .header("x-schema-version", "7")
            .header("x-source", "orders-api")
            .header("x-retry-count", "0")
            .header("x-partition-key", "customer-42")
            .header("x-path", &path)
            .body(Empty::new())
            .expect("a valid request")
    }
}

/// What all workers share.
struct Shared {
    template: Template,
    /// Requests handed out so far (when counting requests).
    issued: AtomicU64,
    limit: Option<u64>,
    measuring: AtomicBool,
    stop: AtomicBool,
    errors: AtomicU64,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let shared = Arc::new(Shared {
        template: Template::new(&args.url, &args.endpoint, &args.caller_id)?,
        issued: AtomicU64::new(0),
        limit: args.requests,
        measuring: AtomicBool::new(args.warmup.is_zero()),
        stop: AtomicBool::new(false),
        errors: AtomicU64::new(0),
    });
    // Fail early and clearly if nothing listens.
    TcpStream::connect(&shared.template.address)
        .await
        .with_context(|| format!("cannot connect to {}", shared.template.address))?;
    let rss_before = args.rss_pid.map(Rss::of).transpose()?;

    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    if !args.warmup.is_zero() {
        tokio::time::sleep(args.warmup).await;
        shared.measuring.store(true, Ordering::SeqCst);
    }
    let started = Instant::now();
    if args.requests.is_none() {
        tokio::time::sleep(args.duration).await;
        shared.stop.store(true, Ordering::SeqCst);
    }
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut completed = 0;
    for worker in workers {
        let (histogram, count) = worker.await??;
        latency.add(histogram).expect("same bounds");
        completed += count;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rss_after = args.rss_pid.map(Rss::of).transpose()?;

    let report = LoadReport {
        url: format!("{}{}", args.url, args.endpoint),
        concurrency: args.concurrency,
        requests: completed,
        errors: shared.errors.load(Ordering::SeqCst),
        seconds,
        latency: &latency,
        rss_before,
        rss_after,
    };
    report.print(args.json);
    Ok(())
}

/// One connection, one request at a time, until told to stop. Returns the
/// latencies (µs) and the count of successful requests measured.
async fn worker(shared: Arc<Shared>) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut completed = 0;
    let mut sender = None;
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let measuring = shared.measuring.load(Ordering::Relaxed);
        let n = shared
            .issued
            .fetch_add(u64::from(measuring), Ordering::Relaxed);
        if measuring && shared.limit.is_some_and(|limit| n >= limit) {
            break;
        }
        if sender.is_none() {
            sender = Some(connect(&shared.template.address).await?);
        }
        let request = shared.template.request(n);
        let started = Instant::now();
        let outcome = async {
            let response = sender
                .as_mut()
                .expect("connected")
                .send_request(request)
                .await?;
            let ok = response.status().is_success();
            response.into_body().collect().await?;
            anyhow::Ok(ok)
        }
        .await;
        let elapsed = started.elapsed();
        match outcome {
            Ok(true) if measuring => {
                latency.saturating_record(elapsed.as_micros() as u64);
                completed += 1;
            }
            Ok(true) => {}
            Ok(false) => {
                shared
                    .errors
                    .fetch_add(u64::from(measuring), Ordering::Relaxed);
            }
            Err(_) => {
                shared
                    .errors
                    .fetch_add(u64::from(measuring), Ordering::Relaxed);
                sender = None;
            }
        }
    }
    Ok((latency, completed))
}

async fn connect<B>(address: &str) -> anyhow::Result<hyper::client::conn::http1::SendRequest<B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting to {address}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn startup(args: StartupArgs) -> anyhow::Result<()> {
    let template = Template::new(&args.url, "/healthz", "")?;
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&args.command[0])
            .args(&args.command[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", args.command[0]))?;
        let healthy = loop {
            if started.elapsed() > Duration::from_secs(10) {
                bail!("no 200 on /healthz within 10 s");
            }
            if let Some(status) = child.try_wait()? {
                bail!("the server exited ({status}) before answering");
            }
            if healthz(&template).await {
                break started.elapsed();
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        times.push(healthy);
        child.kill().await?;
        // The port must be free again before the next start.
        while TcpStream::connect(&template.address).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    StartupReport { runs: times }.print(args.json);
    Ok(())
}

async fn healthz(template: &Template) -> bool {
    let Ok(mut sender) = connect(&template.address).await else {
        return false;
    };
    let request = Request::get("/healthz")
        .header("host", &template.authority)
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    matches!(sender.send_request(request).await, Ok(response) if response.status() == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }

    #[test]
    fn queries_look_like_a_consumers() {
        let template =
            Template::new("http://127.0.0.1:9980", "/consume-here", "abc:orders").unwrap();
        let request = template.request(7);
        assert_eq!(
            request.uri(),
            "/consume-here?path=%2Forders%2F7&containerPort=8080"
        );
        assert_eq!(request.headers()[CALLER_INTERCEPT_ID_HEADER], "abc:orders");
        assert_eq!(request.headers()["x-dev"], "bob");
        assert_eq!(
            request.headers().len(),
            12,
            "host, caller ID and ten message headers"
        );
        assert_eq!(template.address, "127.0.0.1:9980");
    }
}
