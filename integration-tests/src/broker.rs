//! A Kafka-protocol broker as a testcontainers image: tansu, in memory.
//!
//! Kafka clients connect twice: first to the bootstrap address, then to the
//! address the broker *advertises*. From the host, a container is reached on
//! a mapped port, so the broker must advertise `127.0.0.1:<mapped port>`.
//! That port must be known before the container starts: [`Tansu::default`]
//! picks a free one and maps it explicitly ([`Tansu::start`] does both).

use std::borrow::Cow;

use testcontainers::core::{ContainerPort, IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, Image, ImageExt};

use crate::{ensure_image, free_port};

/// The image, as `scripts/build-images.sh broker` tags it.
pub const IMAGE: (&str, &str) = ("tpk-tansu", "0.6.0");
/// The broker's port inside the container.
pub const PORT: u16 = 9092;

const PORTS: [ContainerPort; 1] = [ContainerPort::Tcp(PORT)];

/// The tansu broker, advertising a host port of its own.
#[derive(Clone, Debug)]
pub struct Tansu {
    host_port: u16,
    advertised: String,
}

impl Default for Tansu {
    fn default() -> Self {
        Self::on_host_port(free_port())
    }
}

impl Tansu {
    /// A broker to be reached on this host port.
    pub fn on_host_port(host_port: u16) -> Self {
        Self {
            host_port,
            advertised: format!("tcp://127.0.0.1:{host_port}"),
        }
    }

    /// The bootstrap servers for clients on the host.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.host_port)
    }

    /// Builds the image if needed, and starts a broker on a free host port
    /// (trying again should another process take the port first).
    pub async fn start() -> (ContainerAsync<Tansu>, String) {
        let (name, tag) = IMAGE;
        ensure_image(name, tag, "broker");
        let mut last_error = None;
        for _ in 0..3 {
            let broker = Tansu::default();
            let bootstrap = broker.bootstrap();
            let port = broker.host_port;
            match broker.with_mapped_port(port, PORT.tcp()).start().await {
                Ok(container) => return (container, bootstrap),
                Err(error) => last_error = Some(error),
            }
        }
        panic!("the broker container does not start: {last_error:?}");
    }
}

impl Image for Tansu {
    fn name(&self) -> &str {
        IMAGE.0
    }

    fn tag(&self) -> &str {
        IMAGE.1
    }

    fn ready_conditions(&self) -> Vec<WaitFor> {
        vec![WaitFor::message_on_stdout("ready in")]
    }

    fn env_vars(
        &self,
    ) -> impl IntoIterator<Item = (impl Into<Cow<'_, str>>, impl Into<Cow<'_, str>>)> {
        [("ADVERTISED_LISTENER_URL", self.advertised.as_str())]
    }

    fn expose_ports(&self) -> &[ContainerPort] {
        &PORTS
    }
}
