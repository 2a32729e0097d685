//! Injected faults, so that clients can be tested against a misbehaving server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderMap, HeaderName};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// The endpoints a fault applies to when it names none.
pub const API_ENDPOINTS: [&str; 3] = ["/healthz", "/consume-here", "/intercept-info"];

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
/// use telepresence_mock_server::Fault;
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
    pub fn validate(&self) -> Result<(), String> {
        if self.delay_ms.is_none() && self.status.is_none() && !self.close && self.body.is_none() {
            return Err("a fault needs delay_ms, status, body or close".into());
        }
        let answers = [self.status.is_some(), self.close, self.body.is_some()];
        if answers.iter().filter(|given| **given).count() > 1 {
            return Err("status, body and close exclude each other".into());
        }
        if let Some(status) = self.status
            && !(200..=599).contains(&status)
        {
            return Err(format!("status: {status} is not in 200..=599"));
        }
        if let Some(f) = self.fraction
            && !(0.0..=1.0).contains(&f)
        {
            return Err(format!("fraction: {f} is not in 0..=1"));
        }
        if self.times == Some(0) {
            return Err(
                "times: 0 would fault no request; give at least 1, or leave it out to fault every request"
                    .into(),
            );
        }
        if let Some(bad) = self.endpoints.iter().find(|e| !e.starts_with('/')) {
            return Err(format!("endpoints: `{bad}` does not start with `/`"));
        }
        if let Some(admin) = self
            .endpoints
            .iter()
            .find(|e| *e == "/_mock" || e.starts_with("/_mock/"))
        {
            return Err(format!(
                "endpoints: `{admin}` is the admin API, which faults never touch"
            ));
        }
        if let Some(condition) = &self.when_header
            && HeaderName::from_bytes(condition.name.as_bytes()).is_err()
        {
            return Err(format!(
                "when_header.name: `{}` is not a valid HTTP header name",
                condition.name
            ));
        }
        Ok(())
    }

    fn applies_to(&self, endpoint: &str, headers: &HeaderMap) -> bool {
        let endpoint_matches = if self.endpoints.is_empty() {
            API_ENDPOINTS.contains(&endpoint)
        } else {
            self.endpoints.iter().any(|e| e == endpoint)
        };
        endpoint_matches
            && self.when_header.as_ref().is_none_or(|condition| {
                headers
                    .get(condition.name.as_str())
                    .is_some_and(|v| v.as_bytes() == condition.value.as_bytes())
            })
    }

    fn label(&self) -> String {
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
        parts.join(", ")
    }
}

/// What a request gets when a fault applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Injection {
    pub(crate) delay: Option<Duration>,
    pub(crate) status: Option<u16>,
    pub(crate) body: Option<String>,
    pub(crate) close: bool,
    pub(crate) label: String,
}

/// The faults in force.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    /// Lets the common case (no faults) skip the lock.
    count: AtomicUsize,
    rules: Mutex<Vec<ActiveFault>>,
}

/// A fault with the number of requests it still applies to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

impl Faults {
    pub(crate) fn add(&self, fault: Fault) -> Result<(), String> {
        fault.validate()?;
        let mut rules = self.rules.lock();
        rules.push(ActiveFault {
            remaining: fault.times,
            passing: fault.after.filter(|&n| n > 0),
            fault,
        });
        self.count.store(rules.len(), Ordering::Release);
        Ok(())
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        self.rules.lock().clone()
    }

    pub(crate) fn clear(&self) {
        let mut rules = self.rules.lock();
        rules.clear();
        self.count.store(0, Ordering::Release);
    }

    /// The fault that applies to this request, consuming one of its `times`.
    pub(crate) fn next(&self, endpoint: &str, headers: &HeaderMap) -> Option<Injection> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut rules = self.rules.lock();
        let index = rules.iter_mut().position(|rule| {
            if !rule.fault.applies_to(endpoint, headers) {
                return false;
            }
            if let Some(passing) = &mut rule.passing {
                *passing -= 1;
                if *passing == 0 {
                    rule.passing = None;
                }
                return false;
            }
            rule.fault.fraction.is_none_or(|f| fastrand::f64() < f)
        })?;
        let rule = &mut rules[index];
        let injection = Injection {
            delay: rule.fault.delay_ms.map(Duration::from_millis),
            status: rule.fault.status,
            body: rule.fault.body.clone(),
            close: rule.fault.close,
            label: rule.fault.label(),
        };
        if let Some(remaining) = &mut rule.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                rules.remove(index);
                self.count.store(rules.len(), Ordering::Release);
            }
        }
        Some(injection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limited_fault_applies_exactly_n_times() {
        let faults = Faults::default();
        faults.add(Fault::status(500).times(2)).unwrap();
        assert_eq!(
            faults
                .next("/consume-here", &HeaderMap::new())
                .unwrap()
                .status,
            Some(500)
        );
        assert_eq!(faults.list()[0].remaining, Some(1));
        assert_eq!(
            faults.next("/healthz", &HeaderMap::new()).unwrap().status,
            Some(500)
        );
        assert_eq!(faults.next("/consume-here", &HeaderMap::new()), None);
        assert!(faults.list().is_empty());
    }

    #[test]
    fn after_lets_requests_pass_first() {
        let faults = Faults::default();
        faults.add(Fault::status(500).after(2).times(1)).unwrap();
        assert_eq!(faults.next("/consume-here", &HeaderMap::new()), None);
        assert_eq!(faults.list()[0].passing, Some(1));
        assert_eq!(
            faults.next("/elsewhere", &HeaderMap::new()),
            None,
            "does not count"
        );
        assert_eq!(faults.next("/consume-here", &HeaderMap::new()), None);
        assert_eq!(
            faults
                .next("/consume-here", &HeaderMap::new())
                .unwrap()
                .status,
            Some(500)
        );
        assert_eq!(faults.next("/consume-here", &HeaderMap::new()), None);
    }

    #[test]
    fn faults_apply_to_their_endpoints_and_in_order() {
        let faults = Faults::default();
        faults
            .add(Fault::close().endpoint("/intercept-info"))
            .unwrap();
        faults.add(Fault::status(503)).unwrap();
        assert!(
            faults
                .next("/intercept-info", &HeaderMap::new())
                .unwrap()
                .close
        );
        assert_eq!(
            faults
                .next("/consume-here", &HeaderMap::new())
                .unwrap()
                .status,
            Some(503)
        );
        assert_eq!(
            faults.next("/elsewhere", &HeaderMap::new()),
            None,
            "unknown paths are not faulted by default"
        );
        faults.clear();
        assert_eq!(faults.next("/consume-here", &HeaderMap::new()), None);
    }

    #[test]
    fn fractions_apply_to_about_that_share() {
        let faults = Faults::default();
        faults.add(Fault::status(500).fraction(0.25)).unwrap();
        let hits = (0..4000)
            .filter(|_| faults.next("/healthz", &HeaderMap::new()).is_some())
            .count();
        assert!((700..1300).contains(&hits), "{hits} of 4000");
        faults.clear();
        faults.add(Fault::status(500).fraction(0.0)).unwrap();
        assert!((0..100).all(|_| faults.next("/healthz", &HeaderMap::new()).is_none()));
    }

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
            let err = fault.validate().unwrap_err();
            assert!(err.contains(word), "{err}");
        }
    }

    #[test]
    fn a_fault_can_target_requests_by_header() {
        let faults = Faults::default();
        faults
            .add(Fault::status(500).when_header("X-Chaos", "500"))
            .unwrap();
        let mut headers = HeaderMap::new();
        assert_eq!(faults.next("/consume-here", &headers), None);
        headers.insert("x-chaos", "5000".parse().unwrap());
        assert_eq!(faults.next("/consume-here", &headers), None);
        headers.insert("x-chaos", "500".parse().unwrap());
        assert_eq!(
            faults.next("/consume-here", &headers).unwrap().status,
            Some(500)
        );
        assert!(Fault::close().when_header("a b", "v").validate().is_err());
    }

    #[test]
    fn a_delay_can_precede_a_status() {
        let faults = Faults::default();
        faults
            .add(Fault::status(503).then_delay(Duration::from_millis(5)))
            .unwrap();
        let injection = faults.next("/consume-here", &HeaderMap::new()).unwrap();
        assert_eq!(injection.delay, Some(Duration::from_millis(5)));
        assert_eq!(injection.label, "delay 5ms, status 503");
    }
}
