//! What a decision becomes when the API cannot give one, and how an outage
//! is reported.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::Error;

/// What [`Client::should_consume`](crate::Client::should_consume) does when
/// the API fails (unreachable, timeout, error status, bad answer) after the
/// client's retries.
///
/// | policy | in the cluster | on a workstation |
/// | --- | --- | --- |
/// | `Auto` (default) | `true`: process it | hold: wait for the API |
/// | `Hold` | hold | hold |
/// | `Consume` | `true` | `true` |
/// | `Skip` | `false` | `false` |
/// | `Fail` | the error | the error |
///
/// `Auto` never loses a message to a failing API. The workstation *holds*: the
/// decision is retried, with a backoff growing to
/// [`hold_backoff_max`](crate::ClientBuilder::hold_backoff_max), until the API
/// answers, and the message is not handed out meanwhile; its offset cannot be
/// committed. A developer's process can wait. The cluster processes the
/// message, as it would without Telepresence, because holding would stall
/// production: the message is processed at least once, and twice if the
/// workstation's intercept matches it too.
///
/// A plain `should_consume` loop waits inside the call while it holds. If it
/// waits longer than the consumer's `max.poll.interval.ms` (5 minutes by
/// default), librdkafka leaves the group, and the held message may be
/// delivered again once the loop resumes. The stream adapter
/// ([`Client::filter_stream`](crate::Client::filter_stream)) keeps polling
/// and pauses the held partitions instead.
///
/// Every outage is logged at warn level: a line when it starts, a reminder
/// with the attempts so far every few seconds while it lasts, and a line when
/// the API answers again, with how many decisions it affected; the
/// [`Stats`](crate::Stats) count them.
///
/// ```
/// use telepresence_kafka::{Client, FailurePolicy};
///
/// // A workstation that would rather see the error than wait.
/// let tp = Client::builder()
///     .api_url("http://localhost:9980")
///     .intercept_id("4b1658c3:orders")
///     .failure_policy(FailurePolicy::Fail)
///     .build()?;
/// # Ok::<(), telepresence_kafka::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailurePolicy {
    /// `Consume` in the cluster (no intercept ID), `Hold` on a workstation.
    #[default]
    Auto,
    /// Wait for the API: retry until it answers.
    Hold,
    /// Process the message.
    Consume,
    /// Leave the message to the other side.
    Skip,
    /// Return the error; the caller decides.
    Fail,
}

/// What a failed call turns into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    /// Answer this instead.
    Answer(bool),
    /// Retry until the API answers.
    Hold,
    /// Return the error.
    Error,
}

impl FailurePolicy {
    /// What this policy does on this side.
    pub(crate) fn on_failure(self, workstation: bool) -> OnFailure {
        match self {
            Self::Auto if workstation => OnFailure::Hold,
            Self::Auto | Self::Consume => OnFailure::Answer(true),
            Self::Hold => OnFailure::Hold,
            Self::Skip => OnFailure::Answer(false),
            Self::Fail => OnFailure::Error,
        }
    }
}

/// How often a lasting outage is reported again.
pub(crate) const OUTAGE_REMINDER: Duration = Duration::from_secs(5);
/// How long the API must go without a failure for an outage to end, so that
/// a flapping API makes one outage, not one per flap.
pub(crate) const OUTAGE_QUIET: Duration = Duration::from_secs(1);

/// Follows the API's outages and reports each: when it starts, every
/// [`OUTAGE_REMINDER`] while it lasts, and when it ends (at the first answer
/// [`OUTAGE_QUIET`] or more after the last failure).
pub(crate) struct OutageMonitor {
    api: String,
    reminder: Duration,
    quiet: Duration,
    /// Whether the last call failed; read by the stream adapter.
    last_failed: AtomicBool,
    /// Whether an outage is open; read on every answer, the lock is taken
    /// only while it is.
    open: AtomicBool,
    outage: Mutex<Option<Outage>>,
}

#[derive(Debug)]
struct Outage {
    since: Instant,
    last_failure: Instant,
    last_line: Instant,
    failures: u64,
    held: u64,
    fell_back: u64,
    returned: u64,
}

impl Outage {
    fn affected(&self) -> u64 {
        self.held + self.fell_back + self.returned
    }
}

/// What became of a decision that met a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It waits for the API; `first` when this is its first failure.
    Held { first: bool },
    /// The policy answered this.
    FellBack(bool),
    /// The error went to the caller.
    Returned,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Held { .. } => "holding the decisions until it answers (failure policy)",
            Self::FellBack(true) => "processing the messages here meanwhile (failure policy)",
            Self::FellBack(false) => {
                "leaving the messages to the other side meanwhile (failure policy)"
            }
            Self::Returned => "returning the errors (failure policy Fail)",
        })
    }
}

impl OutageMonitor {
    pub(crate) fn new(api: impl Into<String>, reminder: Duration, quiet: Duration) -> Self {
        Self {
            api: api.into(),
            reminder,
            quiet,
            last_failed: AtomicBool::new(false),
            open: AtomicBool::new(false),
            outage: Mutex::new(None),
        }
    }

    /// Whether the API is failing now: its last call failed.
    pub(crate) fn is_failing(&self) -> bool {
        self.last_failed.load(Ordering::Acquire)
    }

    /// A call failed; `outcome` says what became of its decision. Returns
    /// whether a new outage started.
    pub(crate) fn failed(&self, error: &Error, outcome: Outcome) -> bool {
        let now = Instant::now();
        let mut guard = self.outage.lock();
        let started = guard.is_none();
        let outage = guard.get_or_insert_with(|| Outage {
            since: now,
            last_failure: now,
            last_line: now,
            failures: 0,
            held: 0,
            fell_back: 0,
            returned: 0,
        });
        self.open.store(true, Ordering::Release);
        self.last_failed.store(true, Ordering::Release);
        outage.failures += 1;
        outage.last_failure = now;
        match outcome {
            Outcome::Held { first: true } => outage.held += 1,
            Outcome::Held { first: false } => {}
            Outcome::FellBack(_) => outage.fell_back += 1,
            Outcome::Returned => outage.returned += 1,
        }
        if started {
            tracing::warn!(
                api = %self.api,
                error = %error,
                kind = ?error.kind(),
                "Telepresence API failing; {outcome}"
            );
        } else if now.duration_since(outage.last_line) >= self.reminder {
            outage.last_line = now;
            tracing::warn!(
                api = %self.api,
                error = %error,
                failed_attempts = outage.failures,
                decisions_affected = outage.affected(),
                "Telepresence API still failing after {:.1} s; {outcome}",
                now.duration_since(outage.since).as_secs_f64()
            );
        }
        started
    }

    /// A call got an answer. Returns whether an outage ended.
    pub(crate) fn answered(&self) -> bool {
        if self.last_failed.load(Ordering::Relaxed) {
            self.last_failed.store(false, Ordering::Release);
        }
        if !self.open.load(Ordering::Acquire) {
            return false;
        }
        let mut guard = self.outage.lock();
        if guard
            .as_ref()
            .is_none_or(|outage| outage.last_failure.elapsed() < self.quiet)
        {
            return false;
        }
        let Some(outage) = guard.take() else {
            return false;
        };
        self.open.store(false, Ordering::Release);
        drop(guard);
        tracing::warn!(
            api = %self.api,
            failed_attempts = outage.failures,
            decisions_affected = outage.affected(),
            held = outage.held,
            fell_back = outage.fell_back,
            returned_as_errors = outage.returned,
            "Telepresence API answers again after {:.1} s; the outage affected {} decisions",
            outage.since.elapsed().as_secs_f64(),
            outage.affected()
        );
        true
    }
}

impl fmt::Debug for OutageMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutageMonitor")
            .field("api", &self.api)
            .field("failing", &self.is_failing())
            .field("open", &self.open.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_holds_on_the_workstation_and_consumes_in_the_cluster() {
        assert_eq!(FailurePolicy::default(), FailurePolicy::Auto);
        assert_eq!(
            FailurePolicy::Auto.on_failure(false),
            OnFailure::Answer(true)
        );
        assert_eq!(FailurePolicy::Auto.on_failure(true), OnFailure::Hold);
        for workstation in [false, true] {
            assert_eq!(FailurePolicy::Hold.on_failure(workstation), OnFailure::Hold);
            assert_eq!(
                FailurePolicy::Consume.on_failure(workstation),
                OnFailure::Answer(true)
            );
            assert_eq!(
                FailurePolicy::Skip.on_failure(workstation),
                OnFailure::Answer(false)
            );
            assert_eq!(
                FailurePolicy::Fail.on_failure(workstation),
                OnFailure::Error
            );
        }
    }

    #[test]
    fn an_outage_starts_once_and_ends_once() {
        let monitor = OutageMonitor::new("http://api/", Duration::from_secs(3600), Duration::ZERO);
        let error = Error::config("x");
        assert!(!monitor.answered(), "no outage to end");
        assert!(monitor.failed(&error, Outcome::Held { first: true }));
        assert!(monitor.is_failing());
        assert!(!monitor.failed(&error, Outcome::Held { first: false }));
        assert!(!monitor.failed(&error, Outcome::FellBack(true)));
        {
            let outage = monitor.outage.lock();
            let outage = outage.as_ref().unwrap();
            assert_eq!((outage.failures, outage.affected()), (3, 2));
        }
        assert!(monitor.answered());
        assert!(!monitor.is_failing());
        assert!(!monitor.answered(), "already ended");
        assert!(
            monitor.failed(&error, Outcome::Returned),
            "a new outage starts"
        );
    }

    #[test]
    fn a_flapping_api_makes_one_outage() {
        let monitor = OutageMonitor::new(
            "http://api/",
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        let error = Error::config("x");
        assert!(monitor.failed(&error, Outcome::FellBack(true)));
        assert!(!monitor.answered(), "too soon after the failure");
        assert!(!monitor.is_failing(), "but the last call answered");
        assert!(
            !monitor.failed(&error, Outcome::FellBack(true)),
            "the same outage"
        );
        assert!(monitor.is_failing());
    }
}
