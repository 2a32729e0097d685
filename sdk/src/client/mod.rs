//! The async client, split by concern:
//!
//! - this module: [`Client`], disabled or enabled;
//! - `builder`: [`ClientBuilder`], and the API's address as the user gives it;
//! - `path`: [`PathSource`], where a query's `path` comes from;
//! - `enabled`: an enabled client's state; query planning, and a decision
//!   under the failure policy;
//! - `side`: the check that the API serves this side;
//! - `transport`: HTTP with retries, within the call's timeout;
//! - `decision`: [`ShouldConsume`], the future of one decision.

mod builder;
mod decision;
mod enabled;
mod path;
mod side;
mod transport;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use url::Url;

pub use self::builder::ClientBuilder;
pub use self::decision::ShouldConsume;
use self::enabled::{Enabled, Plan};
pub use self::path::{PathFn, PathSource};
use crate::env;
use crate::error::{Error, ErrorKind};
use crate::group;
use crate::message::KafkaMessage;
use crate::routing::{Propagation, RoutingHeaders};
use crate::stats::{Counters, Stats};
use telepresence_api::InterceptInfo;

/// Asks the Telepresence API whether this side should process a message.
///
/// Cheap to clone (clones share connections, cache and counters) and
/// `Send + Sync`. When Telepresence is absent the client is *disabled*:
/// [`should_consume`](Self::should_consume) answers `true` at once, with no
/// I/O and no allocation.
///
#[cfg_attr(feature = "rdkafka", doc = "```")]
#[cfg_attr(not(feature = "rdkafka"), doc = "```ignore")]
/// # async fn example(msg: &rdkafka::message::BorrowedMessage<'_>) -> Result<(), telepresence_kafka::Error> {
/// let tp = telepresence_kafka::Client::from_env()?;
/// if tp.should_consume(msg).await? {
///     // process the message
/// }
/// // processed or skipped: commit (or store) its offset either way
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    state: State,
}

/// Whether there is an API to ask. Only [`Enabled`] can plan and send a
/// query.
#[derive(Clone)]
enum State {
    Disabled(Arc<Disabled>),
    Enabled(Arc<Enabled>),
}

/// A client with no API: every decision is `true`, at once.
struct Disabled {
    /// Kept for [`Client::group_id`]: an intercept ID without an API is
    /// allowed (and logged).
    intercept_id: String,
    counters: Counters,
    /// Kept for [`Client::routing_headers`]: production passes routing
    /// context on as a workstation does.
    propagation: Propagation,
}

impl Client {
    /// A client configured from `TELEPRESENCE_API_PORT`, `TELEPRESENCE_API_HOST`
    /// and `TELEPRESENCE_INTERCEPT_ID`, with default settings.
    ///
    /// Port unset, empty or `0` gives a disabled client. Any other invalid
    /// value is an [`ErrorKind::Config`] error naming the variable and value.
    pub fn from_env() -> Result<Self, Error> {
        ClientBuilder::from_env()?.build()
    }

    /// A builder with nothing configured: without an API address it builds a
    /// disabled client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client that never asks anything and consumes everything, as when
    /// Telepresence is absent: for tests, or to turn the crate off.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), telepresence_kafka::Error> {
    /// use telepresence_kafka::{Client, HeaderList};
    ///
    /// let tp = Client::disabled();
    /// assert!(!tp.is_enabled());
    /// assert!(tp.should_consume(&HeaderList::default()).await?);
    /// assert_eq!(tp.group_id("orders"), "orders");
    /// # Ok(()) }
    /// ```
    pub fn disabled() -> Self {
        Self::disabled_as(String::new(), Propagation::default())
    }

    /// A disabled client that still knows its intercept ID.
    fn disabled_as(intercept_id: String, propagation: Propagation) -> Self {
        Self {
            state: State::Disabled(Arc::new(Disabled {
                intercept_id,
                counters: Counters::default(),
                propagation,
            })),
        }
    }

    /// Whether there is an API to ask.
    pub fn is_enabled(&self) -> bool {
        matches!(self.state, State::Enabled(_))
    }

    /// The intercept ID (empty in the cluster).
    pub fn intercept_id(&self) -> &str {
        match &self.state {
            State::Disabled(disabled) => &disabled.intercept_id,
            State::Enabled(api) => &api.intercept_id,
        }
    }

    /// Whether this is a workstation: it has an intercept ID.
    pub fn is_workstation(&self) -> bool {
        !self.intercept_id().is_empty()
    }

    /// The API's base URL, when enabled.
    pub fn api_url(&self) -> Option<&Url> {
        match &self.state {
            State::Disabled(_) => None,
            State::Enabled(api) => Some(&api.base),
        }
    }

    /// The consumer group to join: `base` in the cluster, `base-<intercept id>`
    /// on a workstation (the ID reduced to `[A-Za-z0-9._-]`, the whole cut to
    /// 249 characters with a stable hash when longer).
    ///
    /// The workstation must read every message, so it needs a group of its
    /// own; in the cluster's group Kafka would give it only some partitions.
    ///
    /// ```
    /// let tp = telepresence_kafka::Client::builder().intercept_id("4b16:echo").build()?;
    /// assert_eq!(tp.group_id("orders"), "orders-4b16-echo");
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn group_id(&self, base: &str) -> String {
        group::group_id(base, self.intercept_id())
    }

    /// Whether a consumer of this side may read in `group` without sharing it
    /// with the other side: on a workstation, whether `group` is one that
    /// [`group_id`](Self::group_id) makes for this intercept, from any base
    /// (the check `check_group` makes, with the `rdkafka` feature); without an
    /// intercept ID, always `true`, since the pod's group is whatever the pod
    /// reads in.
    ///
    /// ```
    /// use telepresence_kafka::Client;
    ///
    /// let workstation = Client::builder().intercept_id("4b16:echo").build()?;
    /// assert!(workstation.is_own_group("orders-4b16-echo"));
    /// assert!(workstation.is_own_group(&workstation.group_id("payments")));
    /// assert!(!workstation.is_own_group("orders"), "the pod's group");
    /// assert!(!workstation.is_own_group("orders-other-intercept"));
    ///
    /// assert!(Client::disabled().is_own_group("orders"));
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn is_own_group(&self, group: &str) -> bool {
        !self.is_workstation() || group::is_workstation_group(group, self.intercept_id())
    }

    /// The counters so far, shared by every clone.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), telepresence_kafka::Error> {
    /// use telepresence_kafka::{Client, HeaderList};
    ///
    /// let tp = Client::disabled();
    /// tp.should_consume(&HeaderList::default()).await?;
    /// assert_eq!(tp.stats().consumed, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        self.counters().snapshot()
    }

    fn counters(&self) -> &Counters {
        match &self.state {
            State::Disabled(disabled) => &disabled.counters,
            State::Enabled(api) => &api.counters,
        }
    }

    /// Whether this side should process `msg`.
    ///
    /// On the workstation: whether the intercept matches it. In the cluster:
    /// whether no intercept does. Disabled: `true` at once. When the API fails,
    /// the [`FailurePolicy`](crate::FailurePolicy) decides. By default the
    /// cluster answers `true` after the retries, and the workstation *holds*:
    /// the future retries until the API answers, so the message is neither
    /// processed nor skipped meanwhile (commit nothing for it until the call
    /// returns). Only [`FailurePolicy::Fail`](crate::FailurePolicy::Fail)
    /// returns the error.
    ///
    /// The future borrows only the client, not the message. An answer known
    /// without asking (a disabled client, a cache hit) is ready at once; a
    /// disabled client's costs no allocation. With the `metrics` feature, an
    /// enabled client's first decision about a topic registers the topic's
    /// metrics (see the `metrics` module).
    pub fn should_consume<M: KafkaMessage + ?Sized>(&self, msg: &M) -> ShouldConsume<'_> {
        let api = match &self.state {
            State::Disabled(disabled) => {
                disabled.counters.decided(true);
                return ShouldConsume::ready(true);
            }
            State::Enabled(api) => api,
        };
        match api.plan_decision(msg) {
            Plan::Known(answer) => {
                api.counters.decided(answer);
                api.metrics.known(msg, answer);
                ShouldConsume::ready(answer)
            }
            Plan::Ask(query) => {
                let recording = api.metrics.asking(msg);
                ShouldConsume::asking(api.decide(*query, recording))
            }
        }
    }

    /// The routing context of `msg`, to put on the records and requests its
    /// handling produces: the first value of each header declared with
    /// [`ClientBuilder::routing_headers`] (or the decision cache's), and the
    /// baggage headers when the client reads [`Baggage`](crate::Baggage).
    /// See [`RoutingHeaders`].
    ///
    /// The same with or without Telepresence (no I/O, nothing allocated
    /// for a few headers): production code passes the context on as the
    /// workstation does.
    ///
    /// ```
    /// use telepresence_kafka::{Baggage, Client, HeaderList};
    ///
    /// let tp = Client::builder()
    ///     .routing_headers(["x-dev"])
    ///     .baggage(Baggage::members(["x-dev"]))
    ///     .build()?;
    /// assert!(!tp.is_enabled(), "no API: production");
    /// let headers: &[(&str, Option<&[u8]>)] = &[
    ///     ("baggage", Some(b"x-dev=alice,tenant=acme")),
    ///     ("content-type", Some(b"json")),
    /// ];
    /// let message = HeaderList::new(headers);
    /// let routing = tp.routing_headers(&message);
    /// assert_eq!(routing.iter().collect::<Vec<_>>(), [("baggage", &b"x-dev=alice,tenant=acme"[..])]);
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn routing_headers<'m, M: KafkaMessage + ?Sized>(&self, msg: &'m M) -> RoutingHeaders<'m> {
        let propagation = match &self.state {
            State::Disabled(disabled) => &disabled.propagation,
            State::Enabled(api) => &api.propagation,
        };
        propagation.collect(msg)
    }

    /// What `/intercept-info` says about `msg`: whether it is intercepted, by
    /// which side's API, and the intercept's metadata.
    ///
    /// Errors are returned as they are (the failure policy is for decisions);
    /// a disabled client gives [`ErrorKind::NotConfigured`].
    pub fn intercept_info<M: KafkaMessage + ?Sized>(
        &self,
        msg: &M,
    ) -> impl Future<Output = Result<InterceptInfo, Error>> + Send + '_ {
        let asked = self.enabled().map(|api| (api, api.info_query(msg)));
        async move {
            let (api, query) = asked?;
            api.intercept_info(query).await
        }
    }

    /// Checks that the API answers `/healthz` with a success status; a
    /// disabled client gives [`ErrorKind::NotConfigured`].
    pub async fn healthz(&self) -> Result<(), Error> {
        self.enabled()?.healthz().await
    }

    /// Checks that the API serves this side: a workstation's API with no
    /// intercept ID would leave every message to the pod (which leaves the
    /// intercepted ones to the workstation), and the pod's API with an
    /// intercept ID would process the pod's share twice. Either is an
    /// [`ErrorKind::Config`] error that names the fix.
    ///
    /// The first decision makes this check (unless
    /// [`side_check(false)`](ClientBuilder::side_check)) and refuses to decide
    /// on a mismatch, whatever the failure policy; call it at start to stop
    /// before subscribing. One `/intercept-info` request, made once: the
    /// answer is kept. Nothing to check on a disabled client; Telepresence
    /// 2.4, which has no `/intercept-info`, passes. An API that cannot answer
    /// returns its error here, and the check is made again next time.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), telepresence_kafka::Error> {
    /// let tp = telepresence_kafka::Client::from_env()?;
    /// tp.check_side().await?; // before the consumer subscribes
    /// # Ok(()) }
    /// ```
    pub async fn check_side(&self) -> Result<(), Error> {
        match &self.state {
            State::Disabled(_) => Ok(()),
            State::Enabled(api) => api.check_side().await,
        }
    }

    /// The enabled state, or the error of a call that needs an API.
    fn enabled(&self) -> Result<&Enabled, Error> {
        match &self.state {
            State::Enabled(api) => Ok(api),
            State::Disabled(_) => Err(Error::new(
                ErrorKind::NotConfigured,
                format!(
                    "not running under Telepresence ({} is unset, empty or 0)",
                    env::API_PORT_ENV
                ),
            )),
        }
    }

    /// Whether a workstation may read in a group that is not its own.
    #[cfg(feature = "rdkafka")]
    pub(crate) fn allows_shared_group(&self) -> bool {
        match &self.state {
            State::Disabled(_) => false,
            State::Enabled(api) => api.allow_shared_group,
        }
    }

    /// Whether decisions are being held now: the API is failing and the
    /// policy waits for it on this side.
    #[cfg(feature = "rdkafka")]
    pub(crate) fn holds_decisions(&self) -> bool {
        match &self.state {
            State::Disabled(_) => false,
            State::Enabled(api) => api.holds_decisions(),
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api_url().map(Url::as_str))
            .field("intercept_id", &self.intercept_id())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_client_plans_nothing_and_needs_no_api() {
        let tp = Client::disabled();
        assert!(!tp.is_enabled());
        assert_eq!(tp.api_url(), None);
        assert!(matches!(tp.enabled(), Err(e) if e.kind() == ErrorKind::NotConfigured));
        #[cfg(feature = "rdkafka")]
        {
            assert!(!tp.holds_decisions());
            assert!(!tp.allows_shared_group());
        }
    }

    #[test]
    fn the_client_is_cheap_to_clone_and_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Client>();
        let tp = Client::builder().api_url("http://h:1").build().unwrap();
        let clone = tp.clone();
        match (&tp.state, &clone.state) {
            (State::Enabled(a), State::Enabled(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("both enabled"),
        }
    }
}
