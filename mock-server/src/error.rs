//! The crate's one error type.
//!
//! A message says what failed; the cause, when there is one, is linked as
//! [`source`](std::error::Error::source) rather than repeated in the
//! message, so that a report printing the chain says everything once.

use crate::ConfigError;
use crate::decision::InterceptSetError;
use telepresence_api::InterceptError;
use telepresence_api::admin::FaultError;

/// Why a server could not start, a change was refused, or the admin API
/// could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An intercept was refused.
    #[error(transparent)]
    Intercept(#[from] InterceptError),
    /// A list of intercepts was refused.
    #[error(transparent)]
    Intercepts(#[from] InterceptSetError),
    /// The fault was refused.
    #[error("invalid fault: {0}")]
    Fault(FaultError),
    /// The listening socket could not be opened.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The background thread's runtime could not start.
    #[error("cannot start the server's runtime")]
    Runtime(#[source] std::io::Error),
    /// The admin API answered a request with an error status: an invalid
    /// intercept or fault, a wrong token, an admin API turned off.
    #[error("the admin API refused {request} with status {status}: {message}")]
    AdminRefused {
        /// The method and path asked for, e.g. `POST /_mock/intercepts`.
        request: String,
        /// The HTTP status.
        status: u16,
        /// What the server said: the admin API's error message, or the
        /// body's text from a server that does not speak it.
        message: String,
    },
    /// The admin API could not be reached, or its answer not read.
    #[error("cannot reach the admin API at {url}")]
    AdminUnreachable {
        /// The server's base URL.
        url: String,
        /// Why: the HTTP client's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Docker, through testcontainers, failed (with the `testcontainers`
    /// feature): a container's address could not be read, an image not built.
    #[error("cannot {action}")]
    Container {
        /// What was being done, e.g. `build the image telepresence-mock-server:latest`.
        action: String,
        /// Why: testcontainers' error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The mock server image is missing and the binary to build it from
    /// cannot be used (with the `testcontainers` feature): none was found,
    /// it cannot be read, it is no Linux executable, or it is linked
    /// dynamically and its libraries cannot be listed. The message says
    /// which, and how to get one that works.
    #[error("{message}")]
    ServerBinary {
        /// What is wrong with which binary, and the fix.
        message: String,
        /// The I/O error behind it, if any.
        #[source]
        source: Option<std::io::Error>,
    },
    /// The admin API answered with something this client does not
    /// understand: not the mock server, or a version of it that differs.
    #[error("unexpected answer from the admin API at {url}")]
    AdminAnswer {
        /// The server's base URL.
        url: String,
        /// What could not be read.
        #[source]
        source: serde_json::Error,
    },
}

/// `error` and its causes, joined by `: `, as a command line reports them.
pub(crate) fn report(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}
