//! The mock Telepresence API server as a [testcontainers] image.
//!
//! The image `telepresence-mock-server` is built locally (no registry is
//! needed) with `scripts/build-images.sh mock-server` from this repository.
//! [`MockServer`] configures one container: its side, the Telepresence
//! release it mocks, the workload's ports and the intercepts;
//! [`MockServerContainer`] then gives the URL, an SDK client builder pointed
//! at it, and its admin API.
//!
//! ```no_run
//! use telepresence_kafka::testcontainers::{Intercept, MockServer, MockServerContainer, Side};
//! use testcontainers::runners::AsyncRunner;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let container = MockServer::default()
//!     .with_side(Side::Client)
//!     .with_intercept(Intercept::new("abc:orders").header("x-dev", "alice").metadata("owner", "alice"))
//!     .start()
//!     .await?;
//! let tp = container.client_builder().await?.build()?;
//! let alice = telepresence_kafka::HeaderList::new(&[("x-dev", Some(b"alice"))]);
//! assert!(tp.should_consume(&alice).await?);
//!
//! // Intercepts can change mid-test; every request is journaled.
//! let admin = container.admin().await?;
//! admin.remove_intercept("abc:orders").await?;
//! assert_eq!(admin.journal().await?.len(), 1);
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use ::testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use ::testcontainers::{ContainerAsync, Image};
use serde::Serialize;

use crate::{ClientBuilder, Error, ErrorKind};

/// The image name, as `scripts/build-images.sh` tags it.
pub const IMAGE: &str = "telepresence-mock-server";
/// The default tag.
pub const TAG: &str = "latest";
/// The port the server listens on inside the container.
pub const PORT: u16 = 9980;

const PORTS: [ContainerPort; 1] = [ContainerPort::Tcp(PORT)];

/// Which Telepresence component the container stands in for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The user daemon on a workstation.
    #[default]
    Client,
    /// The traffic-agent in a pod.
    Agent,
}

/// The wire format of a Telepresence version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wire {
    /// 2.25 and later.
    #[default]
    V2_25,
    /// 2.5 to 2.24.
    V2_5,
    /// 2.4.
    V2_4,
}

impl Wire {
    fn as_str(self) -> &'static str {
        match self {
            Self::V2_25 => "2.25",
            Self::V2_5 => "2.5",
            Self::V2_4 => "2.4",
        }
    }
}

impl Serialize for Wire {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One intercept, in the mock server's configuration schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Intercept {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_port: Option<u16>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path_equal: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path_prefix: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    path_regex: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    metadata: BTreeMap<String, String>,
}

impl Intercept {
    /// An intercept with this ID, matching every request (port 8080 unless set).
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            container_port: None,
            headers: BTreeMap::new(),
            path_equal: Vec::new(),
            path_prefix: Vec::new(),
            path_regex: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// The intercept's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The intercepted container port.
    pub fn container_port(mut self, port: u16) -> Self {
        self.container_port = Some(port);
        self
    }

    /// A header matcher (exact, or a regex when the value has a metacharacter).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Adds a path filter: paths equal to `path`. Several path filters
    /// match when any matches (Telepresence 2.25 and later; older releases
    /// refuse more than one).
    pub fn path_equal(mut self, path: impl Into<String>) -> Self {
        self.path_equal.push(path.into());
        self
    }

    /// Adds a path filter: paths starting with `prefix`.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix.push(prefix.into());
        self
    }

    /// Adds a path filter: paths containing a match of `regex`.
    pub fn path_regex(mut self, regex: impl Into<String>) -> Self {
        self.path_regex.push(regex.into());
        self
    }

    /// A metadata entry returned by `/intercept-info`.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

#[derive(Clone, Debug, Serialize)]
struct Config<'a> {
    side: Side,
    #[serde(skip_serializing_if = "Option::is_none")]
    telepresence_version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wire: Option<Wire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container_ports: Option<&'a [u16]>,
    intercepts: &'a [Intercept],
}

/// The mock server image, configured: the client side of the newest
/// Telepresence release the image knows, no intercepts by default, and an
/// admin token of its own.
///
/// It is ready when the server logs that it listens, after its socket is bound.
#[derive(Clone, Debug)]
pub struct MockServer {
    side: Side,
    telepresence_version: Option<String>,
    wire: Option<Wire>,
    workload_ports: Option<Vec<u16>>,
    intercepts: Vec<Intercept>,
    tag: String,
    admin_token: String,
    /// The configuration as the container reads it, kept in step with the fields.
    config: String,
}

impl Default for MockServer {
    fn default() -> Self {
        let random = RandomState::new();
        let token = format!(
            "{:016x}{:016x}",
            random.hash_one(std::time::SystemTime::now()),
            random.hash_one(std::process::id())
        );
        Self {
            side: Side::Client,
            telepresence_version: None,
            wire: None,
            workload_ports: None,
            intercepts: Vec::new(),
            tag: TAG.to_owned(),
            admin_token: token,
            config: String::new(),
        }
        .configured()
    }
}

impl MockServer {
    fn configured(mut self) -> Self {
        self.config = serde_json::to_string(&Config {
            side: self.side,
            telepresence_version: self.telepresence_version.as_deref(),
            wire: self.wire,
            container_ports: self.workload_ports.as_deref(),
            intercepts: &self.intercepts,
        })
        .expect("the configuration always serializes");
        self
    }

    /// The side to stand in for.
    pub fn with_side(mut self, side: Side) -> Self {
        self.side = side;
        self.configured()
    }

    /// The Telepresence release to mock, such as `"2.27"` or `"2.24.1"`:
    /// its wire format and its rules. The container refuses to start (and
    /// says why in its log) when it is not a release it can mock.
    pub fn with_telepresence_version(mut self, version: impl Into<String>) -> Self {
        self.telepresence_version = Some(version.into());
        self.configured()
    }

    /// Overrides the release's wire format.
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.wire = Some(wire);
        self.configured()
    }

    /// The workload's container ports, in the traffic-agent's order (by
    /// default, the ports of the intercepts).
    pub fn with_workload_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.workload_ports = Some(ports.into_iter().collect());
        self.configured()
    }

    /// Adds an intercept.
    pub fn with_intercept(mut self, intercept: Intercept) -> Self {
        self.intercepts.push(intercept);
        self.configured()
    }

    /// Uses another tag of the image.
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    /// Sets the admin API's token (one is generated otherwise).
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = token.into();
        self
    }

    /// The side it stands in for.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The intercepts it starts with.
    pub fn intercepts(&self) -> &[Intercept] {
        &self.intercepts
    }

    /// The admin API's token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
}

impl Image for MockServer {
    fn name(&self) -> &str {
        IMAGE
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stderr("listening on")]
    }

    fn env_vars(
        &self,
    ) -> impl IntoIterator<Item = (impl Into<Cow<'_, str>>, impl Into<Cow<'_, str>>)> {
        [
            ("TELEPRESENCE_MOCK_CONFIG", self.config.as_str()),
            ("TELEPRESENCE_MOCK_ADMIN_TOKEN", self.admin_token.as_str()),
        ]
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        &PORTS
    }
}

/// What a started mock server container offers a test.
#[allow(async_fn_in_trait)]
pub trait MockServerContainer {
    /// `http://HOST:PORT` of the API, as reachable from the test.
    async fn api_url(&self) -> Result<String, Error>;

    /// A client builder pointed at this server, with the intercept ID a
    /// consumer on this side would have (the first intercept's, on the client
    /// side; none on the agent side).
    async fn client_builder(&self) -> Result<ClientBuilder, Error>;

    /// The admin API, with the container's token.
    async fn admin(&self) -> Result<Admin, Error>;
}

/// Testcontainers' message already quotes its causes: it is taken alone.
fn container_error(error: ::testcontainers::TestcontainersError) -> Error {
    Error::new(
        ErrorKind::Connect,
        format!("mock server container: {error}"),
    )
}

impl MockServerContainer for ContainerAsync<MockServer> {
    async fn api_url(&self) -> Result<String, Error> {
        let host = self.get_host().await.map_err(container_error)?;
        let port = self
            .get_host_port_ipv4(PORT.tcp())
            .await
            .map_err(container_error)?;
        Ok(format!("http://{host}:{port}"))
    }

    async fn client_builder(&self) -> Result<ClientBuilder, Error> {
        let image = self.image();
        let intercept_id = match image.side() {
            Side::Client => image
                .intercepts()
                .first()
                .map(|i| i.id().to_owned())
                .unwrap_or_default(),
            Side::Agent => String::new(),
        };
        Ok(crate::Client::builder()
            .api_url(self.api_url().await?)
            .intercept_id(intercept_id))
    }

    async fn admin(&self) -> Result<Admin, Error> {
        Ok(Admin {
            url: format!("{}/_mock", self.api_url().await?),
            token: self.image().admin_token().to_owned(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?,
        })
    }
}

/// The mock server's admin API: intercepts, journal, faults.
#[derive(Clone, Debug)]
pub struct Admin {
    url: String,
    token: String,
    http: reqwest::Client,
}

impl Admin {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<bytes::Bytes, Error> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| Error::caused(ErrorKind::Connect, "mock server admin API", &e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::caused(ErrorKind::Connect, "mock server admin API", &e))?;
        crate::wire::check_status(status, &body)?;
        Ok(body)
    }

    /// Adds an intercept; the next request sees it.
    pub async fn add_intercept(&self, intercept: &Intercept) -> Result<(), Error> {
        let body = serde_json::to_string(intercept).expect("an intercept serializes");
        self.call(reqwest::Method::POST, "/intercepts", Some(body))
            .await
            .map(drop)
    }

    /// Replaces every intercept.
    pub async fn set_intercepts(&self, intercepts: &[Intercept]) -> Result<(), Error> {
        let body = serde_json::to_string(intercepts).expect("intercepts serialize");
        self.call(reqwest::Method::PUT, "/intercepts", Some(body))
            .await
            .map(drop)
    }

    /// Removes one intercept.
    pub async fn remove_intercept(&self, id: &str) -> Result<(), Error> {
        self.call(reqwest::Method::DELETE, &format!("/intercepts/{id}"), None)
            .await
            .map(drop)
    }

    /// The journal entries, oldest first, as JSON objects (see the mock
    /// server's documentation for their fields), read page by page.
    pub async fn journal(&self) -> Result<Vec<serde_json::Value>, Error> {
        let mut entries: Vec<serde_json::Value> = Vec::new();
        loop {
            let after = entries
                .last()
                .and_then(|last| last["seq"].as_u64())
                .unwrap_or(0);
            let body = self
                .call(
                    reqwest::Method::GET,
                    &format!("/journal?after={after}"),
                    None,
                )
                .await?;
            let page: Vec<serde_json::Value> = serde_json::from_slice(&body)
                .map_err(|e| Error::caused(ErrorKind::BadAnswer, "mock server journal", &e))?;
            if page.is_empty() {
                return Ok(entries);
            }
            entries.extend(page);
        }
    }

    /// Empties the journal.
    pub async fn clear_journal(&self) -> Result<(), Error> {
        self.call(reqwest::Method::DELETE, "/journal", None)
            .await
            .map(drop)
    }

    /// Injects a fault, e.g. `json!({"status": 503, "times": 2})`.
    pub async fn inject_fault(&self, fault: serde_json::Value) -> Result<(), Error> {
        self.call(reqwest::Method::POST, "/faults", Some(fault.to_string()))
            .await
            .map(drop)
    }

    /// Removes every fault.
    pub async fn clear_faults(&self) -> Result<(), Error> {
        self.call(reqwest::Method::DELETE, "/faults", None)
            .await
            .map(drop)
    }
}
