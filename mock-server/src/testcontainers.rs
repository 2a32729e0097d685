//! The mock server as a [testcontainers] image, for end-to-end tests.
//!
//! [`MockServerImage`] configures one container: the side it stands in for,
//! the Telepresence release it mocks, the workload's ports and the
//! intercepts, all given to the server in its configuration variable. Once
//! started, [`MockServerContainer`] gives the API's URL, the environment a
//! consumer beside it would have ([`ConsumerEnv`], as
//! [`MockServer::env`](crate::MockServer::env) gives it in-process), and its
//! admin API ([`Admin`], over HTTP, with the container's token).
//!
//! ```no_run
//! use telepresence_mock_server::testcontainers::{AsyncRunner, MockServerContainer, MockServerImage};
//! use telepresence_mock_server::{Intercept, Side};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let container = MockServerImage::default()
//!     .with_side(Side::Client)
//!     .with_intercept(Intercept::new("abc:orders").header("x-dev", "alice"))
//!     .start()
//!     .await?;
//! let env = container.env().await?; // TELEPRESENCE_API_PORT, _HOST, _INTERCEPT_ID
//! assert_eq!(env.intercept_id, "abc:orders");
//!
//! // Intercepts can change mid-test; every request is journaled.
//! let admin = container.admin().await?;
//! admin.remove_intercept("abc:orders").await?;
//! assert!(admin.journal().await?.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! The image `telepresence-mock-server:latest` is built locally, never
//! pulled: `scripts/build-images.sh mock-server` in this repository.
//!
//! [`AsyncRunner`], [`ImageExt`] and [`ContainerAsync`] are re-exported so that a test needs no
//! testcontainers dependency of its own, and cannot pick a version whose
//! traits these types do not implement.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};

use ::testcontainers::Image;
use ::testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};

use crate::{Admin, ConfigFile, Error};
use telepresence_api::env::{ConsumerEnv, MOCK_ADMIN_TOKEN, MOCK_CONFIG};
use telepresence_api::{Intercept, Side, TelepresenceVersion, Wire};

pub use ::testcontainers::runners::AsyncRunner;
pub use ::testcontainers::{ContainerAsync, ImageExt};

/// The image's name.
pub const IMAGE: &str = "telepresence-mock-server";
/// The tag used unless [`MockServerImage::with_tag`] says otherwise.
pub const TAG: &str = "latest";
/// The port the server listens on inside the container.
pub const PORT: u16 = 9980;

const PORTS: [ContainerPort; 1] = [ContainerPort::Tcp(PORT)];

/// What the server logs once its socket is bound: the container is ready then.
const READY_LINE: &str = "listening on";

/// The mock server image, configured: by default the client side of the
/// newest Telepresence release the server knows, no intercepts, and an admin
/// token of its own (the server listens beyond loopback in a container, so
/// its admin API needs one).
///
/// It is ready when the server logs that it listens, after its socket is
/// bound: not after a delay.
#[derive(Clone)]
#[must_use]
pub struct MockServerImage {
    /// The configuration given to the server, through [`MOCK_CONFIG`].
    config: ConfigFile,
    /// `config` as the server reads it, kept in step: [`Image::env_vars`]
    /// lends it out.
    config_json: String,
    tag: String,
    admin_token: String,
}

impl fmt::Debug for MockServerImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServerImage")
            .field("config", &self.config)
            .field("tag", &self.tag)
            .field("admin_token", &"<hidden>")
            .finish()
    }
}

impl Default for MockServerImage {
    fn default() -> Self {
        Self {
            config: ConfigFile {
                side: Some(Side::Client),
                // None rather than the default intercept the server makes up.
                intercepts: Some(Vec::new()),
                ..ConfigFile::default()
            },
            config_json: String::new(),
            tag: TAG.to_owned(),
            admin_token: random_token(),
        }
        .configured()
    }
}

/// A token nobody guesses, without a random-number crate: the standard
/// library's hasher keys are random per process.
fn random_token() -> String {
    let random = RandomState::new();
    format!(
        "{:016x}{:016x}",
        random.hash_one(std::time::SystemTime::now()),
        random.hash_one(std::process::id())
    )
}

impl MockServerImage {
    fn configured(mut self) -> Self {
        self.config_json =
            serde_json::to_string(&self.config).expect("a configuration always serializes");
        self
    }

    /// The side to stand in for (default [`Side::Client`]).
    pub fn with_side(mut self, side: Side) -> Self {
        self.config.side = Some(side);
        self.configured()
    }

    /// The Telepresence release to mock (default: the newest the server
    /// knows): its wire format and its rules.
    pub fn with_telepresence_version(mut self, version: TelepresenceVersion) -> Self {
        self.config.telepresence_version = Some(version);
        self.configured()
    }

    /// Overrides the release's wire format.
    pub fn with_wire(mut self, wire: Wire) -> Self {
        self.config.wire = Some(wire);
        self.configured()
    }

    /// The workload's container ports, in the traffic-agent's order
    /// (default: the ports of the intercepts).
    pub fn with_workload_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.config.container_ports = Some(ports.into_iter().collect());
        self.configured()
    }

    /// Adds an intercept (the container starts with none).
    pub fn with_intercept(mut self, intercept: Intercept) -> Self {
        self.config
            .intercepts
            .get_or_insert_with(Vec::new)
            .push(intercept);
        self.configured()
    }

    /// Adds several intercepts.
    pub fn with_intercepts(mut self, intercepts: impl IntoIterator<Item = Intercept>) -> Self {
        self.config
            .intercepts
            .get_or_insert_with(Vec::new)
            .extend(intercepts);
        self.configured()
    }

    /// Uses another tag of the image (default [`TAG`]).
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
        self.config.side.unwrap_or_default()
    }

    /// The intercepts it starts with.
    pub fn intercepts(&self) -> &[Intercept] {
        self.config.intercepts.as_deref().unwrap_or_default()
    }

    /// The admin API's token.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }
}

impl Image for MockServerImage {
    fn name(&self) -> &str {
        IMAGE
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stderr(READY_LINE)]
    }

    fn env_vars(
        &self,
    ) -> impl IntoIterator<Item = (impl Into<Cow<'_, str>>, impl Into<Cow<'_, str>>)> {
        [
            (MOCK_CONFIG, self.config_json.as_str()),
            (MOCK_ADMIN_TOKEN, self.admin_token.as_str()),
        ]
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        &PORTS
    }
}

/// What a started mock server container offers a test.
pub trait MockServerContainer {
    /// `http://HOST:PORT` of the API, as reachable from the test.
    fn api_url(&self) -> impl Future<Output = Result<String, Error>> + Send;

    /// The environment Telepresence would give a consumer beside this
    /// server: its host and mapped port, and on the client side the first
    /// intercept's ID (none on the agent side, as in a pod). Configure the
    /// SDK from it as a consumer process would be configured.
    fn env(&self) -> impl Future<Output = Result<ConsumerEnv, Error>> + Send;

    /// The admin API, over HTTP, with the container's token.
    fn admin(&self) -> impl Future<Output = Result<Admin, Error>> + Send;
}

fn container_error(action: &str, error: ::testcontainers::TestcontainersError) -> Error {
    Error::Container {
        action: action.to_owned(),
        source: error.into(),
    }
}

impl MockServerContainer for ContainerAsync<MockServerImage> {
    async fn api_url(&self) -> Result<String, Error> {
        let env = self.env().await?;
        Ok(format!("http://{}:{}", env.api_host, env.api_port))
    }

    async fn env(&self) -> Result<ConsumerEnv, Error> {
        let host = self
            .get_host()
            .await
            .map_err(|e| container_error("read the mock server container's host", e))?;
        let port = self
            .get_host_port_ipv4(PORT.tcp())
            .await
            .map_err(|e| container_error("read the mock server container's mapped port", e))?;
        let image = self.image();
        let intercept_id = match image.side() {
            Side::Client => image
                .intercepts()
                .first()
                .map(|i| i.id.clone())
                .unwrap_or_default(),
            Side::Agent => String::new(),
        };
        Ok(ConsumerEnv::new(port, host.to_string(), intercept_id))
    }

    async fn admin(&self) -> Result<Admin, Error> {
        Admin::connect(&self.api_url().await?, Some(self.image().admin_token())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_what_the_server_reads() {
        let image = MockServerImage::default()
            .with_side(Side::Agent)
            .with_telepresence_version("2.24.1".parse().unwrap())
            .with_wire(Wire::V2_4)
            .with_workload_ports([8080, 9090])
            .with_intercept(Intercept::new("a").container_port(9090));
        let read = ConfigFile::parse(&image.config_json, &crate::ConfigOrigin::Env).unwrap();
        assert_eq!(read, image.config);
        assert_eq!(read.intercepts.unwrap()[0].container_port, 9090);
        assert_eq!(image.side(), Side::Agent);
    }

    #[test]
    fn by_default_there_are_no_intercepts_and_the_token_is_hidden() {
        let image = MockServerImage::default();
        assert!(image.intercepts().is_empty());
        assert!(
            image.config_json.contains(r#""intercepts":[]"#),
            "{}",
            image.config_json
        );
        assert_ne!(
            image.admin_token(),
            MockServerImage::default().admin_token()
        );
        assert!(!format!("{image:?}").contains(image.admin_token()));
    }
}
