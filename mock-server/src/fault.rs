//! Injected faults in force, so that clients can be tested against a
//! misbehaving server: which one applies to a request, and how often.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::HeaderMap;
use parking_lot::Mutex;
use telepresence_api::admin::{API_ENDPOINTS, ActiveFault, Fault, FaultError};

/// Whether `fault` applies to a request to `endpoint` with these headers.
fn applies_to(fault: &Fault, endpoint: &str, headers: &HeaderMap) -> bool {
    let endpoint_matches = if fault.endpoints.is_empty() {
        API_ENDPOINTS.contains(&endpoint)
    } else {
        fault.endpoints.iter().any(|e| e == endpoint)
    };
    endpoint_matches
        && fault.when_header.as_ref().is_none_or(|condition| {
            headers
                .get(condition.name.as_str())
                .is_some_and(|v| v.as_bytes() == condition.value.as_bytes())
        })
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

impl Faults {
    pub(crate) fn add(&self, fault: Fault) -> Result<(), FaultError> {
        fault.validate()?;
        let mut rules = self.rules.lock();
        rules.push(ActiveFault::new(fault));
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
            if !applies_to(&rule.fault, endpoint, headers) {
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
            label: rule.fault.to_string(),
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
