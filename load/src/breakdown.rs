//! `tpk-load breakdown`: where an uncached decision's time goes. The same
//! query, one at a time, through more and more of the stack, each layer
//! against the raw loopback round trip of as many bytes:
//!
//! 1. loopback: two threads exchange the query's and the answer's bytes
//!    over TCP, nothing parsed (the floor: kernel, scheduler, wake-ups);
//! 2. server: a blocking client writes the query's bytes to the mock server
//!    and reads its answer (adds the server's HTTP and decision);
//! 3. plain reqwest: a shared `reqwest::Client` sends the same query from
//!    async code (adds an async HTTP client and its connection task);
//! 4. SDK: `should_consume` without a cache (adds building the query from
//!    the message and reading the answer);
//!
//! then the ceiling: SDK decisions with `--depth` in flight, as the stream
//! adapter keeps them, in time per decision.
//!
//! The mock server runs in this process on a thread of its own, as in a
//! consumer's tests; everything shares the machine's cores.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;
use telepresence_api::CALLER_INTERCEPT_ID_HEADER;
use telepresence_kafka::{Client, HeaderList};
use telepresence_mock_server::{Intercept, MockServer};

const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";

/// The message: `tpk-load run`'s ten headers, alice's order.
const HEADERS: &[(&str, Option<&[u8]>)] = &[
    (
        "traceparent",
        Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ),
    ("x-dev", Some(b"alice")),
    ("content-type", Some(b"application/json")),
    (
        "x-request-id",
        Some(b"5f0c6b1e-6a47-4a3e-9f1c-2b1d8c9e7a10"),
    ),
    ("x-tenant", Some(b"acme")),
    ("x-schema-version", Some(b"7")),
    ("x-source", Some(b"orders-api")),
    ("x-retry-count", Some(b"0")),
    ("x-partition-key", Some(b"customer-42")),
    ("x-path", Some(b"/orders/7")),
];
const QUERY: &str = "path=%2Forders%2F7&containerPort=8080";

#[derive(clap::Parser)]
pub struct BreakdownArgs {
    /// Queries per layer, measured after up to 1000 unmeasured ones

    #[arg(long, default_value_t = 20_000)]
    queries: usize,
    /// Decisions in flight for the ceiling
    #[arg(long, default_value_t = 32)]
    depth: usize,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// One layer's round trips.
struct Layer {
    name: &'static str,
    /// Microseconds per query, one at a time.
    latency: Histogram<u64>,
}

pub async fn run(args: BreakdownArgs) -> anyhow::Result<()> {
    if args.queries == 0 || args.depth == 0 {
        bail!("--queries and --depth must be at least 1");
    }
    // On a thread and runtime of its own, as the SDK's benchmarks have it.
    let server = tokio::task::spawn_blocking(|| {
        MockServer::builder()
            .intercept(
                Intercept::new(ID)
                    .header("x-dev", "alice")
                    .path_prefix("/orders/"),
            )
            .start_blocking()
    })
    .await??;
    let address = server.address();
    let query = http_query(&address.to_string());
    let answer_len = {
        let mut stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        let mut buffer = Vec::new();
        let answer = exchange(&mut stream, &query, &mut buffer)?;
        if !answer.ends_with(b"true") {
            bail!(
                "the mock server's answer to alice's order is not `true`: {:?}",
                String::from_utf8_lossy(answer)
            );
        }
        answer.len()
    };
    let url = server.url();
    let plain = reqwest::Client::builder().no_proxy().build()?;
    let tp = Client::builder()
        .api_url(&url)
        .intercept_id(ID)
        .path_from_header("x-path")
        .container_port(8080)
        .build()?;
    let message = HeaderList::new(HEADERS).topic("orders");
    same_query_everywhere(&server, &plain, &tp, &message).await?;
    let warmup = args.queries.min(1000);
    let rounds = warmup + args.queries;

    let loopback = Layer {
        name: "loopback round trip, raw TCP",
        latency: tokio::task::spawn_blocking({
            let len = query.len();
            move || loopback(len, answer_len, rounds, warmup)
        })
        .await??,
    };
    let raw_client = Layer {
        name: "+ mock server (hand-written client)",
        latency: tokio::task::spawn_blocking({
            let query = query.clone();
            move || server_only(address, &query, rounds, warmup)
        })
        .await??,
    };

    // Alternated query by query: measured one after the other, whichever
    // came second was slower by up to a fifth on some hosts.
    let (plain_latency, sdk_latency) = measure_alternately(
        rounds,
        warmup,
        || plain_query(&plain, &url),
        || async { Ok(tp.should_consume(&message).await?) },
    )
    .await?;
    let reqwest_layer = Layer {
        name: "+ async HTTP client (plain reqwest)",
        latency: plain_latency,
    };
    let sdk = Layer {
        name: "SDK decision, no cache",
        latency: sdk_latency,
    };

    let started = Instant::now();
    let answers: Vec<_> = futures_util::stream::iter(0..args.queries)
        .map(|_| tp.should_consume(&message))
        .buffer_unordered(args.depth)
        .collect()
        .await;
    let per_decision = started.elapsed() / args.queries as u32;
    for answer in answers {
        if !answer? {
            bail!("the SDK's answer to alice's order is not `true`");
        }
    }
    drop(server);

    let layers = [loopback, raw_client, reqwest_layer, sdk];
    let floor = layers[0].latency.value_at_quantile(0.5) as f64;
    if args.json {
        let layers: Vec<_> = layers
            .iter()
            .map(|layer| {
                json!({
                    "layer": layer.name,
                    "p50_us": layer.latency.value_at_quantile(0.5),
                    "p99_us": layer.latency.value_at_quantile(0.99),
                    "of_loopback": layer.latency.value_at_quantile(0.5) as f64 / floor,
                })
            })
            .collect();
        println!(
            "{}",
            json!({
                "queries": args.queries,
                "query_bytes": query.len(),
                "answer_bytes": answer_len,
                "layers": layers,
                "depth": args.depth,
                "in_flight_us_per_decision": per_decision.as_secs_f64() * 1e6,
                "in_flight_of_loopback": per_decision.as_secs_f64() * 1e6 / floor,
            })
        );
    } else {
        println!(
            "{} queries of {} bytes, answers of {answer_len} bytes, one at a time",
            args.queries,
            query.len()
        );
        println!(
            "{:<38} {:>8} {:>8} {:>12}",
            "", "p50 µs", "p99 µs", "x loopback"
        );
        for layer in &layers {
            let p50 = layer.latency.value_at_quantile(0.5);
            println!(
                "{:<38} {:>8} {:>8} {:>12.2}",
                layer.name,
                p50,
                layer.latency.value_at_quantile(0.99),
                p50 as f64 / floor
            );
        }
        let us = per_decision.as_secs_f64() * 1e6;
        println!(
            "SDK decisions, {} in flight: {us:.1} µs per decision ({:.2} x the loopback round trip)",
            args.depth,
            us / floor
        );
    }
    Ok(())
}

/// Checks, in the server's journal, that the raw query, the plain reqwest
/// one and the SDK's ask the same: parameters, caller and headers.
async fn same_query_everywhere(
    server: &MockServer,
    plain: &reqwest::Client,
    tp: &Client,
    message: &HeaderList<'_>,
) -> anyhow::Result<()> {
    let admin = server.admin();
    admin.clear_journal().await?;
    let query = http_query(&server.address().to_string());
    let address = server.address();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut stream = TcpStream::connect(address)?;
        exchange(&mut stream, &query, &mut Vec::new())?;
        Ok(())
    })
    .await??;
    plain_query(plain, &server.url()).await?;
    tp.should_consume(message).await?;
    let journal = admin.journal().await?;
    // The SDK's first decision is preceded by its side check (`/intercept-info`).
    let asked: Vec<_> = journal
        .iter()
        .filter(|entry| entry.endpoint == "/consume-here")
        .map(|entry| {
            // reqwest adds `accept: */*`; the API reads no such header.
            let mut headers: Vec<_> = entry
                .headers
                .iter()
                .filter(|(name, _)| name != "accept")
                .collect();
            headers.sort();
            (
                &entry.path,
                &entry.container_port,
                &entry.caller_id,
                headers,
            )
        })
        .collect();
    let [raw, plain, sdk] = &asked[..] else {
        bail!(
            "expected three queries in the journal, found {}",
            asked.len()
        );
    };
    if raw != plain || raw != sdk {
        bail!(
            "the layers do not send the same query:\n raw {raw:?}\n reqwest {plain:?}\n SDK {sdk:?}"
        );
    }
    admin.clear_journal().await?;
    Ok(())
}

/// The bytes of the query the SDK sends for the message.
fn http_query(authority: &str) -> Vec<u8> {
    let mut query = format!(
        "GET /consume-here?{QUERY} HTTP/1.1\r\nhost: {authority}\r\n{CALLER_INTERCEPT_ID_HEADER}: {ID}\r\n"
    )
    .into_bytes();
    for (name, value) in HEADERS {
        query.extend_from_slice(name.as_bytes());
        query.extend_from_slice(b": ");
        query.extend_from_slice(value.unwrap_or_default());
        query.extend_from_slice(b"\r\n");
    }
    query.extend_from_slice(b"\r\n");
    query
}

/// `rounds` round trips of `query_len` bytes out and `answer_len` back
/// between two threads; the latencies after the first `warmup`.
fn loopback(
    query_len: usize,
    answer_len: usize,
    rounds: usize,
    warmup: usize,
) -> anyhow::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut stream, _) = listener.accept()?;
        stream.set_nodelay(true)?;
        let mut query = vec![0; query_len];
        let answer = vec![b'a'; answer_len];
        for _ in 0..rounds {
            stream.read_exact(&mut query)?;
            stream.write_all(&answer)?;
        }
        Ok(())
    });
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let query = vec![b'q'; query_len];
    let mut answer = vec![0; answer_len];
    let mut latency = histogram();
    for round in 0..rounds {
        let started = Instant::now();
        stream.write_all(&query)?;
        stream.read_exact(&mut answer)?;
        if round >= warmup {
            latency.saturating_record(started.elapsed().as_micros() as u64);
        }
    }
    echo.join()
        .map_err(|_| anyhow::anyhow!("the echo thread panicked"))??;
    Ok(latency)
}

/// The query's bytes to the server, its answer read back, one at a time.
fn server_only(
    address: std::net::SocketAddr,
    query: &[u8],
    rounds: usize,
    warmup: usize,
) -> anyhow::Result<Histogram<u64>> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_nodelay(true)?;
    let mut buffer = Vec::with_capacity(1024);
    let mut latency = histogram();
    for round in 0..rounds {
        let started = Instant::now();
        exchange(&mut stream, query, &mut buffer)?;
        if round >= warmup {
            latency.saturating_record(started.elapsed().as_micros() as u64);
        }
    }
    Ok(latency)
}

/// Writes `query` and reads one answer (head and `content-length` body)
/// into `buffer`; returns it.
fn exchange<'b>(
    stream: &mut TcpStream,
    query: &[u8],
    buffer: &'b mut Vec<u8>,
) -> anyhow::Result<&'b [u8]> {
    stream.write_all(query)?;
    buffer.clear();
    let mut chunk = [0; 1024];
    loop {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            bail!("the server closed the connection");
        }
        buffer.extend_from_slice(&chunk[..read]);
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end]).context("an answer's head")?;
        let body_len: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("an answer without content-length")?;
        if buffer.len() >= head_end + 4 + body_len {
            return Ok(&buffer[..head_end + 4 + body_len]);
        }
    }
}

/// The hand-written helper's query with a shared `reqwest::Client`.
async fn plain_query(client: &reqwest::Client, url: &str) -> anyhow::Result<bool> {
    let mut request = client
        .get(format!("{url}/consume-here?{QUERY}"))
        .header(CALLER_INTERCEPT_ID_HEADER, ID);
    for (name, value) in HEADERS {
        request = request.header(*name, value.unwrap_or_default());
    }
    let answer = request.send().await?.text().await?;
    Ok(answer.trim() == "true")
}

/// `rounds` calls of `a` and of `b`, alternated, one at a time, each
/// answering `true`; the latencies of each after the first `warmup`.
async fn measure_alternately<A, FutA, B, FutB>(
    rounds: usize,
    warmup: usize,
    mut a: A,
    mut b: B,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)>
where
    A: FnMut() -> FutA,
    FutA: std::future::Future<Output = anyhow::Result<bool>>,
    B: FnMut() -> FutB,
    FutB: std::future::Future<Output = anyhow::Result<bool>>,
{
    let (mut latency_a, mut latency_b) = (histogram(), histogram());
    for round in 0..rounds {
        let measured = round >= warmup;
        timed(a(), measured.then_some(&mut latency_a)).await?;
        timed(b(), measured.then_some(&mut latency_b)).await?;
    }
    Ok((latency_a, latency_b))
}

/// Runs one query, which must answer `true`, recording its latency.
async fn timed(
    query: impl std::future::Future<Output = anyhow::Result<bool>>,
    latency: Option<&mut Histogram<u64>>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    if !query.await? {
        bail!("an answer to alice's order is not `true`");
    }
    if let Some(latency) = latency {
        latency.saturating_record(started.elapsed().as_micros() as u64);
    }
    Ok(())
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, Duration::from_secs(60).as_micros() as u64, 3)
        .expect("valid bounds")
}
