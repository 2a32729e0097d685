//! The cost of one decision, from nothing (Telepresence absent) to a query
//! over loopback, pipelined through the stream adapter, and side by side with
//! the obvious alternatives. Run with `cargo bench -p telepresence-kafka`.
//!
//! The API server is the mock server on a runtime (and thread) of its own;
//! the client side runs on a separate Tokio runtime. Both share the machine.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::CommitMode;
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage, Timestamp};
use telepresence_kafka::stream::ManagedConsumer;
use telepresence_kafka::{Baggage, Client, HeaderForwarding, HeaderList};
use telepresence_mock_server::{Intercept, MockServer};

const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";

/// A typical message: ten headers, a trace header, one binary value.
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
    ("x-checksum", Some(&[0x00, 0x9f, 0x12, 0x7e])),
    ("x-path", Some(b"/orders/new")),
];

fn poll_once<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("disabled decisions are immediate"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// The workstation's API, with a journal as in tests.
fn server() -> MockServer {
    MockServer::builder()
        .intercept(
            Intercept::new(ID)
                .header("x-dev", "alice")
                .path_prefix("/orders/"),
        )
        .start_blocking()
        .unwrap()
}

fn sdk(server: &MockServer) -> Client {
    Client::builder()
        .api_url(server.url())
        .intercept_id(ID)
        .path_from_header("x-path")
        .build()
        .unwrap()
}

/// The workstation's client with a decision cache keyed by `x-dev`.
fn cached_sdk(server: &MockServer, ttl: Duration) -> Client {
    Client::builder()
        .api_url(server.url())
        .intercept_id(ID)
        .decision_cache(ttl, ["x-dev"])
        .build()
        .unwrap()
}

fn disabled(c: &mut Criterion) {
    let tp = Client::disabled();
    let message = HeaderList::new(HEADERS).topic("orders");
    c.bench_function("decision/disabled", |b| {
        b.iter(|| poll_once(tp.should_consume(black_box(&message))).unwrap())
    });
}

fn header_mapping(c: &mut Criterion) {
    let rules = HeaderForwarding::default();
    c.bench_function("headers/map_10", |b| {
        b.iter(|| rules.forward(black_box(HEADERS).iter().copied()))
    });
}

/// The enabled path without I/O: a decision's query planned (headers read
/// and mapped, URL built), then dropped unsent.
fn planning(c: &mut Criterion) {
    let tp = Client::builder()
        .api_url("http://127.0.0.1:9")
        .intercept_id(ID)
        .path_from_header("x-path")
        .build()
        .unwrap();
    let message = HeaderList::new(HEADERS).topic("orders");
    c.bench_function("decision/plan", |b| {
        b.iter(|| drop(tp.should_consume(black_box(&message))))
    });
    // The same, with a baggage header and a key, both derived into headers.
    let derives = Client::builder()
        .api_url("http://127.0.0.1:9")
        .intercept_id(ID)
        .path_from_header("x-path")
        .baggage(Baggage::members(["x-dev"]))
        .key_as_header("x-kafka-key")
        .build()
        .unwrap();
    let mut headers = HEADERS.to_vec();
    headers.push((
        "baggage",
        Some(b"x-dev=alice;ttl=60,tenant=acme,note=a%20b"),
    ));
    let message = HeaderList::new(&headers)
        .topic("orders")
        .key(b"tenant-42:order-7");
    c.bench_function("decision/plan_derived", |b| {
        b.iter(|| drop(derives.should_consume(black_box(&message))))
    });
}

fn sequential(c: &mut Criterion) {
    let server = server();
    let rt = runtime();
    let tp = sdk(&server);
    let message = HeaderList::new(HEADERS);
    c.bench_function("decision/loopback_sequential", |b| {
        b.to_async(&rt)
            .iter(|| async { tp.should_consume(&message).await.unwrap() })
    });
}

/// Stores nothing: the adapter's bookkeeping runs, Kafka is not measured.
struct NoStore;

impl ManagedConsumer for NoStore {
    fn store_offsets(&self, _: &TopicPartitionList) -> KafkaResult<()> {
        Ok(())
    }
    fn commit_stored(&self, _: CommitMode) -> KafkaResult<()> {
        Ok(())
    }
}

fn messages(count: usize) -> Vec<OwnedMessage> {
    (0..count)
        .map(|n| {
            let mut headers = OwnedHeaders::new_with_capacity(HEADERS.len());
            for (key, value) in HEADERS {
                let value = if *key == "x-dev" && n % 2 == 1 {
                    Some(&b"bob"[..])
                } else {
                    *value
                };
                headers = headers.insert(Header { key, value });
            }
            OwnedMessage::new(
                None,
                None,
                "orders".into(),
                Timestamp::NotAvailable,
                (n % 3) as i32,
                n as i64,
                Some(headers),
            )
        })
        .collect()
}

fn pipelined(c: &mut Criterion) {
    let server = server();
    let rt = runtime();
    let tp = sdk(&server);
    const BATCH: usize = 256;
    let batch = messages(BATCH);
    let mut group = c.benchmark_group("stream/pipelined");
    group.throughput(Throughput::Elements(BATCH as u64));
    for depth in [1, 8, 32, 128] {
        group.bench_with_input(BenchmarkId::from_parameter(depth), &depth, |b, &depth| {
            b.to_async(&rt).iter(|| async {
                let stream = futures_util::stream::iter(batch.iter().cloned().map(Ok));
                let filtered = tp.filter_messages(&NoStore, stream, depth);
                filtered.count().await
            })
        });
    }
    group.finish();
}

/// A message borrowed from a batch made once, so that neither loop below
/// pays for copying messages.
struct Borrowed<'a>(&'a OwnedMessage);

impl Message for Borrowed<'_> {
    type Headers = OwnedHeaders;

    fn key(&self) -> Option<&[u8]> {
        self.0.key()
    }
    fn payload(&self) -> Option<&[u8]> {
        self.0.payload()
    }
    unsafe fn payload_mut(&mut self) -> Option<&mut [u8]> {
        None
    }
    fn topic(&self) -> &str {
        self.0.topic()
    }
    fn partition(&self) -> i32 {
        self.0.partition()
    }
    fn offset(&self) -> i64 {
        self.0.offset()
    }
    fn timestamp(&self) -> rdkafka::Timestamp {
        self.0.timestamp()
    }
    fn headers(&self) -> Option<&OwnedHeaders> {
        self.0.headers()
    }
}

/// The stream adapter's own cost per message, apart from Kafka and the
/// API: every decision from the cache, offsets stored nowhere, each message
/// handed out marked done; against a loop that only walks the messages.
fn bookkeeping(c: &mut Criterion) {
    let server = server();
    let rt = runtime();
    let cached = cached_sdk(&server, Duration::from_secs(3600));
    const BATCH: usize = 4096;
    // Offsets rise through the batch, as a partition's do.
    let batch = messages(BATCH);
    rt.block_on(async {
        let warm = futures_util::stream::iter(batch.iter().map(|m| Ok(Borrowed(m))));
        cached.filter_messages(&NoStore, warm, 32).count().await
    });
    let mut group = c.benchmark_group("stream/cached");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("walk_only", |b| {
        b.to_async(&rt).iter(|| async {
            let stream = futures_util::stream::iter(batch.iter().map(|m| Ok::<_, ()>(Borrowed(m))));
            stream
                .map(|m| black_box(m.map(|m| m.offset())))
                .count()
                .await
        })
    });
    group.bench_function("filtered", |b| {
        b.to_async(&rt).iter(|| async {
            let stream = futures_util::stream::iter(batch.iter().map(|m| Ok(Borrowed(m))));
            let mut filtered = cached.filter_messages(&NoStore, stream, 32);
            let mut handed_out = 0;
            while let Some(message) = filtered.next().await {
                filtered.done(&message.unwrap()).unwrap();
                handed_out += 1;
            }
            handed_out
        })
    });
    group.finish();
}

fn cache(c: &mut Criterion) {
    let server = server();
    let rt = runtime();
    let cached = cached_sdk(&server, Duration::from_secs(3600));
    let message = HeaderList::new(HEADERS);
    rt.block_on(cached.should_consume(&message)).unwrap();
    c.bench_function("cache/hit", |b| {
        b.to_async(&rt)
            .iter(|| async { cached.should_consume(&message).await.unwrap() })
    });
    // A miss every time: a TTL of zero expires every answer at once.
    let missing = cached_sdk(&server, Duration::ZERO);
    c.bench_function("cache/miss", |b| {
        b.to_async(&rt)
            .iter(|| async { missing.should_consume(&message).await.unwrap() })
    });
}

/// The query a hand-written helper sends, the same as the SDK's: the path
/// from `x-path`, the caller ID and every header that HTTP can carry.
async fn hand_written_query(client: &reqwest::Client, url: &str) -> bool {
    let path = HEADERS
        .iter()
        .find(|(key, _)| *key == "x-path")
        .and_then(|(_, value)| std::str::from_utf8((*value)?).ok())
        .unwrap();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("path", path)
        .finish();
    let mut request = client
        .get(format!("{url}/consume-here?{query}"))
        .header("x-telepresence-caller-intercept-id", ID);
    for (key, value) in HEADERS {
        if let Some(value) = value.and_then(|v| reqwest::header::HeaderValue::from_bytes(v).ok()) {
            request = request.header(*key, value);
        }
    }
    request.send().await.unwrap().text().await.unwrap().trim() == "true"
}

/// What a quick hand-written helper does: a new client, so a new connection,
/// for every query.
async fn connection_per_query(url: &str) -> bool {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    hand_written_query(&client, url).await
}

fn side_by_side(c: &mut Criterion) {
    let server = server();
    let rt = runtime();
    let url = server.url();
    let tp = sdk(&server);
    // A plain `reqwest::Client` with default settings, shared across queries.
    let plain = reqwest::Client::new();
    let message = HeaderList::new(HEADERS);
    // The same question, the same answer: alice's order is the workstation's.
    assert!(rt.block_on(tp.should_consume(&message)).unwrap());
    assert!(rt.block_on(hand_written_query(&plain, &url)));
    let mut group = c.benchmark_group("compare");
    group.bench_function("sdk", |b| {
        b.to_async(&rt)
            .iter(|| async { tp.should_consume(&message).await.unwrap() })
    });
    group.bench_function("plain_reqwest", |b| {
        b.to_async(&rt).iter(|| hand_written_query(&plain, &url))
    });
    group.bench_function("connection_per_query", |b| {
        b.to_async(&rt).iter(|| connection_per_query(&url))
    });
    group.finish();

    // The same three with 32 queries in flight, as a consumer pipelining
    // decisions would have them.
    const IN_FLIGHT: usize = 32;
    let mut group = c.benchmark_group("compare_32_in_flight");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    group.bench_function("sdk", |b| {
        b.to_async(&rt).iter(|| {
            futures_util::future::join_all((0..IN_FLIGHT).map(|_| tp.should_consume(&message)))
        })
    });
    group.bench_function("plain_reqwest", |b| {
        b.to_async(&rt).iter(|| {
            futures_util::future::join_all((0..IN_FLIGHT).map(|_| hand_written_query(&plain, &url)))
        })
    });
    group.bench_function("connection_per_query", |b| {
        b.to_async(&rt).iter(|| {
            futures_util::future::join_all((0..IN_FLIGHT).map(|_| connection_per_query(&url)))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    disabled,
    header_mapping,
    planning,
    sequential,
    pipelined,
    bookkeeping,
    cache,
    side_by_side
);
criterion_main!(benches);
