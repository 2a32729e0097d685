//! Process only the Kafka messages a Telepresence intercept routes to this side.
//!
//! Under a Telepresence personal intercept, the pod in the cluster and the
//! consumer on your workstation both read the topic. Telepresence runs a small
//! REST API beside each; given a message's headers it says whether *this*
//! side should process it. This crate asks it, with one call:
//!
#![cfg_attr(feature = "rdkafka", doc = "```no_run")]
#![cfg_attr(not(feature = "rdkafka"), doc = "```ignore")]
//! use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
//! use rdkafka::ClientConfig;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tp = telepresence_kafka::Client::from_env()?;
//! let consumer: StreamConsumer = ClientConfig::new()
//!     .set("bootstrap.servers", "localhost:9092")
//!     .set("group.id", tp.group_id("orders")) // the workstation reads in a group of its own
//!     .create()?;
//! consumer.subscribe(&["orders"])?;
//! loop {
//!     let msg = consumer.recv().await?;
//!     if tp.should_consume(&msg).await? {
//!         // process the message
//!     }
//!     consumer.commit_message(&msg, CommitMode::Async)?; // processed or skipped: both advance
//! }
//! # }
//! ```
//!
//! - Not under Telepresence (`TELEPRESENCE_API_PORT` unset), the client is
//!   disabled and `should_consume` is `true` with no I/O: production code
//!   needs no switch.
//! - In the pod, it is `false` for the messages an intercept takes; on the
//!   workstation, `true` for exactly those.
//! - When the API fails, a [`FailurePolicy`] decides: by default the cluster
//!   processes the message and the workstation waits for its API, so that no
//!   message is lost.
//! - [`Client::filter_stream`] filters a `StreamConsumer`'s stream with several
//!   decisions in flight, in order, storing offsets so that no message is lost
//!   or processed twice.
//! - [`Client::routing_headers`] gives the routing context of the message in
//!   hand, to put on what its handling produces ([`WithRouting`]), so that
//!   an intercept on the next service of a chain routes that the same way.
//! - The intercept matches headers. A routing key carried elsewhere becomes
//!   one, on request and the same way on both sides: members of tracing
//!   baggage ([`ClientBuilder::baggage`]) and the record key
//!   ([`ClientBuilder::key_as_header`]).
//!
//! # Features
//!
//! - `rdkafka` (default): decisions for any `rdkafka` message, and the stream
//!   adapter. Without it, use [`HeaderList`] or implement [`KafkaMessage`].
//! - `blocking`: `blocking::Client`, for `BaseConsumer` loops.
//! - `reqwest`: [`WithRouting`] for `reqwest::RequestBuilder`, to pass a
//!   message's routing context on to the HTTP requests its handling makes.
//! - `metrics`: an enabled client's decisions, fallbacks, held decisions and
//!   their latency, by side and topic, on the `metrics` crate's facade, for
//!   the exporter you already use: see the `metrics` module.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod baggage;
mod cache;
mod client;
mod env;
mod error;
mod group;
mod headers;
mod message;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
/// The hooks of the `metrics` feature, which do nothing without it.
#[cfg(not(feature = "metrics"))]
mod metrics;
mod policy;
mod routing;
mod stats;
mod wire;

#[cfg(feature = "blocking")]
pub mod blocking;
#[cfg(feature = "rdkafka")]
pub mod stream;

/// Entry points for the fuzz targets in `fuzz/`; built only by `cargo fuzz`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// A `/consume-here` answer, as the client reads it.
    pub fn consume_here(status: u16, body: &[u8]) -> Result<bool, crate::Error> {
        crate::wire::consume_here(status, body)
    }

    /// An `/intercept-info` answer, as the client reads it.
    pub fn intercept_info(status: u16, body: &[u8]) -> Result<crate::InterceptInfo, crate::Error> {
        crate::wire::intercept_info(status, body)
    }
}

/// The `rdkafka` crate this one is built with. Use it, or depend on the same
/// version: messages and consumers of another version are not the ones
/// [`KafkaMessage`] and the stream adapter know.
#[cfg(feature = "rdkafka")]
pub use rdkafka;

/// The guides under `docs/`: their Rust samples are compiled (and run,
/// unless marked `no_run`) with the crate's doctests, so that they cannot
/// drift from the API. (The README's excerpt is checked against the guide's
/// quick start by `tests/docs.rs`.)
#[cfg(all(doctest, feature = "rdkafka", feature = "blocking"))]
mod guides {
    #[doc = include_str!("../../docs/getting-started.md")]
    struct GettingStarted;
    #[doc = include_str!("../../docs/sdk.md")]
    struct Sdk;
    #[doc = include_str!("../../docs/testing.md")]
    struct Testing;
}

pub use baggage::Baggage;
pub use client::{Client, ClientBuilder, PathFn, PathSource, ShouldConsume};
pub use env::{API_HOST_ENV, API_PORT_ENV, CONTAINER_PORT_ENV, INTERCEPT_ID_ENV};
pub use error::{Error, ErrorKind};
pub use headers::{Forwarded, HeaderForwarding};
pub use message::{HeaderList, KafkaMessage, MessageView};
pub use policy::FailurePolicy;
pub use routing::{RoutingHeaders, WithRouting};
pub use stats::Stats;
pub use telepresence_api::{CALLER_INTERCEPT_ID_HEADER, InterceptInfo};
