//! Without Telepresence the decision must cost nothing but a branch: no
//! allocation, no I/O; and an answer from the decision cache, the
//! workstation's usual case, no allocation either. Counted with an allocator
//! that tallies this thread's allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use telepresence_kafka::{Client, ClientBuilder, HeaderList};
use telepresence_mock_server::{Intercept, MockServer};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A message on `orders` with these headers.
fn message_on_orders(headers: &[(&str, &str)]) -> OwnedMessage {
    let headers = headers
        .iter()
        .fold(OwnedHeaders::new(), |all, &(key, value)| {
            all.insert(Header {
                key,
                value: Some(value),
            })
        });
    OwnedMessage::new(
        Some(b"payload".to_vec()),
        None,
        "orders".into(),
        Timestamp::NotAvailable,
        0,
        0,
        Some(headers),
    )
}

/// Polls once: a disabled decision must be ready at once, without a runtime.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a disabled client must answer without waiting"),
    }
}

#[test]
fn a_disabled_decision_allocates_nothing_and_answers_at_once() {
    let tp = ClientBuilder::from_env_vars(|_| None)
        .unwrap()
        .build()
        .unwrap();
    assert!(!tp.is_enabled());
    let headers: &[(&str, Option<&[u8]>)] = &[
        ("x-dev", Some(b"alice")),
        ("traceparent", Some(b"00-1-2-01")),
    ];
    let listed = HeaderList::new(headers).topic("orders");
    let message = message_on_orders(&[("x-dev", "alice")]);

    let before = allocations();
    let probe = std::hint::black_box(vec![1u8; 16]);
    assert_eq!(allocations() - before, 1, "the counter counts");
    drop(probe);

    let before = allocations();
    for _ in 0..1000 {
        assert!(ready(tp.should_consume(&listed)).unwrap());
        assert!(ready(tp.should_consume(&message)).unwrap());
    }
    assert_eq!(
        allocations() - before,
        0,
        "allocations on the disabled path"
    );
    assert_eq!(tp.stats().consumed, 2000);
    assert_eq!(tp.stats().requests, 0);
}

#[test]
fn the_disabled_client_is_the_same_from_every_constructor() {
    for tp in [Client::disabled(), Client::builder().build().unwrap()] {
        let before = allocations();
        assert!(ready(tp.should_consume(&HeaderList::default())).unwrap());
        assert_eq!(allocations() - before, 0);
    }
}

/// Passing the routing context on is free too, in production as on a
/// workstation: the headers are borrowed from the message, and up to four
/// fit on the stack.
#[test]
fn the_routing_context_of_a_message_costs_no_allocation() {
    let tp = Client::builder()
        .routing_headers(["x-dev", "x-tenant"])
        .baggage(telepresence_kafka::Baggage::members(["x-dev"]))
        .build()
        .unwrap();
    let message = message_on_orders(&[
        ("x-dev", "alice"),
        ("traceparent", "00-1-2-01"),
        ("baggage", "x-dev=alice,tenant=acme"),
    ]);
    let before = allocations();
    for _ in 0..1000 {
        let routing = tp.routing_headers(&message);
        assert_eq!(routing.len(), 2);
        std::hint::black_box(&routing);
    }
    assert_eq!(allocations() - before, 0, "allocations per routing context");
}

/// A workstation that reads mostly messages it has seen the like of answers
/// them from memory: after the first answer for each routing value, a
/// decision is ready at once and allocates nothing, for messages of either
/// kind and with a path from the topic.
#[test]
fn an_answer_from_the_cache_costs_no_allocation() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime
        .block_on(
            MockServer::builder()
                .intercepts([
                    Intercept::new("4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders")
                        .header("x-dev", "alice"),
                ])
                .start(),
        )
        .unwrap();
    let tp = ClientBuilder::from_env_vars(|name| {
        let vars = server.env().vars();
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
    })
    .unwrap()
    .path_from_topic()
    .decision_cache(std::time::Duration::from_secs(600), ["x-dev"])
    .build()
    .unwrap();
    let alice: &[(&str, Option<&[u8]>)] = &[
        ("x-dev", Some(b"alice")),
        ("traceparent", Some(b"00-1-2-01")),
    ];
    let bob: &[(&str, Option<&[u8]>)] =
        &[("traceparent", Some(b"00-3-4-01")), ("x-dev", Some(b"bob"))];
    let listed = [
        HeaderList::new(alice).topic("orders"),
        HeaderList::new(bob).topic("orders"),
    ];
    let message = message_on_orders(&[("traceparent", "00-1-2-01"), ("x-dev", "alice")]);
    // The first of each asks the server; a thread's first hit may set up
    // what every later one reuses.
    for listed in &listed {
        runtime.block_on(tp.should_consume(listed)).unwrap();
    }
    assert!(ready(tp.should_consume(&message)).unwrap());

    let before = allocations();
    for _ in 0..1000 {
        assert!(ready(tp.should_consume(&listed[0])).unwrap());
        assert!(!ready(tp.should_consume(&listed[1])).unwrap());
        assert!(ready(tp.should_consume(&message)).unwrap());
    }
    assert_eq!(allocations() - before, 0, "allocations per cache hit");
    assert_eq!(tp.stats().cache_hits, 3001);
    drop(tp);
    runtime.block_on(server.shutdown());
}
