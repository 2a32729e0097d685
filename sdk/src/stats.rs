//! Counters of what a client decided and why.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a client's counters, shared by all its clones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Decisions to process a message here (fallbacks included). A decision
    /// is not a processed message: the stream adapter counts those in
    /// [`Progress`](crate::stream::Progress).
    pub consumed: u64,
    /// Decisions to leave a message to the other side (fallbacks included).
    pub skipped: u64,
    /// Calls that failed (each attempt of a held decision counts).
    pub errors: u64,
    /// Decisions taken by the failure policy instead of the API.
    pub fallbacks: u64,
    /// Decisions that waited for a failing API (failure policy `Hold`, and
    /// `Auto` on a workstation) before it answered.
    pub held: u64,
    /// Outages that ended: stretches of failed calls followed by an answer.
    pub outages: u64,
    /// Decisions answered from the cache.
    pub cache_hits: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Retries after connection errors.
    pub retries: u64,
    /// Headers left out of requests by the forwarding rules (names HTTP
    /// cannot carry or reserves, the allow and deny lists, the limits),
    /// derived headers included.
    pub dropped_headers: u64,
    /// Members of tracing baggage skipped because they could not be read
    /// (with [`ClientBuilder::baggage`](crate::ClientBuilder::baggage)): not
    /// `key=value`, a key that is not a token, a character baggage does not
    /// allow, or a `%` not followed by two hex digits. Counted per message
    /// decided; a skipped member routes nothing, as if absent.
    pub malformed_baggage: u64,
    /// Record keys not sent because they are not UTF-8 (with
    /// [`ClientBuilder::key_as_header`](crate::ClientBuilder::key_as_header)):
    /// the message is decided as one without a key.
    pub non_utf8_keys: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) consumed: AtomicU64,
    pub(crate) skipped: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) fallbacks: AtomicU64,
    pub(crate) held: AtomicU64,
    pub(crate) outages: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) dropped_headers: AtomicU64,
    pub(crate) malformed_baggage: AtomicU64,
    pub(crate) non_utf8_keys: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn decided(&self, consume: bool) {
        Self::add(
            if consume {
                &self.consumed
            } else {
                &self.skipped
            },
            1,
        );
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            consumed: get(&self.consumed),
            skipped: get(&self.skipped),
            errors: get(&self.errors),
            fallbacks: get(&self.fallbacks),
            held: get(&self.held),
            outages: get(&self.outages),
            cache_hits: get(&self.cache_hits),
            requests: get(&self.requests),
            retries: get(&self.retries),
            dropped_headers: get(&self.dropped_headers),
            malformed_baggage: get(&self.malformed_baggage),
            non_utf8_keys: get(&self.non_utf8_keys),
        }
    }
}
