//! The cost of one decision, from nothing (Telepresence absent) to a full
//! query over loopback. Run with `cargo bench -p telepresence-kafka`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use telepresence_kafka::{Client, HeaderForwarding, HeaderList};

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

criterion_group!(benches, disabled, header_mapping);
criterion_main!(benches);
