//! The mock server's admin API: what it accepts and what it reports.
//!
//! Served under [`PREFIX`] when the admin API is on: the intercepts in
//! force, the journal of every request, and faults to inject into the
//! answers.

use std::fmt;
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use crate::names::endpoint;

/// Where the admin API is served; faults never touch it.
pub const PREFIX: &str = "/_mock";
/// `GET` the intercepts in force, `POST` one, `PUT` a new list, `DELETE` all.
pub const INTERCEPTS: &str = "/_mock/intercepts";
/// `GET` the journal (`?after=SEQ` pages through it), `DELETE` to empty it.
pub const JOURNAL: &str = "/_mock/journal";
/// `GET` the faults in force, `POST` one, `DELETE` all.
pub const FAULTS: &str = "/_mock/faults";

/// The endpoints a fault applies to when it names none.
pub const API_ENDPOINTS: [&str; 3] = endpoint::ALL;

/// A fault to inject into the answers of the Telepresence endpoints.
///
/// A fault delays the answer, replaces it with an error status or with a
/// body that is no valid answer, or closes the connection without answering
/// (a delay can precede any of them). It applies to
/// every request, to a random fraction of them, or to the next `times` ones,
/// optionally only `after` letting some pass.
/// Faults are checked in the order they were added; the first that applies wins.
///
/// ```
/// use std::time::Duration;
/// use telepresence_api::admin::Fault;
///
/// let slow = Fault::delay(Duration::from_secs(2));
/// let flaky = Fault::status(503).fraction(0.1);
/// let once = Fault::close().times(1).endpoint("/consume-here");
/// let garbage = Fault::body("<html>maintenance</html>");
/// # assert!(slow.validate().is_ok() && flaky.validate().is_ok() && once.validate().is_ok());
/// # assert!(garbage.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Fault {
    /// Wait this many milliseconds before answering (or closing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Answer with this status and an error body in the server's wire format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Close the connection without any answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub close: bool,
    /// Answer `200` with this body instead of the real answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Apply to this many requests, then disappear.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Let this many requests pass before applying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Apply to this fraction of requests (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    /// URL paths it applies to; empty means the three Telepresence endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// Applies only to requests whose header (first occurrence) has this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_header: Option<HeaderEquals>,
}

/// A condition on a request header: `name` (case-insensitive) has `value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct HeaderEquals {
    /// The header's name.
    pub name: String,
    /// The value it must have.
    pub value: String,
}

impl Fault {
    fn empty() -> Self {
        Self {
            delay_ms: None,
            status: None,
            close: false,
            body: None,
            times: None,
            after: None,
            fraction: None,
            endpoints: Vec::new(),
            when_header: None,
        }
    }

    /// Answers after `delay`.
    pub fn delay(delay: Duration) -> Self {
        Self::empty().then_delay(delay)
    }

    /// Answers `status` with an error body.
    pub fn status(status: u16) -> Self {
        Self {
            status: Some(status),
            ..Self::empty()
        }
    }

    /// Answers `200` with `body` (in the server's content type) instead of
    /// the real answer: a garbled or foreign answer.
    pub fn body(body: impl Into<String>) -> Self {
        Self {
            body: Some(body.into()),
            ..Self::empty()
        }
    }

    /// Closes the connection without answering.
    pub fn close() -> Self {
        Self {
            close: true,
            ..Self::empty()
        }
    }

    /// Waits `delay` before the status or the close.
    pub fn then_delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(delay.as_millis().try_into().unwrap_or(u64::MAX));
        self
    }

    /// Applies to the next `n` requests only.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Lets the first `n` requests it applies to pass untouched.
    pub fn after(mut self, n: u64) -> Self {
        self.after = Some(n);
        self
    }

    /// Applies to a random `fraction` (0 to 1) of requests.
    pub fn fraction(mut self, fraction: f64) -> Self {
        self.fraction = Some(fraction);
        self
    }

    /// Applies to this URL path (repeatable); by default to all three endpoints.
    pub fn endpoint(mut self, path: impl Into<String>) -> Self {
        self.endpoints.push(path.into());
        self
    }

    /// Applies only to requests with this header value, e.g. the requests
    /// about one message, on every server that receives them.
    pub fn when_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.when_header = Some(HeaderEquals {
            name: name.into(),
            value: value.into(),
        });
        self
    }

    /// Checks that the fault is one the server can inject.
    pub fn validate(&self) -> Result<(), FaultError> {
        if self.delay_ms.is_none() && self.status.is_none() && !self.close && self.body.is_none() {
            return Err(FaultError(
                "a fault needs delay_ms, status, body or close".into(),
            ));
        }
        let answers = [self.status.is_some(), self.close, self.body.is_some()];
        if answers.iter().filter(|given| **given).count() > 1 {
            return Err(FaultError(
                "status, body and close exclude each other".into(),
            ));
        }
        if let Some(status) = self.status
            && !(200..=599).contains(&status)
        {
            return Err(FaultError(format!("status: {status} is not in 200..=599")));
        }
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(FaultError(format!("fraction: {f} is not in 0..=1")));
        }
        if self.times == Some(0) {
            return Err(FaultError(
                "times: 0 would fault no request; give at least 1, or leave it out to fault every request"
                    .into(),
            ));
        }
        if let Some(bad) = self.endpoints.iter().find(|e| !e.starts_with('/')) {
            return Err(FaultError(format!(
                "endpoints: `{bad}` does not start with `/`"
            )));
        }
        if let Some(admin) = self.endpoints.iter().find(|e| {
            *e == PREFIX
                || e.strip_prefix(PREFIX)
                    .is_some_and(|rest| rest.starts_with('/'))
        }) {
            return Err(FaultError(format!(
                "endpoints: `{admin}` is the admin API, which faults never touch"
            )));
        }
        if let Some(condition) = &self.when_header
            && HeaderName::from_bytes(condition.name.as_bytes()).is_err()
        {
            return Err(FaultError(format!(
                "when_header.name: `{}` is not a valid HTTP header name",
                condition.name
            )));
        }
        Ok(())
    }
}

/// Why a fault was refused: the field at fault and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FaultError(String);

/// What the fault does, as the journal names it: `delay 5ms, status 503`.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(ms) = self.delay_ms {
            parts.push(format!("delay {ms}ms"));
        }
        if let Some(status) = self.status {
            parts.push(format!("status {status}"));
        }
        if let Some(body) = &self.body {
            parts.push(format!("body {body:?}"));
        }
        if self.close {
            parts.push("close".to_owned());
        }
        f.write_str(&parts.join(", "))
    }
}

/// A fault with the number of requests it still applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ActiveFault {
    /// The fault as added.
    #[serde(flatten)]
    pub fault: Fault,
    /// Requests it still applies to, when limited by `times`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining: Option<u64>,
    /// Requests it still lets pass, when given `after`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passing: Option<u64>,
}

impl ActiveFault {
    /// A fault just added: it applies `times` times (or always) after
    /// letting `after` requests pass.
    pub fn new(fault: Fault) -> Self {
        Self {
            remaining: fault.times,
            passing: fault.after.filter(|&n| n > 0),
            fault,
        }
    }
}

/// One request to a Telepresence endpoint (or to an unknown path outside the
/// admin API) and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JournalEntry {
    /// Position since the server started (1, 2, ...); gaps mean evicted or cleared entries.
    pub seq: u64,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The connection it came on, numbered from 1 in order of acceptance:
    /// equal numbers mean a reused (keep-alive) connection.
    pub connection: u64,
    /// The HTTP method.
    pub method: String,
    /// The URL path asked for, e.g. `/consume-here`.
    pub endpoint: String,
    /// The decoded `path` parameter (empty when absent).
    pub path: String,
    /// The raw `containerPort` parameter (empty when absent).
    pub container_port: String,
    /// The `x-telepresence-caller-intercept-id` header (empty when absent).
    pub caller_id: String,
    /// Every request header in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The answer's status, or `None` when a fault closed the connection.
    pub status: Option<u16>,
    /// The answer's body.
    pub answer: String,
    /// The ID of the intercept the request matched, when a decision was made
    /// and an intercept matched.
    #[serde(default)]
    pub intercept: Option<String>,
    /// Why the side decided so, when it decided: which intercepts were
    /// tried, which filter failed and what it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<crate::Reason>,
    /// The injected fault that shaped the answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl JournalEntry {
    /// An entry for a request to `endpoint` with nothing else known yet: the
    /// server fills in the rest.
    pub fn new(seq: u64, endpoint: impl Into<String>) -> Self {
        Self {
            seq,
            unix_ms: 0,
            connection: 0,
            method: "GET".to_owned(),
            endpoint: endpoint.into(),
            path: String::new(),
            container_port: String::new(),
            caller_id: String::new(),
            headers: Vec::new(),
            status: None,
            answer: String::new(),
            intercept: None,
            reason: None,
            fault: None,
        }
    }

    /// The first value of a request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impossible_faults_are_refused() {
        let cases = [
            (Fault::empty(), "needs"),
            (
                Fault {
                    close: true,
                    ..Fault::status(500)
                },
                "exclude",
            ),
            (Fault::status(42), "status"),
            (
                Fault {
                    body: Some("x".into()),
                    ..Fault::status(500)
                },
                "exclude",
            ),
            (Fault::status(500).fraction(1.5), "fraction"),
            (Fault::close().endpoint("healthz"), "endpoints"),
            (Fault::status(500).times(0), "times: 0"),
            (Fault::status(500).endpoint("/_mock/faults"), "admin API"),
            (Fault::status(500).endpoint("/_mock"), "admin API"),
        ];
        for (fault, word) in cases {
            let err = fault.validate().unwrap_err().to_string();
            assert!(err.contains(word), "{err}");
        }
    }

    #[test]
    fn a_fault_reads_as_what_it_does() {
        let fault = Fault::status(503).then_delay(Duration::from_millis(5));
        assert_eq!(fault.to_string(), "delay 5ms, status 503");
        assert_eq!(Fault::body("x").to_string(), "body \"x\"");
    }

    #[test]
    fn an_active_fault_is_the_fault_and_its_counters_in_one_object() {
        let active = ActiveFault {
            fault: Fault::status(500).times(2),
            remaining: Some(1),
            passing: None,
        };
        let json = serde_json::to_string(&active).unwrap();
        assert_eq!(json, r#"{"status":500,"times":2,"remaining":1}"#);
        assert_eq!(serde_json::from_str::<ActiveFault>(&json).unwrap(), active);
    }
}
