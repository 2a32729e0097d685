//! Why a side decided what it did: which intercept was considered, which
//! filter failed and what it saw.
//!
//! The mock server computes these for every decision it records in its
//! journal, and tools such as `tpk explain` print them; they are plain data,
//! available without the `matching` feature.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Side;

/// What one side decides for one request, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Explanation {
    /// The side that decided.
    pub side: Side,
    /// The intercept the request belongs to, when one matched.
    pub intercept: Option<String>,
    /// `/consume-here`'s answer: whether this side processes the message.
    pub consume_here: bool,
    /// Why.
    pub reason: Reason,
}

impl Explanation {
    /// The explanation of a decision: `consume_here` follows from the side
    /// and from whether `reason` is a match.
    pub fn new(side: Side, reason: Reason) -> Self {
        let intercept = match &reason {
            Reason::Matched { intercept, .. } => Some(intercept.clone()),
            _ => None,
        };
        Self {
            side,
            consume_here: side.consumes(intercept.is_some()),
            intercept,
            reason,
        }
    }
}

/// Why a side's decision is what it is.
///
/// ```
/// use telepresence_api::{Expected, Miss, Mismatch, Reason};
///
/// let reason = Reason::NoMatch {
///     container_port: None,
///     candidates: vec![Miss::new(
///         "abc:orders",
///         Mismatch::Header {
///             name: "x-dev".into(),
///             expected: Expected::Exactly("alice".into()),
///             got: Some("bob".into()),
///         },
///     )],
///     unlisted: 0,
/// };
/// assert_eq!(
///     reason.to_string(),
///     r#"no intercept matches: abc:orders: header x-dev: expected "alice", got "bob""#
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// An intercept matched: the request belongs to it.
    Matched {
        /// Its ID.
        intercept: String,
        /// The candidates tried before it, in order, and why each failed
        /// (the agent side tries several).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        passed_over: Vec<Miss>,
    },
    /// The workstation decides only for its own intercept, named by the
    /// caller-intercept-ID header, and the request has none.
    NoCallerId,
    /// The caller-intercept-ID header names no intercept known here.
    UnknownCaller {
        /// The header's value.
        caller: String,
    },
    /// The agent routes by container port and no intercepted target has it.
    NoTarget {
        /// The port asked for; 0 when none was given.
        container_port: u16,
        /// The workload's ports, in the traffic-agent's order.
        workload_ports: Vec<u16>,
    },
    /// Before Telepresence 2.25, an agent with several ports picks none when
    /// the request gives no container port.
    NoPortGiven {
        /// The workload's ports.
        workload_ports: Vec<u16>,
    },
    /// The caller's intercept is on another port than the one asked for.
    CallerOnOtherPort {
        /// The caller's intercept.
        caller: String,
        /// Its port.
        intercept_port: u16,
        /// The port the agent picked for the request.
        container_port: u16,
    },
    /// Every candidate failed a filter (or there was none).
    NoMatch {
        /// The target port, on the agent side.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        container_port: Option<u16>,
        /// The candidates in the order tried, and why each failed.
        candidates: Vec<Miss>,
        /// Candidates tried but not listed, when there were many.
        #[serde(default, skip_serializing_if = "is_zero")]
        unlisted: usize,
    },
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One intercept that was tried and did not match.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Miss {
    /// Its ID.
    pub intercept: String,
    /// The first filter that failed.
    pub mismatch: Mismatch,
}

impl Miss {
    /// `intercept` failed on `mismatch`.
    pub fn new(intercept: impl Into<String>, mismatch: Mismatch) -> Self {
        Self {
            intercept: intercept.into(),
            mismatch,
        }
    }
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.intercept, self.mismatch)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Matched {
                intercept,
                passed_over,
            } => {
                write!(f, "intercept {intercept} matches")?;
                if !passed_over.is_empty() {
                    f.write_str(" (tried before it: ")?;
                    write_list(f, passed_over)?;
                    f.write_str(")")?;
                }
                Ok(())
            }
            Self::NoCallerId => f.write_str(
                "the request names no intercept (no x-telepresence-caller-intercept-id header); \
                 the workstation decides only for its own",
            ),
            Self::UnknownCaller { caller } => {
                write!(f, "caller intercept {caller:?} is not an intercept here")
            }
            Self::NoTarget {
                container_port,
                workload_ports,
            } => match (container_port, workload_ports.as_slice()) {
                (_, []) => f.write_str("no intercept is active, so no port is intercepted"),
                (0, _) => write!(
                    f,
                    "no container port given and the first port ({}) has no target",
                    join(workload_ports)
                ),
                (port, _) => write!(
                    f,
                    "port {port} has no target (the workload's ports: {})",
                    join(workload_ports)
                ),
            },
            Self::NoPortGiven { workload_ports } => write!(
                f,
                "no container port given and the workload has several ({}); before \
                 Telepresence 2.25 the agent then picks none",
                join(workload_ports)
            ),
            Self::CallerOnOtherPort {
                caller,
                intercept_port,
                container_port,
            } => write!(
                f,
                "caller intercept {caller} is on port {intercept_port}, not on port {container_port}"
            ),
            Self::NoMatch {
                container_port,
                candidates,
                unlisted,
            } => {
                if candidates.is_empty() && *unlisted == 0 {
                    return match container_port {
                        Some(port) => write!(f, "no intercept on port {port}"),
                        None => f.write_str("no intercept to match"),
                    };
                }
                f.write_str("no intercept matches: ")?;
                write_list(f, candidates)?;
                if *unlisted > 0 {
                    write!(f, "; and {unlisted} more")?;
                }
                Ok(())
            }
        }
    }
}

fn write_list(f: &mut fmt::Formatter<'_>, misses: &[Miss]) -> fmt::Result {
    for (index, miss) in misses.iter().enumerate() {
        if index > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{miss}")?;
    }
    Ok(())
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a request does not match an intercept: the first filter that fails,
/// header filters first (by name), then the path filters.
///
/// With the `matching` feature, [`CompiledIntercept::explain`](crate::CompiledIntercept::explain)
/// finds it:
///
/// ```
/// # #[cfg(feature = "matching")] {
/// use http::HeaderMap;
/// use telepresence_api::{Intercept, Rules};
///
/// let alice = Intercept::new("abc:orders").header("x-dev", "alice").compile(&Rules::default())?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-dev", "bob".parse()?);
/// let why = alice.explain(&headers, b"").unwrap_err();
/// assert_eq!(why.to_string(), r#"header x-dev: expected "alice", got "bob""#);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "filter", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mismatch {
    /// A header filter failed.
    Header {
        /// The header's name, in lower case.
        name: String,
        /// What the filter asks for.
        expected: Expected,
        /// The request's value (its first occurrence), or `None` when the
        /// header is missing (it then reads as the empty string).
        got: Option<String>,
    },
    /// The intercept has path filters and the `path` matches none of them.
    Path {
        /// The request's `path` (empty when absent).
        path: String,
        /// The intercept's path filters, any of which would have matched.
        filters: Vec<PathFilter>,
    },
}

/// What a header filter asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Expected {
    /// This exact value.
    Exactly(String),
    /// A match of this regular expression somewhere in a non-empty value.
    MatchOf(String),
}

/// One path filter, as the intercept declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PathFilter {
    /// `--http-path-equal`.
    Equal(String),
    /// `--http-path-prefix`.
    Prefix(String),
    /// `--http-path-regex`.
    Regex(String),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header {
                name,
                expected,
                got,
            } => {
                write!(f, "header {name}: expected {expected}, got ")?;
                match got {
                    Some(value) => write!(f, "{value:?}"),
                    None => f.write_str("no such header"),
                }
            }
            Self::Path { path, filters } => {
                write!(f, "path {path:?} matches none of: ")?;
                for (index, filter) in filters.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{filter}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(value) => write!(f, "{value:?}"),
            Self::MatchOf(pattern) => write!(f, "a match of /{pattern}/"),
        }
    }
}

impl fmt::Display for PathFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equal(path) => write!(f, "equal to {path:?}"),
            Self::Prefix(prefix) => write!(f, "starting with {prefix:?}"),
            Self::Regex(pattern) => write!(f, "a match of /{pattern}/"),
        }
    }
}
