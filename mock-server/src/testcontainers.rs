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
//! # The image
//!
//! No registry serves the image: it is built locally, `FROM scratch` around
//! a server binary (the Dockerfile is the crate's `Dockerfile`).
//! [`MockServerImage::build_if_missing`] builds `telepresence-mock-server:<tag>`
//! unless it exists, from the first binary of:
//!
//! 1. the path given with [`MockServerImage::with_binary`];
//! 2. the environment variable `TELEPRESENCE_MOCK_SERVER_BIN`
//!    ([`BINARY_ENV`]);
//! 3. `telepresence-mock-server` on `PATH`.
//!
//! A statically linked binary makes an image of one file. A dynamically
//! linked one gets the shared libraries `ldd` lists, copied to the same
//! paths; without `ldd` (or with a library missing) it is refused, naming
//! the binary and the fix: a static build,
//! `RUSTFLAGS='-C target-feature=+crt-static' cargo install telepresence-mock-server --target <host triple>`.
//! An image that exists is used as it is: after changing the server, remove
//! it (`docker rmi telepresence-mock-server:latest`) or use another tag.
//! In this repository `scripts/build-images.sh mock-server` builds the same
//! image from a fresh static build.
//!
//! ```no_run
//! use telepresence_mock_server::testcontainers::{AsyncRunner, MockServerImage};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let container = MockServerImage::default()
//!     .with_binary("target/release/telepresence-mock-server")
//!     .build_if_missing()
//!     .await?
//!     .start()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`AsyncRunner`], [`ImageExt`] and [`ContainerAsync`] are re-exported so
//! that a test needs no testcontainers dependency of its own, and cannot
//! pick a version whose traits these types do not implement.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::path::{Path, PathBuf};

use ::testcontainers::core::error::ClientError;
use ::testcontainers::core::{BuildImageOptions, ContainerPort, IntoContainerPort, WaitFor};
use ::testcontainers::runners::AsyncBuilder;
use ::testcontainers::{GenericBuildableImage, Image, TestcontainersError};

use crate::{Admin, ConfigFile, Error};
use telepresence_api::env::{ConsumerEnv, MOCK_ADMIN_TOKEN, MOCK_CONFIG};
use telepresence_api::{Intercept, Side, TelepresenceVersion, Wire};

pub use ::testcontainers::runners::AsyncRunner;
pub use ::testcontainers::{ContainerAsync, ImageExt};
pub use server_binary::BINARY_ENV;

mod server_binary;

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
    /// The binary to build the image from, when given.
    binary: Option<PathBuf>,
}

impl fmt::Debug for MockServerImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServerImage")
            .field("config", &self.config)
            .field("tag", &self.tag)
            .field("admin_token", &"<hidden>")
            .field("binary", &self.binary)
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
            binary: None,
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

    /// The server binary [`build_if_missing`](Self::build_if_missing) builds
    /// the image from, before `TELEPRESENCE_MOCK_SERVER_BIN` and `PATH`.
    pub fn with_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Builds the image `telepresence-mock-server:<tag>` unless it exists,
    /// from the binary the [module documentation](self#the-image) says, and
    /// returns the image ready to start.
    ///
    /// When the image exists, no binary is needed. When it does not, a
    /// missing or unusable binary is [`Error::ServerBinary`], naming it and
    /// the fix; Docker failing is [`Error::Container`].
    pub async fn build_if_missing(self) -> Result<Self, Error> {
        let reference = format!("{IMAGE}:{}", self.tag);
        let building =
            |binary: &Path| format!("build the image {reference} from {}", binary.display());
        let skip_if_exists = BuildImageOptions::new().with_skip_if_exists(true);
        let context = server_binary::find(self.binary.as_deref()).and_then(|binary| {
            server_binary::build_context(&binary).map(|context| (binary, context))
        });
        match context {
            Ok((binary, context)) => {
                let mut image = GenericBuildableImage::new(IMAGE, &self.tag)
                    .with_dockerfile_string(context.dockerfile);
                for (source, target) in context.files {
                    image = image.with_file(source, target);
                }
                // The generic image it returns is this one without its
                // configuration: `self` is what starts.
                let _built = image
                    .build_image_with(skip_if_exists)
                    .await
                    .map_err(|error| container_error(&building(&binary), error))?;
                Ok(self)
            }
            Err(no_binary) => {
                // No binary to build from, which matters only if the image
                // is missing. testcontainers can tell only by building: with
                // the Dockerfile alone, an existing image is kept as it is
                // and a missing one fails to build for want of the binary.
                let probe = GenericBuildableImage::new(IMAGE, &self.tag)
                    .with_dockerfile_string(server_binary::DOCKERFILE)
                    .build_image_with(skip_if_exists)
                    .await;
                match probe {
                    Ok(_) => Ok(self),
                    Err(TestcontainersError::Client(ClientError::BuildImage { .. })) => {
                        Err(no_binary)
                    }
                    Err(docker) => Err(container_error(
                        &format!("build the image {reference}"),
                        docker,
                    )),
                }
            }
        }
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
