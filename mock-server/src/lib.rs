//! A faithful mock of Telepresence's REST API server.
//!
//! Telepresence runs a small REST API beside a Kafka consumer, on the
//! workstation (the user daemon, the *client* side) and in the pod (the
//! traffic-agent, the *agent* side). Given a message's headers, and optionally
//! a path and a container port, `/consume-here` says whether this side should
//! process it and `/intercept-info` says which intercept it belongs to. This
//! crate reproduces that server, with its matching rules and each version's
//! wire format, for local development and tests:
//!
//! - in-process, with [`MockServer`] (a random port, a request journal, fault
//!   injection, intercepts changed between requests);
//! - as the `telepresence-mock-server` binary, configured by the same flags as
//!   `telepresence intercept`, a YAML file, or the environment;
//! - as a container image built `FROM scratch` around that binary, started
//!   from tests with the `testcontainers` module (feature `testcontainers`).
//!
//! # Quick start
//!
//! ```
//! use telepresence_mock_server::{Intercept, MockServer, Side};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The pod's view: messages with `x-dev: alice` belong to an intercept.
//! let server = MockServer::builder()
//!     .side(Side::Agent)
//!     .intercept(Intercept::new("abc:orders").header("x-dev", "alice"))
//!     .start()
//!     .await?;
//!
//! let client = reqwest::Client::new();
//! let ask = |dev: &'static str| {
//!     client
//!         .get(format!("{}/consume-here", server.url()))
//!         .header("x-dev", dev)
//!         .send()
//! };
//! assert_eq!(ask("alice").await?.text().await?, "false"); // the workstation takes it
//! assert_eq!(ask("bob").await?.text().await?, "true"); // the pod consumes it
//! # Ok(())
//! # }
//! ```
//!
//! The rules it implements are those of the real server: header names compare
//! case-insensitively and only a header's first occurrence counts; a matcher
//! value with a regex metacharacter is an unanchored regular expression that
//! never matches an empty value; all matchers of an intercept must match; the
//! client side picks the caller's intercept, the agent side picks by container
//! port and answers the inverse on `/consume-here`.
//!
//! # Admin API
//!
//! [`Admin`] changes the intercepts, reads the journal and injects faults:
//! [`MockServer::admin`] in-process, [`Admin::connect`] over HTTP (another
//! process, a container). Both have the same methods.
//!
//! # Features
//!
//! - `testcontainers`: the `testcontainers` module, the server as a
//!   [testcontainers](https://docs.rs/testcontainers) image for end-to-end
//!   tests, and its container's typed admin client.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod admin_client;
mod api;
mod body;
pub mod cli;
mod config;
mod decision;
mod error;
mod fault;
mod form;
mod harness;
mod journal;
mod limits;
mod router;
mod serve;
mod state;
#[cfg(feature = "testcontainers")]
pub mod testcontainers;
mod wire;
mod workload;

/// Entry points for the fuzz targets in `fuzz/`; built only by `cargo fuzz`.
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzzing {
    /// `path` and `containerPort` as the server reads them from a query and a form body.
    pub fn form_values(query: &[u8], body: &[u8]) -> (Vec<u8>, Vec<u8>) {
        (
            crate::form::form_value(body, query, "path").into_owned(),
            crate::form::form_value(body, query, "containerPort").into_owned(),
        )
    }

    /// `containerPort` as the server parses it.
    pub fn parse_container_port(raw: &[u8]) -> Result<u16, String> {
        crate::form::parse_container_port(raw)
    }
}

/// The guide `docs/mock-server.md`: its Rust samples are compiled with the
/// crate's doctests, so that they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../docs/mock-server.md")]
struct Guide;

pub use admin_client::Admin;
pub use config::{CONFIG_ENV, ConfigError, ConfigFile, ConfigOrigin, DEFAULT_LISTEN};
pub use decision::InterceptSetError;
pub use error::Error;
pub use harness::{MockServer, MockServerBuilder};
pub use journal::{
    DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_CAPACITY, JOURNAL_ENTRY_LIMIT, JOURNAL_VALUE_LIMIT,
};
pub use limits::{DEFAULT_MAX_HEADERS, Limits};
/// The protocol's vocabulary, shared with the SDK: re-exported so that a
/// test needs only this crate.
pub use telepresence_api::{
    CALLER_INTERCEPT_ID_HEADER, CandidateOrder, DEFAULT_CONTAINER_PORT, Explanation, Intercept,
    InterceptError, InvalidRegex, Mismatch, Miss, PathFilters, PortChoice, Reason, Rules, Side,
    TelepresenceVersion, VersionError, Wire,
    admin::{API_ENDPOINTS, ActiveFault, Fault, FaultError, HeaderEquals, JournalEntry},
    env::ConsumerEnv,
};
pub use workload::Workload;
