//! The async client and its builder.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use smallvec::SmallVec;
use tracing::Instrument;

use crate::cache::{DEFAULT_CACHE_CAPACITY, DecisionCache};
use crate::env::{self, EnvSettings};
use crate::error::{Error, ErrorKind};
use crate::headers::{Forwarded, HeaderForwarding};
use crate::message::{KafkaMessage, MessageView};
use crate::policy::{
    FailurePolicy, OUTAGE_QUIET, OUTAGE_REMINDER, OnFailure, OutageMonitor, Outcome,
};
use crate::stats::{Counters, Stats};
use crate::wire::{self, InterceptInfo};
use crate::{CALLER_INTERCEPT_ID_HEADER, group};

/// Default bound on a whole call, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on opening one connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default number of retries after a connection error.
pub const DEFAULT_RETRIES: u32 = 3;
/// Default wait before the first retry; it doubles each time, up to 1 s.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// Default longest wait between two attempts of a held decision.
pub const DEFAULT_HOLD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The wait before a held decision's second attempt; it doubles each time.
const HOLD_BACKOFF_START: Duration = Duration::from_millis(50);

/// Headers gathered on the stack for typical messages.
type HeaderPairs<'m> = SmallVec<[(&'m str, Option<&'m [u8]>); 16]>;

/// Where the `path` parameter of a query comes from.
///
/// A message's own [`KafkaMessage::path`] takes precedence over all of these.
#[derive(Clone, Default)]
pub enum PathSource {
    /// No path (the server sees an empty path).
    #[default]
    None,
    /// The same path for every message.
    Fixed(String),
    /// The message's topic.
    Topic,
    /// The first value of this message header (read as UTF-8, lossily).
    Header(String),
    /// Computed from the message.
    Custom(PathFn),
}

/// A function that computes a message's path.
pub type PathFn = Arc<dyn Fn(&MessageView<'_>) -> Option<String> + Send + Sync>;

impl fmt::Debug for PathSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            Self::Topic => f.write_str("Topic"),
            Self::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PathSource {
    fn resolve<'m>(&'m self, view: &MessageView<'m>) -> Option<Cow<'m, str>> {
        match self {
            Self::None => None,
            Self::Fixed(path) => Some(Cow::Borrowed(path)),
            Self::Topic => view.topic().map(Cow::Borrowed),
            Self::Header(name) => view.header(name).map(String::from_utf8_lossy),
            Self::Custom(f) => f(view).map(Cow::Owned),
        }
    }
}

/// Which endpoint a query goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    ConsumeHere,
    InterceptInfo,
}

/// Asks the Telepresence API whether this side should process a message.
///
/// Cheap to clone (clones share connections, cache and counters) and
/// `Send + Sync`. When Telepresence is absent the client is *disabled*:
/// [`should_consume`](Self::should_consume) answers `true` at once, with no
/// I/O and no allocation.
///
/// ```
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
    shared: Arc<Shared>,
}

struct Shared {
    /// `None`: not under Telepresence.
    api: Option<Api>,
    intercept_id: String,
    counters: Counters,
}

struct Api {
    http: reqwest::Client,
    base: Url,
    consume_here: Url,
    intercept_info: Url,
    healthz: Url,
    caller: HeaderValue,
    container_port: Option<u16>,
    path: PathSource,
    forwarding: HeaderForwarding,
    cache: Option<DecisionCache>,
    policy: FailurePolicy,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    hold_backoff_max: Duration,
    outages: OutageMonitor,
    /// Whether to check, before the first decision, that the API is this
    /// side's.
    side_check: bool,
    /// Whether a workstation may read in a group that is not its own.
    allow_shared_group: bool,
    /// What the check found, once it found something.
    side: tokio::sync::OnceCell<SideVerdict>,
}

/// What the API says about which side it serves, against this client's own
/// idea of its side.
#[derive(Debug)]
enum SideVerdict {
    Agrees,
    /// The API cannot tell (Telepresence 2.4 has no `/intercept-info`).
    Unknown,
    /// The refusal, to give every decision.
    Mismatch(String),
}

/// The future of [`Client::should_consume`]: ready at once when no query is
/// needed, a query in flight otherwise.
#[must_use = "a decision does nothing unless awaited"]
pub struct ShouldConsume<'a> {
    state: DecisionState<'a>,
}

enum DecisionState<'a> {
    Ready(Option<bool>),
    /// Boxed, so that the ready case stays a few bytes to create and move.
    Asking(Pin<Box<dyn Future<Output = Result<bool, Error>> + Send + 'a>>),
}

impl Future for ShouldConsume<'_> {
    type Output = Result<bool, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            DecisionState::Ready(answer) => Poll::Ready(Ok(answer
                .take()
                .expect("a decision is polled once it is ready"))),
            DecisionState::Asking(query) => query.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ShouldConsume<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            DecisionState::Ready(answer) => {
                f.debug_tuple("ShouldConsume::Ready").field(answer).finish()
            }
            DecisionState::Asking(_) => f.write_str("ShouldConsume::Asking"),
        }
    }
}

/// A query ready to send, or an answer known without asking.
enum Plan {
    Known(bool),
    Ask(Box<Query>),
}

struct Query {
    url: Url,
    headers: HeaderMap,
    cache_key: Option<Vec<u8>>,
    dropped: usize,
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
    /// Telepresence is absent.
    pub fn disabled() -> Self {
        Self {
            shared: Arc::new(Shared {
                api: None,
                intercept_id: String::new(),
                counters: Counters::default(),
            }),
        }
    }

    /// Whether there is an API to ask.
    pub fn is_enabled(&self) -> bool {
        self.shared.api.is_some()
    }

    /// The intercept ID (empty in the cluster).
    pub fn intercept_id(&self) -> &str {
        &self.shared.intercept_id
    }

    /// Whether this is a workstation: it has an intercept ID.
    pub fn is_workstation(&self) -> bool {
        !self.shared.intercept_id.is_empty()
    }

    /// The API's base URL, when enabled.
    pub fn api_url(&self) -> Option<&Url> {
        self.shared.api.as_ref().map(|api| &api.base)
    }

    /// The consumer group to join: `base` in the cluster, `base-<intercept id>`
    /// on a workstation (the ID reduced to `[A-Za-z0-9._-]`).
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
        group::group_id(base, &self.shared.intercept_id)
    }

    /// The counters so far, shared by every clone.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Whether this side should process `msg`.
    ///
    /// On the workstation: whether the intercept matches it. In the cluster:
    /// whether no intercept does. Disabled: `true` at once. When the API fails,
    /// the [`FailurePolicy`] decides. By default the cluster answers `true`
    /// after the retries, and the workstation *holds*: the future retries
    /// until the API answers, so the message is neither processed nor skipped
    /// meanwhile (commit nothing for it until the call returns). Only
    /// [`FailurePolicy::Fail`] returns the error.
    ///
    /// The future borrows only the client, not the message. An answer known
    /// without asking (a disabled client, a cache hit) is ready at once and
    /// costs no allocation.
    pub fn should_consume<M: KafkaMessage + ?Sized>(&self, msg: &M) -> ShouldConsume<'_> {
        match (self.plan(Endpoint::ConsumeHere, msg), &self.shared.api) {
            (Plan::Ask(query), Some(api)) => ShouldConsume {
                state: DecisionState::Asking(Box::pin(self.consume_here(api, *query))),
            },
            (Plan::Known(answer), _) => {
                self.shared.counters.decided(answer);
                ShouldConsume {
                    state: DecisionState::Ready(Some(answer)),
                }
            }
            (Plan::Ask(_), None) => unreachable!("only an enabled client plans a query"),
        }
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
        let plan = self.plan(Endpoint::InterceptInfo, msg);
        async move {
            let api = self.api()?;
            let Plan::Ask(query) = plan else {
                unreachable!("intercept-info is never cached")
            };
            let Query {
                url,
                headers,
                dropped,
                ..
            } = *query;
            Counters::add(&self.shared.counters.dropped_headers, dropped as u64);
            let (status, body) = self.send(api, &url, &headers).await.inspect_err(|_| {
                Counters::add(&self.shared.counters.errors, 1);
            })?;
            wire::intercept_info(status, &body).inspect_err(|_| {
                Counters::add(&self.shared.counters.errors, 1);
            })
        }
    }

    /// Checks that the API answers `/healthz` with a success status.
    pub async fn healthz(&self) -> Result<(), Error> {
        let api = self.api()?;
        let (status, body) = self.send(api, &api.healthz, &HeaderMap::new()).await?;
        wire::check_status(status, &body)
    }

    fn api(&self) -> Result<&Api, Error> {
        self.shared.api.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::NotConfigured,
                format!(
                    "not running under Telepresence ({} is unset, empty or 0)",
                    env::API_PORT_ENV
                ),
            )
        })
    }

    /// Everything that needs the message, done before the first await.
    fn plan<M: KafkaMessage + ?Sized>(&self, endpoint: Endpoint, msg: &M) -> Plan {
        let Some(api) = &self.shared.api else {
            return Plan::Known(true);
        };
        let pairs: HeaderPairs<'_> = msg.headers().collect();
        let view = MessageView {
            topic: msg.topic(),
            headers: &pairs,
        };
        let path = match msg.path() {
            Some(path) => Some(Cow::Borrowed(path)),
            None => api.path.resolve(&view),
        };
        let cache_key = match (&api.cache, endpoint) {
            (Some(cache), Endpoint::ConsumeHere) => {
                let key = cache.key(path.as_deref(), &pairs);
                if let Some(answer) = cache.get(&key) {
                    Counters::add(&self.shared.counters.cache_hits, 1);
                    return Plan::Known(answer);
                }
                Some(key)
            }
            _ => None,
        };
        let mut url = match endpoint {
            Endpoint::ConsumeHere => api.consume_here.clone(),
            Endpoint::InterceptInfo => api.intercept_info.clone(),
        };
        let path = path.filter(|p| !p.is_empty());
        if path.is_some() || api.container_port.is_some() {
            let mut query = form_urlencoded::Serializer::new(String::with_capacity(64));
            if let Some(path) = &path {
                query.append_pair("path", path);
            }
            if let Some(port) = api.container_port {
                query.append_pair("containerPort", &port.to_string());
            }
            url.set_query(Some(&query.finish()));
        }
        let mut forwarded = Forwarded {
            headers: HeaderMap::with_capacity(pairs.len() + 1),
            dropped: 0,
        };
        forwarded
            .headers
            .insert(CALLER_INTERCEPT_ID_HEADER, api.caller.clone());
        api.forwarding
            .forward_into(pairs.iter().copied(), &mut forwarded);
        Plan::Ask(Box::new(Query {
            url,
            headers: forwarded.headers,
            cache_key,
            dropped: forwarded.dropped,
        }))
    }

    /// Whether a workstation may read in a group that is not its own.
    pub(crate) fn allows_shared_group(&self) -> bool {
        self.shared
            .api
            .as_ref()
            .is_some_and(|api| api.allow_shared_group)
    }

    /// Whether decisions are being held now: the API is failing and the
    /// policy waits for it on this side.
    pub(crate) fn holds_decisions(&self) -> bool {
        self.shared.api.as_ref().is_some_and(|api| {
            api.policy.on_failure(self.is_workstation()) == OnFailure::Hold
                && api.outages.is_failing()
        })
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
        match &self.shared.api {
            Some(api) => self.side_verdict(api).await,
            None => Ok(()),
        }
    }

    async fn side_verdict(&self, api: &Api) -> Result<(), Error> {
        let verdict = api
            .side
            .get_or_try_init(|| async {
                let mut headers = HeaderMap::with_capacity(1);
                headers.insert(CALLER_INTERCEPT_ID_HEADER, api.caller.clone());
                let (status, body) = self.send(api, &api.intercept_info, &headers).await?;
                if status == 404 {
                    return Ok(SideVerdict::Unknown);
                }
                let info = wire::intercept_info(status, &body)?;
                Ok::<_, Error>(side_verdict(api, info.client_side, self.intercept_id()))
            })
            .await?;
        match verdict {
            SideVerdict::Mismatch(message) => Err(Error::config(message.clone())),
            SideVerdict::Agrees | SideVerdict::Unknown => Ok(()),
        }
    }

    /// The check of [`check_side`](Self::check_side) before a decision: only a
    /// mismatch stops it; an API that fails leaves the decision to meet the
    /// failure itself, under the failure policy.
    async fn check_side_before_deciding(&self, api: &Api) -> Result<(), Error> {
        if !api.side_check {
            return Ok(());
        }
        match self.side_verdict(api).await {
            Err(error) if error.kind() == ErrorKind::Config => Err(error),
            _ => Ok(()),
        }
    }

    async fn consume_here(&self, api: &Api, query: Query) -> Result<bool, Error> {
        let counters = &self.shared.counters;
        if let Err(error) = self.check_side_before_deciding(api).await {
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
                let (status, body) = self.send(api, &url, &headers).await?;
                wire::consume_here(status, &body)
            }
            .instrument(span.clone())
            .await;
            let error = match result {
                Ok(answer) => {
                    if api.outages.answered() {
                        Counters::add(&counters.outages, 1);
                    }
                    if let (Some(cache), Some(key)) = (&api.cache, cache_key) {
                        cache.insert(key, answer);
                    }
                    span.record("answer", answer);
                    counters.decided(answer);
                    return Ok(answer);
                }
                Err(error) => error,
            };
            Counters::add(&counters.errors, 1);
            match api.policy.on_failure(self.is_workstation()) {
                OnFailure::Answer(answer) => {
                    api.outages.failed(&error, Outcome::FellBack(answer));
                    Counters::add(&counters.fallbacks, 1);
                    span.record("fallback", true);
                    span.record("answer", answer);
                    counters.decided(answer);
                    return Ok(answer);
                }
                OnFailure::Error => {
                    api.outages.failed(&error, Outcome::Returned);
                    return Err(error);
                }
                OnFailure::Hold => {
                    api.outages.failed(&error, Outcome::Held { first: !held });
                    if !held {
                        held = true;
                        Counters::add(&counters.held, 1);
                        span.record("held", true);
                    }
                    tracing::debug!(%error, wait = ?backoff, "holding the decision");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(api.hold_backoff_max);
                }
            }
        }
    }

    /// Sends a GET, retrying connection errors, within the call's timeout.
    async fn send(&self, api: &Api, url: &Url, headers: &HeaderMap) -> Result<(u16, Bytes), Error> {
        let counters = &self.shared.counters;
        let attempts = async {
            let mut request = reqwest::Request::new(Method::GET, url.clone());
            *request.headers_mut() = headers.clone();
            let mut retry = 0;
            loop {
                let next = (retry < api.retries).then(|| request.try_clone()).flatten();
                Counters::add(&counters.requests, 1);
                match api.http.execute(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response
                            .bytes()
                            .await
                            .map_err(|e| transport_error(url, &e))?;
                        return Ok((status, body));
                    }
                    Err(error) if is_retryable(&error) && next.is_some() => {
                        tracing::debug!(%error, retry, "retrying the Telepresence API");
                        Counters::add(&counters.retries, 1);
                        let wait = api.backoff.saturating_mul(1 << retry.min(10));
                        tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                        retry += 1;
                        request = next.expect("checked above");
                    }
                    Err(error) => return Err(transport_error(url, &error)),
                }
            }
        };
        match tokio::time::timeout(api.timeout, attempts).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no answer from {url} within {:?}", api.timeout),
            )),
        }
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api", &self.api_url().map(Url::as_str))
            .field("intercept_id", &self.shared.intercept_id)
            .finish_non_exhaustive()
    }
}

fn side_verdict(api: &Api, client_side: bool, intercept_id: &str) -> SideVerdict {
    match (client_side, intercept_id.is_empty()) {
        (true, true) => SideVerdict::Mismatch(format!(
            "the Telepresence API at {} is a workstation's (it answers clientSide: true), but this \
             process has no {}: it would leave every message to the pod, which leaves the \
             intercepted ones to the workstation, so they would be processed by nobody. Set {} \
             to the intercept's ID (`telepresence list` shows it) and start again",
            api.base,
            env::INTERCEPT_ID_ENV,
            env::INTERCEPT_ID_ENV
        )),
        (false, false) => SideVerdict::Mismatch(format!(
            "the Telepresence API at {} is the pod's traffic-agent (it answers clientSide: false), \
             but this process has the intercept ID {intercept_id:?}: it would process the pod's \
             share too. On a workstation, point {} (and {}) at the workstation's API; in the pod, \
             leave {} unset",
            api.base,
            env::API_PORT_ENV,
            env::API_HOST_ENV,
            env::INTERCEPT_ID_ENV
        )),
        _ => SideVerdict::Agrees,
    }
}

/// The queries are idempotent, so any failure to get an answer over a
/// connection may be retried; a timeout is not (the whole call is bounded).
fn is_retryable(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_request()
}

/// The message names the URL, then the causes of `error`: not `error`'s own
/// text, which would repeat the URL.
fn transport_error(url: &Url, error: &reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connect
    };
    let context = format_args!("cannot reach the Telepresence API at {url}");
    match std::error::Error::source(error) {
        Some(cause) => Error::caused(kind, context, cause),
        None => Error::new(kind, context.to_string()),
    }
}

/// Where the API is, before it is checked.
#[derive(Clone, Debug, Default)]
enum Target {
    #[default]
    Unset,
    Disabled,
    Url(String),
    HostPort(String, u16),
    Resolved(Url),
}

/// Configures a [`Client`]. Start from [`Client::builder`] or
/// [`ClientBuilder::from_env`].
///
/// ```
/// use std::time::Duration;
/// use telepresence_kafka::{Client, FailurePolicy};
///
/// let tp = Client::builder()
///     .api_url("http://localhost:9980")
///     .intercept_id("4b1658c3:orders")
///     .container_port(8080)
///     .path_from_topic()
///     .timeout(Duration::from_millis(500))
///     .failure_policy(FailurePolicy::Fail)
///     .deny_headers(["authorization"])
///     .build()?;
/// assert!(tp.is_enabled());
/// # Ok::<(), telepresence_kafka::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ClientBuilder {
    target: Target,
    intercept_id: String,
    container_port: Option<u16>,
    path: PathSource,
    connect_timeout: Duration,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    hold_backoff_max: Duration,
    side_check: bool,
    allow_shared_group: bool,
    policy: FailurePolicy,
    forwarding: HeaderForwarding,
    cache: Option<(Duration, Vec<String>)>,
    cache_capacity: usize,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            target: Target::Unset,
            intercept_id: String::new(),
            container_port: None,
            path: PathSource::None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            retries: DEFAULT_RETRIES,
            backoff: DEFAULT_RETRY_BACKOFF,
            hold_backoff_max: DEFAULT_HOLD_BACKOFF_MAX,
            side_check: true,
            allow_shared_group: false,
            policy: FailurePolicy::Auto,
            forwarding: HeaderForwarding::default(),
            cache: None,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
        }
    }
}

impl ClientBuilder {
    /// A builder holding what the process environment says (see
    /// [`Client::from_env`]); the other settings can then be changed.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_env_vars(|name| std::env::var_os(name))
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, Error> {
        let EnvSettings {
            api,
            intercept_id,
            container_port,
        } = env::read(lookup)?;
        if api.is_none() && !intercept_id.is_empty() {
            // Within the spec (no port: not under Telepresence), but rarely meant.
            tracing::warn!(
                intercept_id = %intercept_id,
                "{} is set but {} is not: Telepresence's API is not enabled for this intercept, \
                 so this process processes every message, as the pod does. Enable the API \
                 (telepresenceAPI.port in Telepresence's config.yml) to split the topic",
                env::INTERCEPT_ID_ENV,
                env::API_PORT_ENV
            );
        }
        Ok(Self {
            target: api.map_or(Target::Disabled, Target::Resolved),
            intercept_id,
            container_port,
            ..Self::default()
        })
    }

    /// The API's base URL, e.g. `http://localhost:9980`.
    pub fn api_url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Url(url.into());
        self
    }

    /// The API's host and port (port 0: disabled). The host may be a name or
    /// an IP address; empty means `localhost`.
    pub fn host_port(mut self, host: impl Into<String>, port: u16) -> Self {
        self.target = if port == 0 {
            Target::Disabled
        } else {
            Target::HostPort(host.into(), port)
        };
        self
    }

    /// No API: a disabled client.
    pub fn disabled(mut self) -> Self {
        self.target = Target::Disabled;
        self
    }

    /// The intercept ID sent as `x-telepresence-caller-intercept-id` (empty:
    /// the cluster side).
    pub fn intercept_id(mut self, id: impl Into<String>) -> Self {
        self.intercept_id = id.into();
        self
    }

    /// Sends `containerPort` with every query; needed when the workload has
    /// several ports: without it the pod's API looks only at the workload's
    /// first port (Telepresence 2.25 and later) or at none (older releases).
    pub fn container_port(mut self, port: u16) -> Self {
        self.container_port = (port != 0).then_some(port);
        self
    }

    /// Where the `path` parameter comes from.
    pub fn path(mut self, source: PathSource) -> Self {
        self.path = source;
        self
    }

    /// The same path for every message.
    pub fn fixed_path(self, path: impl Into<String>) -> Self {
        self.path(PathSource::Fixed(path.into()))
    }

    /// The message's topic as the path.
    pub fn path_from_topic(self) -> Self {
        self.path(PathSource::Topic)
    }

    /// The first value of this header as the path.
    pub fn path_from_header(self, name: impl Into<String>) -> Self {
        self.path(PathSource::Header(name.into()))
    }

    /// A path computed from each message.
    pub fn path_with<F>(self, f: F) -> Self
    where
        F: Fn(&MessageView<'_>) -> Option<String> + Send + Sync + 'static,
    {
        self.path(PathSource::Custom(Arc::new(f)))
    }

    /// Bound on opening one connection (default 500 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Bound on a whole call, retries included (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries after a connection error (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Wait before the first retry (default 25 ms); doubles each time, up to 1 s.
    pub fn retry_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// What a decision becomes when the API fails (default
    /// [`FailurePolicy::Auto`]: hold on a workstation, process in the cluster).
    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Whether to check, before the first decision, that the API serves this
    /// side (default on): a workstation's API with no intercept ID, or the
    /// pod's with one, is refused with an [`ErrorKind::Config`] error naming
    /// the fix, instead of losing or repeating messages. The check costs one
    /// `/intercept-info` request per client.
    pub fn side_check(mut self, check: bool) -> Self {
        self.side_check = check;
        self
    }

    /// Lets a workstation's consumer read in a group that is not its own
    /// (default off: the stream adapter refuses it, see
    /// [`Client::check_group`](crate::Client::check_group)). For a group you
    /// know no pod reads in.
    pub fn allow_shared_group(mut self, allow: bool) -> Self {
        self.allow_shared_group = allow;
        self
    }

    /// The longest wait between two attempts of a held decision (default
    /// 5 s); the wait starts at 50 ms and doubles up to it.
    pub fn hold_backoff_max(mut self, max: Duration) -> Self {
        self.hold_backoff_max = max;
        self
    }

    /// The header forwarding rules, whole.
    pub fn header_forwarding(mut self, rules: HeaderForwarding) -> Self {
        self.forwarding = rules;
        self
    }

    /// Forwards only these headers (case-insensitive).
    pub fn allow_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.forwarding = self.forwarding.allow(names);
        self
    }

    /// Never forwards these headers (case-insensitive).
    pub fn deny_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.forwarding = self.forwarding.deny(names);
        self
    }

    /// Forwards at most this many bytes of header names and values.
    pub fn max_header_bytes(mut self, max: usize) -> Self {
        self.forwarding = self.forwarding.max_bytes(max);
        self
    }

    /// Forwards at most this many headers (default 1024).
    pub fn max_forwarded_headers(mut self, max: usize) -> Self {
        self.forwarding = self.forwarding.max_count(max);
        self
    }

    /// Caches `/consume-here` answers for `ttl`, keyed by the path and the
    /// first values of `routing_headers`; only those headers are then
    /// forwarded. Off by default. Pick a TTL shorter than the time you would
    /// accept old answers after an intercept starts or ends.
    pub fn decision_cache<I, S>(mut self, ttl: Duration, routing_headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = routing_headers
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase())
            .collect();
        self.cache = Some((ttl, names));
        self
    }

    /// How many answers the cache holds (default 10 000).
    pub fn decision_cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Checks the settings and builds the client.
    pub fn build(self) -> Result<Client, Error> {
        env::validate_intercept_id(&self.intercept_id).map_err(|reason| {
            Error::config(format!("intercept ID {:?}: {reason}", self.intercept_id))
        })?;
        self.forwarding.validate().map_err(Error::config)?;
        let base = match self.target {
            Target::Unset | Target::Disabled => None,
            Target::Resolved(url) => Some(url),
            Target::HostPort(host, port) => Some(
                env::api_url(&host, port)
                    .map_err(|reason| Error::config(format!("API host {host:?}: {reason}")))?,
            ),
            Target::Url(url) => Some(parse_api_url(&url)?),
        };
        let Some(base) = base else {
            return Ok(Client {
                shared: Arc::new(Shared {
                    api: None,
                    intercept_id: self.intercept_id,
                    counters: Counters::default(),
                }),
            });
        };
        let cache = match self.cache {
            None => None,
            Some((ttl, routing)) => {
                let forwarding = HeaderForwarding::default().allow(&routing);
                forwarding
                    .validate()
                    .map_err(|e| Error::config(format!("decision cache routing headers: {e}")))?;
                Some(DecisionCache::new(ttl, self.cache_capacity, routing))
            }
        };
        // With a cache, only the routing headers may reach the server, or the
        // answer could depend on something the key leaves out.
        let forwarding = match &cache {
            None => self.forwarding,
            Some(cache) => {
                let allowed = cache.routing_headers().iter().filter(|name| {
                    self.forwarding
                        .allowed()
                        .is_none_or(|list| list.contains(name))
                });
                self.forwarding.clone().allow(allowed)
            }
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::caused(ErrorKind::Config, "cannot build the HTTP client", &e))?;
        let join = |path: &str| base.join(path).expect("a relative path joins any base URL");
        let outages = OutageMonitor::new(base.as_str(), OUTAGE_REMINDER, OUTAGE_QUIET);
        let api = Api {
            http,
            consume_here: join("consume-here"),
            intercept_info: join("intercept-info"),
            healthz: join("healthz"),
            base,
            caller: HeaderValue::from_str(&self.intercept_id).expect("validated above"),
            container_port: self.container_port,
            path: self.path,
            forwarding,
            cache,
            policy: self.policy,
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
            hold_backoff_max: self.hold_backoff_max.max(Duration::from_millis(1)),
            outages,
            side_check: self.side_check,
            allow_shared_group: self.allow_shared_group,
            side: tokio::sync::OnceCell::new(),
        };
        Ok(Client {
            shared: Arc::new(Shared {
                api: Some(api),
                intercept_id: self.intercept_id,
                counters: Counters::default(),
            }),
        })
    }

    /// Builds a [`blocking::Client`](crate::blocking::Client).
    #[cfg(feature = "blocking")]
    pub fn build_blocking(self) -> Result<crate::blocking::Client, Error> {
        crate::blocking::Client::new(self.build()?)
    }
}

/// `http://host:port` with an optional trailing slash or base path.
fn parse_api_url(text: &str) -> Result<Url, Error> {
    let bad = |reason: &str| Error::config(format!("API URL {text:?}: {reason}"));
    let mut url = Url::parse(text).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" {
        return Err(bad(
            "only http:// is supported (the Telepresence API has no TLS)",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_api_url("http://localhost:9980").unwrap().as_str(),
            "http://localhost:9980/"
        );
        assert_eq!(
            parse_api_url("http://h:1/base").unwrap().as_str(),
            "http://h:1/base/"
        );
        for (text, reason) in [
            ("localhost:9980", "only http://"),
            ("https://h:1", "only http://"),
            ("http://h:1/?x=1", "no query"),
            ("nonsense", "relative URL without a base"),
        ] {
            let err = parse_api_url(text).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Config);
            assert!(err.to_string().contains(reason), "{text}: {err}");
            assert!(
                err.to_string().starts_with(&format!("API URL {text:?}")),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_builder_values_are_config_errors_naming_them() {
        let err = Client::builder().intercept_id("a\rb").build().unwrap_err();
        assert!(
            err.to_string().starts_with("intercept ID \"a\\rb\""),
            "{err}"
        );
        let err = Client::builder()
            .allow_headers(["x y"])
            .build()
            .unwrap_err();
        assert!(err.to_string().contains("`x y`"), "{err}");
        let err = Client::builder().host_port("a b", 1).build().unwrap_err();
        assert!(err.to_string().starts_with("API host \"a b\""), "{err}");
        let err = Client::builder()
            .api_url("http://h:1")
            .decision_cache(Duration::from_secs(1), ["bad name"])
            .build()
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("decision cache routing headers"),
            "{err}"
        );
    }

    #[test]
    fn without_an_api_the_client_is_disabled() {
        assert!(!Client::builder().build().unwrap().is_enabled());
        assert!(
            !Client::builder()
                .host_port("h", 0)
                .build()
                .unwrap()
                .is_enabled()
        );
        assert!(!Client::disabled().is_enabled());
        let env = ClientBuilder::from_env_vars(|_| None)
            .unwrap()
            .build()
            .unwrap();
        assert!(!env.is_enabled());
    }

    #[test]
    fn paths_come_from_the_configured_source() {
        let headers: &[(&str, Option<&[u8]>)] = &[("x-path", Some(b"/h")), ("x-path", Some(b"/2"))];
        let view = MessageView {
            topic: Some("orders"),
            headers,
        };
        let resolve = |source: PathSource| source.resolve(&view).map(Cow::into_owned);
        assert_eq!(resolve(PathSource::None), None);
        assert_eq!(resolve(PathSource::Fixed("/f".into())), Some("/f".into()));
        assert_eq!(resolve(PathSource::Topic), Some("orders".into()));
        assert_eq!(
            resolve(PathSource::Header("X-Path".into())),
            Some("/h".into())
        );
        assert_eq!(resolve(PathSource::Header("missing".into())), None);
        let custom = PathSource::Custom(Arc::new(|v: &MessageView<'_>| {
            v.topic().map(|t| format!("/{t}"))
        }));
        assert_eq!(resolve(custom), Some("/orders".into()));
    }

    #[test]
    fn the_client_is_cheap_to_clone_and_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Client>();
    }
}
