//! The vocabulary of Telepresence's REST API for Kafka consumers, shared by
//! the SDK, the mock server and the tools of the `telepresence-kafka`
//! workspace.
//!
//! Telepresence runs a small REST API beside a consumer on each side of an
//! intercept: on the workstation (the user daemon, the *client* side) and in
//! the pod (the traffic-agent, the *agent* side). Given a message's headers,
//! and optionally a path and a container port, `/consume-here` says whether
//! this side should process the message and `/intercept-info` which
//! intercept it belongs to. This crate names those things once:
//!
//! - [`Side`], and [`Side::consumes`]: the pod's answer is the inverse of
//!   the workstation's;
//! - [`TelepresenceVersion`] and the [`Rules`] each release follows,
//!   including its [`Wire`] format;
//! - [`Intercept`], an intercept as a user declares it, and with the
//!   `matching` feature its validation and matching ([`CompiledIntercept`],
//!   and [`Mismatch`]: which filter failed, and why);
//! - [`Explanation`] and [`Reason`]: what a side decided for a request, and why;
//! - [`InterceptInfo`], what `/intercept-info` answers;
//! - the names: [`endpoint`], [`query`] parameters,
//!   [`CALLER_INTERCEPT_ID_HEADER`], [`env`](mod@env) variables;
//! - [`admin`]: the mock server's admin API (faults, journal entries).
//!
//! It does no I/O and knows no HTTP server or Kafka client.
//!
//! ```
//! use telepresence_api::{Side, TelepresenceVersion, Wire};
//!
//! let release: TelepresenceVersion = "2.24.1".parse()?;
//! let wire = release.rules().wire;
//! assert_eq!(wire, Wire::V2_5);
//! // The pod consumes what no intercept matches, in 2.5's words:
//! assert_eq!(wire.consume_here_body(Side::Agent.consumes(false)), b"true\n");
//! # Ok::<(), telepresence_api::VersionError>(())
//! ```
//!
//! # Features
//!
//! - `matching`: [`Intercept::validate`], [`Intercept::compile`] and
//!   [`CompiledIntercept`], Telepresence's rules for whether a request
//!   matches an intercept, its regular expressions read as Go's `regexp`
//!   reads them (`\w` is ASCII, `a**` is refused). Pulls in `regex`.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admin;
mod answer;
mod error;
#[cfg(feature = "matching")]
mod go_regex;
mod intercept;
#[cfg(feature = "matching")]
mod matching;
mod names;
mod reason;
mod side;
mod version;
mod wire;

pub use answer::{ErrorBody, InterceptInfo};
pub use error::UnknownName;
pub use intercept::{DEFAULT_CONTAINER_PORT, Intercept, InterceptError, is_regex};
#[cfg(feature = "matching")]
pub use matching::{CompiledIntercept, LiteralRegex};
pub use names::{CALLER_INTERCEPT_ID_HEADER, endpoint, env, query};
pub use reason::{Expected, Explanation, Mismatch, Miss, PathFilter, Reason};
pub use side::Side;
pub use version::{
    CandidateOrder, InvalidRegex, PathFilters, PortChoice, Rules, TelepresenceVersion, VersionError,
};
pub use wire::Wire;
