//! An enabled client: what it knows of its API, how a message becomes a
//! query, and how a decision meets the failure policy.
//!
//! Only this state can plan or send a query, so a disabled client cannot,
//! by construction.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use smallvec::SmallVec;
use tracing::Instrument;
use url::Url;

use super::path::PathSource;
use super::side::SideVerdict;
use super::transport::Transport;
use crate::CALLER_INTERCEPT_ID_HEADER;
use crate::cache::DecisionCache;
use crate::error::Error;
use crate::headers::{Derived, HeaderForwarding, Offered};
use crate::message::{KafkaMessage, MessageView};
use crate::metrics::{DecisionMetrics, Recording};
use crate::policy::{FailurePolicy, OnFailure, OutageMonitor, Outcome};
use crate::routing::Propagation;
use crate::stats::Counters;
use crate::wire;
use telepresence_api::InterceptInfo;

/// The wait before a held decision's second attempt; it doubles each time.
const HOLD_BACKOFF_START: Duration = Duration::from_millis(50);

/// Headers gathered on the stack for typical messages.
type HeaderPairs<'m> = SmallVec<[(&'m str, Option<&'m [u8]>); 16]>;

/// A client with an API to ask; built by the
/// [`ClientBuilder`](super::ClientBuilder), shared by the clones.
pub(super) struct Enabled {
    /// Empty in the cluster.
    pub(super) intercept_id: String,
    pub(super) counters: Counters,
    /// What the `metrics` feature reports; nothing without it.
    pub(super) metrics: DecisionMetrics,
    /// The API's base URL, and the endpoints under it.
    pub(super) base: Url,
    pub(super) consume_here: Url,
    pub(super) intercept_info: Url,
    pub(super) healthz: Url,
    /// The intercept ID as a header value.
    pub(super) caller: HeaderValue,
    pub(super) container_port: Option<u16>,
    pub(super) path: PathSource,
    pub(super) forwarding: HeaderForwarding,
    /// Whether `forwarding` derives headers from messages: when it does
    /// not, a message pays one branch for the options.
    pub(super) derives: bool,
    pub(super) cache: Option<DecisionCache>,
    pub(super) policy: FailurePolicy,
    pub(super) hold_backoff_max: Duration,
    pub(super) outages: OutageMonitor,
    pub(super) transport: Transport,
    /// Whether to check, before the first decision, that the API is this
    /// side's.
    pub(super) side_check: bool,
    /// Whether a workstation may read in a group that is not its own.
    #[cfg_attr(
        not(feature = "rdkafka"),
        expect(dead_code, reason = "only the stream adapter checks groups")
    )]
    pub(super) allow_shared_group: bool,
    /// What the side check found, once it found something.
    pub(super) side: tokio::sync::OnceCell<SideVerdict>,
    pub(super) propagation: Propagation,
}

/// A decision's query ready to send, or its answer known without asking.
pub(super) enum Plan {
    Known(bool),
    /// Boxed: the plan is returned on the hot path, the query only moved
    /// into the future that sends it.
    Ask(Box<Query>),
}

/// Everything a query needs of the message, taken before the first await so
/// that the future does not borrow the message.
pub(super) struct Query {
    url: Url,
    headers: HeaderMap,
    cache_key: Option<Vec<u8>>,
    dropped: usize,
}

impl Enabled {
    /// Whether this is a workstation: it has an intercept ID.
    pub(super) fn is_workstation(&self) -> bool {
        !self.intercept_id.is_empty()
    }

    /// The `/consume-here` query for `msg`, or its answer from the cache.
    pub(super) fn plan_decision<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Plan {
        if let Some(plan) = self.plan_from_cache_key(msg) {
            return plan;
        }
        self.read(msg, |headers, path| {
            let cache_key = match &self.cache {
                None => None,
                Some(cache) => match self.look_up(cache, path.as_deref(), headers.iter()) {
                    Ok(answer) => return Plan::Known(answer),
                    Err(key) => Some(key),
                },
            };
            Plan::Ask(Box::new(self.query(
                &self.consume_here,
                path,
                headers,
                cache_key,
            )))
        })
    }

    /// With a cache, the key needs only the routing headers, which usually
    /// come first: reading the headers one at a time (through librdkafka, a
    /// call each) stops at them, and a hit reads no more. Derived headers,
    /// and a path taken from the headers, need all of them: `None`, and the
    /// full read decides.
    fn plan_from_cache_key<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Option<Plan> {
        let cache = self.cache.as_ref()?;
        if self.derives {
            return None;
        }
        let path = match msg.path() {
            Some(path) => Some(Cow::Borrowed(path)),
            None => self.path.resolve_from_topic(|| msg.topic())?,
        };
        let own = msg.headers().map(|(k, v)| (k, v.unwrap_or_default()));
        let key = match self.look_up(cache, path.as_deref(), own) {
            Ok(answer) => return Some(Plan::Known(answer)),
            Err(key) => key,
        };
        Some(self.read(msg, |headers, path| {
            Plan::Ask(Box::new(self.query(
                &self.consume_here,
                path,
                headers,
                Some(key),
            )))
        }))
    }

    /// [`DecisionCache::lookup`], counting the hits.
    fn look_up<'h>(
        &self,
        cache: &DecisionCache,
        path: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<bool, Vec<u8>> {
        let found = cache.lookup(path, headers);
        if found.is_ok() {
            Counters::add(&self.counters.cache_hits, 1);
        }
        found
    }

    /// The `/intercept-info` query for `msg` (never cached).
    pub(super) fn info_query<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Query {
        self.read(msg, |headers, path| {
            self.query(&self.intercept_info, path, headers, None)
        })
    }

    /// Gathers a message's headers, those derived from it (on the stack, when
    /// few) and its path, for `then`. Counts what could not be derived.
    fn read<M, R>(
        &self,
        msg: &M,
        then: impl for<'p> FnOnce(Offered<'p>, Option<Cow<'p, str>>) -> R,
    ) -> R
    where
        M: KafkaMessage + ?Sized,
    {
        let pairs: HeaderPairs<'_> = msg.headers().collect();
        let mut derived = Derived::default();
        if self.derives {
            self.forwarding.derive(&pairs, || msg.key(), &mut derived);
            self.count_skipped(&derived);
        }
        let view = MessageView {
            topic: msg.topic(),
            headers: &pairs,
        };
        let path = match msg.path() {
            Some(path) => Some(Cow::Borrowed(path)),
            None => self.path.resolve(&view),
        };
        let headers = Offered {
            own: &pairs,
            derived: &derived.pairs,
        };
        then(headers, path)
    }

    /// Counts the baggage members and keys that could not be derived.
    fn count_skipped(&self, derived: &Derived<'_>) {
        let skipped = [
            (&self.counters.malformed_baggage, derived.malformed_baggage),
            (&self.counters.non_utf8_keys, derived.non_utf8_keys),
        ];
        for (counter, n) in skipped {
            if n > 0 {
                Counters::add(counter, n as u64);
            }
        }
    }

    fn query(
        &self,
        endpoint: &Url,
        path: Option<Cow<'_, str>>,
        offered: Offered<'_>,
        cache_key: Option<Vec<u8>>,
    ) -> Query {
        let mut url = endpoint.clone();
        let path = path.filter(|p| !p.is_empty());
        if path.is_some() || self.container_port.is_some() {
            let mut query = form_urlencoded::Serializer::new(String::with_capacity(64));
            if let Some(path) = &path {
                query.append_pair("path", path);
            }
            if let Some(port) = self.container_port {
                query.append_pair("containerPort", &port.to_string());
            }
            url.set_query(Some(&query.finish()));
        }
        let mut headers = HeaderMap::with_capacity(offered.len() + 1);
        headers.insert(CALLER_INTERCEPT_ID_HEADER, self.caller.clone());
        let dropped = self.forwarding.forward_into(offered.iter(), &mut headers);
        Query {
            url,
            headers,
            cache_key,
            dropped,
        }
    }

    /// Asks `/consume-here`; a failure goes to the failure policy. The
    /// answer, from the API or the policy, is recorded in `recording`.
    pub(super) async fn decide(&self, query: Query, recording: Recording) -> Result<bool, Error> {
        let counters = &self.counters;
        if let Err(error) = self.check_side_before_deciding().await {
            Counters::add(&counters.errors, 1);
            return Err(error);
        }
        let Query {
            url,
            headers,
            cache_key,
            dropped,
        } = query;
        Counters::add(&counters.dropped_headers, dropped as u64);
        let span = tracing::debug_span!(
            "telepresence_decision",
            url = %url,
            answer = tracing::field::Empty,
            fallback = tracing::field::Empty,
            held = tracing::field::Empty,
        );
        let mut held = false;
        let mut backoff = HOLD_BACKOFF_START;
        loop {
            let result = async {
                let (status, body) = self.send(&url, &headers).await?;
                wire::consume_here(status, &body)
            }
            .instrument(span.clone())
            .await;
            let error = match result {
                Ok(answer) => {
                    if self.outages.answered() {
                        Counters::add(&counters.outages, 1);
                    }
                    if let (Some(cache), Some(key)) = (&self.cache, cache_key) {
                        cache.insert(key, answer);
                    }
                    span.record("answer", answer);
                    counters.decided(answer);
                    recording.answered(answer, false);
                    return Ok(answer);
                }
                Err(error) => error,
            };
            Counters::add(&counters.errors, 1);
            match self.policy.on_failure(self.is_workstation()) {
                OnFailure::Answer(answer) => {
                    self.outages.failed(&error, Outcome::FellBack(answer));
                    Counters::add(&counters.fallbacks, 1);
                    span.record("fallback", true);
                    span.record("answer", answer);
                    counters.decided(answer);
                    recording.answered(answer, true);
                    return Ok(answer);
                }
                OnFailure::Error => {
                    self.outages.failed(&error, Outcome::Returned);
                    return Err(error);
                }
                OnFailure::Hold => {
                    self.outages.failed(&error, Outcome::Held { first: !held });
                    if !held {
                        held = true;
                        Counters::add(&counters.held, 1);
                        recording.held();
                        span.record("held", true);
                    }
                    tracing::debug!(%error, wait = ?backoff, "holding the decision");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(self.hold_backoff_max);
                }
            }
        }
    }

    /// Asks `/intercept-info`; errors are returned as they are.
    pub(super) async fn intercept_info(&self, query: Query) -> Result<InterceptInfo, Error> {
        let Query {
            url,
            headers,
            dropped,
            ..
        } = query;
        Counters::add(&self.counters.dropped_headers, dropped as u64);
        let answer = async {
            let (status, body) = self.send(&url, &headers).await?;
            wire::intercept_info(status, &body)
        }
        .await;
        answer.inspect_err(|_| Counters::add(&self.counters.errors, 1))
    }

    /// Checks that the API answers `/healthz` with a success status.
    pub(super) async fn healthz(&self) -> Result<(), Error> {
        let (status, body) = self.send(&self.healthz, &HeaderMap::new()).await?;
        wire::check_status(status, &body)
    }

    /// Whether decisions are being held now: the API is failing and the
    /// policy waits for it on this side.
    #[cfg(feature = "rdkafka")]
    pub(super) fn holds_decisions(&self) -> bool {
        self.policy.on_failure(self.is_workstation()) == OnFailure::Hold
            && self.outages.is_failing()
    }

    pub(super) async fn send(&self, url: &Url, headers: &HeaderMap) -> Result<(u16, Bytes), Error> {
        self.transport.send(url, headers, &self.counters).await
    }
}
