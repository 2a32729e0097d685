//! `MockServer`: the server started in-process, on a random port, for tests.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::admin_client::Admin;
use crate::config;
use crate::error::Error;
use crate::journal::{DEFAULT_JOURNAL_BYTES, DEFAULT_JOURNAL_CAPACITY, Journal};
use crate::limits::Limits;
use crate::router::{AdminAccess, Routes};
use crate::serve;
use crate::state::{Mocked, ServerState};
use telepresence_api::env::ConsumerEnv;
use telepresence_api::{Intercept, Rules, Side, TelepresenceVersion, Wire};

/// Configures a [`MockServer`]. Start from [`MockServer::builder`].
#[derive(Clone, Debug)]
#[must_use]
pub struct MockServerBuilder {
    listen: String,
    side: Side,
    version: TelepresenceVersion,
    wire: Option<Wire>,
    workload_ports: Option<Vec<u16>>,
    intercepts: Vec<Intercept>,
    journal_capacity: usize,
    journal_bytes: usize,
    admin: bool,
    admin_token: Option<String>,
    limits: Limits,
}

impl Default for MockServerBuilder {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".to_owned(),
            side: Side::Client,
            version: TelepresenceVersion::NEWEST_KNOWN,
            wire: None,
            workload_ports: None,
            intercepts: Vec::new(),
            journal_capacity: DEFAULT_JOURNAL_CAPACITY,
            journal_bytes: DEFAULT_JOURNAL_BYTES,
            admin: true,
            admin_token: None,
            limits: Limits::default(),
        }
    }
}

impl MockServerBuilder {
    /// The address to listen on (default `127.0.0.1:0`: a free port on loopback).
    pub fn listen(mut self, address: impl Into<String>) -> Self {
        self.listen = address.into();
        self
    }

    /// The side to stand in for (default [`Side::Client`]).
    pub fn side(mut self, side: Side) -> Self {
        self.side = side;
        self
    }

    /// The Telepresence release to mock (default
    /// [`TelepresenceVersion::NEWEST_KNOWN`]): its wire format and its rules.
    ///
    /// ```
    /// use telepresence_mock_server::{Intercept, MockServer, Side, Wire};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let server = MockServer::builder()
    ///     .telepresence_version("2.24".parse()?)
    ///     .side(Side::Agent)
    ///     .intercept(Intercept::new("a").container_port(8080))
    ///     .intercept(Intercept::new("b").container_port(9090))
    ///     .start()
    ///     .await?;
    /// assert_eq!(server.wire(), Wire::V2_5);
    /// // Before 2.25, a query without a container port matches nothing on a
    /// // workload with two ports.
    /// let answer = reqwest::get(format!("{}/consume-here", server.url())).await?.text().await?;
    /// assert_eq!(answer, "true\n");
    /// # Ok(())
    /// # }
    /// ```
    pub fn telepresence_version(mut self, version: TelepresenceVersion) -> Self {
        self.version = version;
        self
    }

    /// Overrides the wire format of the release mocked, leaving its other rules.
    pub fn wire(mut self, wire: Wire) -> Self {
        self.wire = Some(wire);
        self
    }

    /// The workload's interceptable container ports, in the order of the
    /// traffic-agent's configuration (default: the distinct ports of the
    /// intercepts, in order of first appearance). The agent side's target
    /// choice depends on them; every intercept must use one of them.
    pub fn workload_ports(mut self, ports: impl IntoIterator<Item = u16>) -> Self {
        self.workload_ports = Some(ports.into_iter().collect());
        self
    }

    /// Adds an intercept (the server starts with none).
    pub fn intercept(mut self, intercept: Intercept) -> Self {
        self.intercepts.push(intercept);
        self
    }

    /// Adds several intercepts.
    pub fn intercepts(mut self, intercepts: impl IntoIterator<Item = Intercept>) -> Self {
        self.intercepts.extend(intercepts);
        self
    }

    /// How many requests the journal keeps (default 10 000; 0 turns it off).
    pub fn journal_capacity(mut self, capacity: usize) -> Self {
        self.journal_capacity = capacity;
        self
    }

    /// How many bytes the journal keeps (default 32 MiB; 0 turns it off):
    /// the oldest entries make room for new ones beyond it.
    pub fn journal_bytes(mut self, bytes: usize) -> Self {
        self.journal_bytes = bytes;
        self
    }

    /// Serves the `/_mock/` admin API over HTTP (default on).
    /// [`MockServer::admin`] works either way.
    pub fn admin(mut self, enabled: bool) -> Self {
        self.admin = enabled;
        self
    }

    /// Requires `Authorization: Bearer <token>` on the admin API (default:
    /// none). Use it whenever the server listens beyond loopback.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// Limits on what a client may ask (see [`Limits`] for the defaults).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    fn access(&self) -> AdminAccess {
        match (&self.admin, &self.admin_token) {
            (false, _) => AdminAccess::Off,
            (true, None) => AdminAccess::Open,
            (true, Some(token)) => AdminAccess::Token(token.as_str().into()),
        }
    }

    fn prepare(self) -> Result<(Arc<ServerState>, AdminAccess, SocketAddr), Error> {
        let mocked = Mocked {
            side: self.side,
            version: self.version,
            wire: self.wire,
            workload_ports: self.workload_ports.clone(),
        };
        let state = ServerState::new(
            mocked,
            &self.intercepts,
            Journal::new(self.journal_capacity, self.journal_bytes),
            self.limits.clone(),
        )?;
        let address = config::resolve_listen(&self.listen).map_err(|message| Error::Bind {
            address: self.listen.clone(),
            error: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
        })?;
        Ok((Arc::new(state), self.access(), address))
    }

    /// Binds and serves on the current Tokio runtime.
    pub async fn start(self) -> Result<MockServer, Error> {
        let (state, access, address) = self.prepare()?;
        let listener = bind(address).await?;
        let address = listener.local_addr().map_err(|error| Error::Bind {
            address: address.to_string(),
            error,
        })?;
        let (tx, rx) = oneshot::channel();
        let limits = state.limits.clone();
        let task = tokio::spawn(serve::serve(
            listener,
            Routes::new(state.clone(), &access),
            limits,
            async {
                let _ = rx.await;
            },
        ));
        Ok(MockServer {
            state,
            address,
            access,
            shutdown: Some(tx),
            task: Some(Task::Spawned(task)),
        })
    }

    /// Binds and serves on a thread of its own, for tests without a Tokio
    /// runtime (such as those of a blocking client).
    pub fn start_blocking(self) -> Result<MockServer, Error> {
        let (state, access, address) = self.prepare()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let listener = runtime.block_on(bind(address))?;
        let address = listener.local_addr().map_err(|error| Error::Bind {
            address: address.to_string(),
            error,
        })?;
        let (tx, rx) = oneshot::channel();
        let routes = Routes::new(state.clone(), &access);
        let limits = state.limits.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mock-server-{}", address.port()))
            .spawn(move || {
                runtime.block_on(serve::serve(listener, routes, limits, async {
                    let _ = rx.await;
                }));
            })
            .map_err(Error::Runtime)?;
        Ok(MockServer {
            state,
            address,
            access,
            shutdown: Some(tx),
            task: Some(Task::Thread(thread)),
        })
    }
}

async fn bind(address: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|error| Error::Bind {
            address: address.to_string(),
            error,
        })
}

#[derive(Debug)]
enum Task {
    Spawned(tokio::task::JoinHandle<()>),
    Thread(std::thread::JoinHandle<()>),
}

/// A running mock of Telepresence's API server.
///
/// It answers `/healthz`, `/consume-here` and `/intercept-info` like the real
/// server of the chosen [`Side`] and Telepresence release, records every request
/// in a journal, and injects faults on demand ([`MockServer::admin`]). It
/// stops when dropped.
///
/// ```
/// use telepresence_mock_server::{Intercept, MockServer, Side};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = MockServer::builder()
///     .side(Side::Client)
///     .intercept(Intercept::new("abc:orders").header("x-dev", "alice").metadata("owner", "alice"))
///     .start()
///     .await?;
///
/// let answer = reqwest::Client::new()
///     .get(format!("{}/consume-here", server.url()))
///     .header("x-telepresence-caller-intercept-id", "abc:orders")
///     .header("x-dev", "alice")
///     .send()
///     .await?
///     .text()
///     .await?;
/// assert_eq!(answer, "true");
/// assert_eq!(server.admin().journal().await?.len(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct MockServer {
    state: Arc<ServerState>,
    address: SocketAddr,
    access: AdminAccess,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<Task>,
}

impl MockServer {
    /// A builder: client side of the newest known release, no intercepts,
    /// random loopback port.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    /// `http://ADDRESS:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// Whether the admin API is served over HTTP.
    pub fn has_admin_api(&self) -> bool {
        self.access != AdminAccess::Off
    }

    /// The token the admin API requires, if any.
    pub fn admin_token(&self) -> Option<&str> {
        match &self.access {
            AdminAccess::Token(token) => Some(token),
            _ => None,
        }
    }

    /// The side it stands in for.
    pub fn side(&self) -> Side {
        self.state.side
    }

    /// The Telepresence release it mocks.
    pub fn telepresence_version(&self) -> TelepresenceVersion {
        self.state.version
    }

    /// The rules it follows (those of its release, with its wire format).
    pub fn rules(&self) -> Rules {
        self.state.rules
    }

    /// Its wire format.
    pub fn wire(&self) -> Wire {
        self.state.rules.wire
    }

    /// The workload's ports, in agent-configuration order: declared, or
    /// those of the intercepts in force.
    pub fn workload_ports(&self) -> Vec<u16> {
        self.state.intercept_set().workload_ports()
    }

    /// The variables a consumer needs to use this server: on the client side
    /// the first intercept's ID, on the agent side none (as in a pod).
    pub fn env(&self) -> ConsumerEnv {
        let intercept_id = match self.state.side {
            Side::Client => self
                .state
                .intercept_set()
                .specs()
                .next()
                .map(|i| i.id.clone())
                .unwrap_or_default(),
            Side::Agent => String::new(),
        };
        let ip = self.address.ip();
        let api_host = if ip.is_unspecified() {
            "localhost".to_owned()
        } else {
            ip.to_string()
        };
        ConsumerEnv::new(self.address.port(), api_host, intercept_id)
    }

    /// The admin API, in-process: intercepts, journal, faults. It works
    /// whether or not the server also serves it over HTTP.
    pub fn admin(&self) -> Admin {
        Admin::in_process(self.state.clone())
    }

    /// The intercepts in force, for the start-up line.
    pub(crate) fn intercepts_in_force(&self) -> Vec<Intercept> {
        self.state.intercepts()
    }

    /// Stops accepting connections and waits for the requests in flight.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match self.task.take() {
            Some(Task::Spawned(task)) => {
                let _ = task.await;
            }
            Some(Task::Thread(thread)) => {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
            None => {}
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
