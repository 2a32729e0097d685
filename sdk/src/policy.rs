//! What a decision becomes when the API cannot give one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Error;

/// What [`Client::should_consume`](crate::Client::should_consume) answers when
/// the API fails (unreachable, timeout, error status, bad answer).
///
/// | policy | in the cluster | on a workstation |
/// | --- | --- | --- |
/// | `Fail` | the error | the error |
/// | `Consume` | `true` | `true` |
/// | `Skip` | `false` | `false` |
/// | `Auto` (default) | `true` | `false` |
///
/// `Auto` keeps production working when its API misbehaves (the cluster
/// processes the message, as it would without Telepresence), and never lets a
/// workstation steal a message the cluster may also be processing. Every
/// fallback is logged at warn level (rate-limited) and counted in
/// [`Stats::fallbacks`](crate::Stats::fallbacks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FailurePolicy {
    /// Return the error; the caller decides.
    Fail,
    /// Process the message.
    Consume,
    /// Leave the message to the other side.
    Skip,
    /// `Consume` in the cluster (no intercept ID), `Skip` on a workstation.
    #[default]
    Auto,
}

impl FailurePolicy {
    /// The fallback answer for this side, or `None` for [`FailurePolicy::Fail`].
    pub(crate) fn fallback(self, workstation: bool) -> Option<bool> {
        match self {
            Self::Fail => None,
            Self::Consume => Some(true),
            Self::Skip => Some(false),
            Self::Auto => Some(!workstation),
        }
    }
}

/// Logs fallbacks at most once per interval, counting the ones it holds back.
#[derive(Debug)]
pub(crate) struct WarnLimiter {
    start: Instant,
    interval: Duration,
    /// Milliseconds since `start` of the last warning, plus one (0: never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

impl WarnLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            start: Instant::now(),
            interval,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Warns about a fallback, unless one was logged within the interval.
    /// Returns whether it logged.
    pub(crate) fn fallback(&self, error: &Error, consume: bool) -> bool {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= self.interval.as_millis() as u64;
        if !due
            || self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        let action = if consume {
            "processing the message here"
        } else {
            "leaving the message to the other side"
        };
        tracing::warn!(
            error = %error,
            kind = ?error.kind(),
            suppressed,
            "Telepresence API failed; {action} (failure policy)"
        );
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_auto_and_depends_on_the_side() {
        assert_eq!(FailurePolicy::default(), FailurePolicy::Auto);
        assert_eq!(
            FailurePolicy::Auto.fallback(false),
            Some(true),
            "cluster consumes"
        );
        assert_eq!(
            FailurePolicy::Auto.fallback(true),
            Some(false),
            "workstation skips"
        );
        for workstation in [false, true] {
            assert_eq!(FailurePolicy::Fail.fallback(workstation), None);
            assert_eq!(FailurePolicy::Consume.fallback(workstation), Some(true));
            assert_eq!(FailurePolicy::Skip.fallback(workstation), Some(false));
        }
    }

    #[test]
    fn warnings_are_rate_limited() {
        let limiter = WarnLimiter::new(Duration::from_secs(3600));
        let error = Error::config("x");
        assert!(limiter.fallback(&error, true));
        assert!(!limiter.fallback(&error, true));
        assert!(!limiter.fallback(&error, false));
        assert_eq!(limiter.suppressed.load(Ordering::Relaxed), 2);

        let every_time = WarnLimiter::new(Duration::ZERO);
        assert!(every_time.fallback(&error, true));
        assert!(every_time.fallback(&error, true));
    }
}
