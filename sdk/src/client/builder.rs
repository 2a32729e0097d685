//! The builder, and the API's address as the user gives it.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use url::Url;

use super::enabled::Enabled;
use super::path::PathSource;
use super::transport::Transport;
use super::{Client, State};
use crate::baggage::Baggage;
use crate::cache::{DEFAULT_CACHE_CAPACITY, DecisionCache};
use crate::env::{self, EnvSettings};
use crate::error::Error;
use crate::headers::HeaderForwarding;
use crate::message::MessageView;
use crate::metrics::DecisionMetrics;
use crate::policy::{FailurePolicy, OUTAGE_QUIET, OUTAGE_REMINDER, OutageMonitor};
use crate::routing::Propagation;
use crate::stats::Counters;
use telepresence_api::endpoint;

/// Default bound on a whole call, retries included.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default bound on opening one connection.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Default number of retries after a connection error.
const DEFAULT_RETRIES: u32 = 3;
/// Default wait before the first retry; it doubles each time, up to 1 s.
const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(25);
/// Default longest wait between two attempts of a held decision.
const DEFAULT_HOLD_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the API is, before it is checked.
#[derive(Clone, Debug, Default)]
enum Target {
    /// No API: a disabled client.
    #[default]
    Disabled,
    Url(String),
    HostPort(String, u16),
    Resolved(Url),
}

/// Configures a [`Client`]. Start from [`Client::builder`] or
/// [`ClientBuilder::from_env`].
///
/// Without an API address (none set, none in the environment, or port 0) it
/// builds a disabled client, as [`Client::disabled`] does.
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
    /// Lower case.
    routing: Vec<String>,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        Self {
            target: Target::Disabled,
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
            routing: Vec::new(),
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

    /// The API's base URL, e.g. `http://localhost:9980`: `http://`, a host
    /// and a port, and optionally a base path.
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
    /// pod's with one, is refused with an
    /// [`ErrorKind::Config`](crate::ErrorKind::Config) error naming the fix,
    /// instead of losing or repeating messages. The check costs one
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

    /// Forwards at most this many bytes of header names and values (default
    /// 32 KiB).
    pub fn max_header_bytes(mut self, max: usize) -> Self {
        self.forwarding = self.forwarding.max_bytes(max);
        self
    }

    /// Forwards at most this many headers (default 1024).
    pub fn max_forwarded_headers(mut self, max: usize) -> Self {
        self.forwarding = self.forwarding.max_count(max);
        self
    }

    /// Sends these members of each message's tracing baggage as headers
    /// named after them (default: none), so that an intercept's
    /// `--http-header x-dev=alice` matches a message carrying
    /// `baggage: x-dev=alice`. Members come from W3C `baggage`, Jaeger
    /// `uberctx-<key>` and OpenTracing `ot-baggage-<key>` headers; see
    /// [`Baggage`] for how they are read.
    ///
    /// They are sent after the message's own headers, so a real header of the
    /// same name wins (Telepresence reads the first occurrence), and the
    /// forwarding rules (lists, limits) apply to them as to real headers.
    /// Members that cannot be read are skipped and counted in
    /// [`Stats::malformed_baggage`](crate::Stats::malformed_baggage).
    ///
    /// **Set the same on both sides.** The pod and the workstation must ask
    /// with the same headers, or a message goes to both (only the
    /// workstation derives) or to neither (only the pod does): build both
    /// clients with the same code.
    ///
    /// ```
    /// use telepresence_kafka::{Baggage, Client};
    ///
    /// let tp = Client::builder()
    ///     .api_url("http://localhost:9980")
    ///     .baggage(Baggage::members(["x-dev"]))
    ///     .build()?;
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn baggage(mut self, baggage: Baggage) -> Self {
        self.forwarding = self.forwarding.baggage(baggage);
        self
    }

    /// Sends each message's record key as a header of this name (default:
    /// not sent), so that an intercept can filter on a key or a key prefix:
    /// `--http-header 'x-kafka-key=^tenant-42'`.
    ///
    /// Only a UTF-8 key is sent; another is skipped and counted in
    /// [`Stats::non_utf8_keys`](crate::Stats::non_utf8_keys), and its message
    /// decided as one without a key. The header comes after the message's
    /// own (a real header of that name wins) and before baggage members; the
    /// forwarding rules apply to it. As with [`baggage`](Self::baggage), set
    /// the same on both sides.
    ///
    /// ```
    /// use telepresence_kafka::Client;
    ///
    /// let tp = Client::builder()
    ///     .api_url("http://localhost:9980")
    ///     .key_as_header("x-kafka-key")
    ///     .build()?;
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn key_as_header(mut self, name: impl AsRef<str>) -> Self {
        self.forwarding = self.forwarding.key_as_header(name);
        self
    }

    /// Caches `/consume-here` answers for `ttl`, keyed by the path and the
    /// first values of `routing_headers`; only those headers are then
    /// forwarded. Off by default. Derived headers (baggage members, the
    /// record key) are routing headers like the others: list them to have
    /// them sent and keyed on. Pick a TTL shorter than the time you would
    /// accept old answers after an intercept starts or ends. The TTL is
    /// measured with the system's coarse monotonic clock, which is cheap
    /// enough to read on every hit: an answer lives `ttl` give or take one
    /// of its ticks (a few milliseconds on Linux).
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

    /// Declares the headers that carry a message's routing key, such as
    /// `x-dev`: [`Client::routing_headers`] passes them on to what handling
    /// the message produces, so that an intercept on the next service of a
    /// chain routes it the same way. Adds to earlier names. The decision
    /// cache's routing headers are declared too, and with
    /// [`baggage`](Self::baggage) the baggage headers are carried whole.
    ///
    /// It changes no decision: each hop still asks its own API. Names must be
    /// valid HTTP header names, or building the client fails.
    ///
    /// ```
    /// use telepresence_kafka::{Client, HeaderList};
    ///
    /// let tp = Client::builder().routing_headers(["x-dev"]).build()?;
    /// let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice"))];
    /// assert_eq!(tp.routing_headers(&HeaderList::new(headers)).get("x-dev"), Some(&b"alice"[..]));
    /// # Ok::<(), telepresence_kafka::Error>(())
    /// ```
    pub fn routing_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.routing
            .extend(names.into_iter().map(|n| n.as_ref().to_ascii_lowercase()));
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
        HeaderForwarding::default()
            .allow(&self.routing)
            .validate()
            .map_err(|e| Error::config(format!("routing headers: {e}")))?;
        let cached = self
            .cache
            .iter()
            .flat_map(|(_, names)| names.iter().cloned());
        let propagation = Propagation::new(
            self.routing.iter().cloned().chain(cached),
            self.forwarding.baggage_members().clone(),
        );
        let base = match self.target {
            Target::Disabled => None,
            Target::Resolved(url) => Some(url),
            Target::HostPort(host, port) => Some(
                env::api_url(&host, port)
                    .map_err(|reason| Error::config(format!("API host {host:?}: {reason}")))?,
            ),
            Target::Url(url) => Some(parse_api_url(&url)?),
        };
        let Some(base) = base else {
            return Ok(Client::disabled_as(self.intercept_id, propagation));
        };
        // With a cache, only the routing headers may reach the server, or the
        // answer could depend on something the key leaves out.
        let (forwarding, cache) = match self.cache {
            None => (self.forwarding, None),
            Some((ttl, routing)) => {
                HeaderForwarding::default()
                    .allow(&routing)
                    .validate()
                    .map_err(|e| Error::config(format!("decision cache routing headers: {e}")))?;
                let allowed = routing.iter().filter(|name| {
                    self.forwarding
                        .allowed()
                        .is_none_or(|list| list.contains(name))
                });
                let forwarding = self.forwarding.clone().allow(allowed);
                let keyed_on = forwarding
                    .first_sent(routing)
                    .expect("the allow-list is within the routing headers");
                let cache = DecisionCache::new(ttl, self.cache_capacity, keyed_on);
                (forwarding, Some(cache))
            }
        };
        forwarding.check_named_derived().map_err(|reason| {
            let why = if cache.is_some() {
                " (with a decision cache, only its routing headers are sent)"
            } else {
                ""
            };
            Error::config(format!("{reason}{why}"))
        })?;
        let transport = Transport::new(
            &base,
            self.connect_timeout,
            self.timeout,
            self.retries,
            self.backoff,
        )?;
        // Relative to the base, so that an API URL with a path keeps it.
        let join = |endpoint: &str| {
            base.join(endpoint.trim_start_matches('/'))
                .expect("a relative path joins any base URL")
        };
        let outages = OutageMonitor::new(base.as_str(), OUTAGE_REMINDER, OUTAGE_QUIET);
        let enabled = Enabled {
            consume_here: join(endpoint::CONSUME_HERE),
            intercept_info: join(endpoint::INTERCEPT_INFO),
            healthz: join(endpoint::HEALTHZ),
            base,
            caller: HeaderValue::from_str(&self.intercept_id).expect("validated above"),
            metrics: DecisionMetrics::new(!self.intercept_id.is_empty()),
            intercept_id: self.intercept_id,
            counters: Counters::default(),
            container_port: self.container_port,
            path: self.path,
            derives: forwarding.derives(),
            forwarding,
            cache,
            policy: self.policy,
            hold_backoff_max: self.hold_backoff_max.max(Duration::from_millis(1)),
            outages,
            transport,
            side_check: self.side_check,
            allow_shared_group: self.allow_shared_group,
            side: tokio::sync::OnceCell::new(),
            propagation,
        };
        Ok(Client {
            state: State::Enabled(Arc::new(enabled)),
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
    use crate::error::ErrorKind;

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
    fn without_an_api_the_builder_builds_a_disabled_client() {
        assert!(!Client::builder().build().unwrap().is_enabled());
        assert!(
            !Client::builder()
                .host_port("h", 0)
                .build()
                .unwrap()
                .is_enabled()
        );
        let env = ClientBuilder::from_env_vars(|_| None)
            .unwrap()
            .build()
            .unwrap();
        assert!(!env.is_enabled());
        let workstation = Client::builder().intercept_id("4b16:echo").build().unwrap();
        assert!(!workstation.is_enabled());
        assert_eq!(workstation.intercept_id(), "4b16:echo");
    }
}
