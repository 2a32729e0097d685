//! One error type with an inspectable kind.

use std::fmt;

/// What went wrong, broadly; see [`Error::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is invalid: an environment variable, a builder
    /// value. The message names the culprit and its value.
    Config,
    /// There is no Telepresence API to ask (the client is disabled) and the
    /// call needs one, such as [`Client::intercept_info`](crate::Client::intercept_info).
    NotConfigured,
    /// The API server could not be reached, or dropped the connection.
    Connect,
    /// The call did not finish within its timeout.
    Timeout,
    /// The server answered with an error status; see [`Error::status`] and
    /// [`Error::server_message`].
    Status,
    /// The server answered `200` with a body that is not a valid answer.
    BadAnswer,
    /// Kafka itself failed (the stream adapter passes consumer errors on).
    Kafka,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Config => "invalid configuration",
            Self::NotConfigured => "not running under Telepresence",
            Self::Connect => "cannot reach the Telepresence API",
            Self::Timeout => "the Telepresence API did not answer in time",
            Self::Status => "the Telepresence API answered an error",
            Self::BadAnswer => "the Telepresence API gave an unreadable answer",
            Self::Kafka => "Kafka error",
        })
    }
}

/// An error from this crate: a [`kind`](Error::kind), a message, and for
/// HTTP errors the status and the server's own error text.
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    server_message: Option<String>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                server_message: None,
                source: None,
            }),
        }
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.inner.source = Some(Box::new(source));
        self
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub(crate) fn http_status(status: u16, server_message: String) -> Self {
        let mut error = Self::new(
            ErrorKind::Status,
            format!("the Telepresence API answered {status}: {server_message}"),
        );
        error.inner.status = Some(status);
        error.inner.server_message = Some(server_message);
        error
    }

    /// Adds what the status means for this call to the message; the server's
    /// own text stays as it was.
    pub(crate) fn with_explanation(mut self, explanation: &str) -> Self {
        self.inner.message = format!("{}; {explanation}", self.inner.message);
        self
    }

    /// The broad kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The HTTP status, for [`ErrorKind::Status`].
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The server's error text (the `error` field of a JSON body, or the plain
    /// text body), for [`ErrorKind::Status`].
    pub fn server_message(&self) -> Option<&str> {
        self.inner.server_message.as_deref()
    }

    /// Whether the server could not be reached.
    pub fn is_connect(&self) -> bool {
        self.inner.kind == ErrorKind::Connect
    }

    /// Whether the call timed out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == ErrorKind::Timeout
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(status) = self.inner.status {
            d.field("status", &status);
        }
        if let Some(source) = &self.inner.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(feature = "rdkafka")]
impl From<rdkafka::error::KafkaError> for Error {
    fn from(error: rdkafka::error::KafkaError) -> Self {
        Self::new(ErrorKind::Kafka, format!("Kafka error: {error}")).with_source(error)
    }
}
