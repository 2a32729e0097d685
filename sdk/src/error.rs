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
///
/// The message is whole: it names what failed and, after a colon, the cause
/// (the OS's, the HTTP stack's, Kafka's), so `{}` tells the full story, and
/// [`source`](std::error::Error::source) is `None`, so that a report that
/// walks the chain (such as `anyhow`'s `{:#}`) prints the cause once. Inspect
/// an error through its kind and accessors rather than by downcasting.
///
/// ```
/// use telepresence_kafka::{Client, ErrorKind};
///
/// let err = Client::builder().api_url("https://localhost:9980").build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::Config);
/// assert_eq!(
///     err.to_string(),
///     "API URL \"https://localhost:9980\": only http:// is supported (the Telepresence API has no TLS)"
/// );
/// assert!(std::error::Error::source(&err).is_none());
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    server_message: Option<String>,
    /// For [`ErrorKind::Kafka`]: rdkafka's error, which the message quotes.
    #[cfg(feature = "rdkafka")]
    kafka: Option<rdkafka::error::KafkaError>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                status: None,
                server_message: None,
                #[cfg(feature = "rdkafka")]
                kafka: None,
            }),
        }
    }

    /// An error whose message is `context: cause`, `cause` with its own
    /// causes: the message carries them all, and links none as a source.
    pub(crate) fn caused(
        kind: ErrorKind,
        context: impl fmt::Display,
        cause: &(dyn std::error::Error + 'static),
    ) -> Self {
        Self::new(kind, format!("{context}: {}", Chain(cause)))
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

    /// rdkafka's error, for [`ErrorKind::Kafka`].
    ///
    /// ```
    /// use telepresence_kafka::rdkafka::error::KafkaError;
    /// use telepresence_kafka::{Error, ErrorKind};
    ///
    /// let err = Error::from(KafkaError::Canceled);
    /// assert_eq!(err.kind(), ErrorKind::Kafka);
    /// assert!(matches!(err.kafka_error(), Some(KafkaError::Canceled)));
    /// ```
    #[cfg(feature = "rdkafka")]
    pub fn kafka_error(&self) -> Option<&rdkafka::error::KafkaError> {
        self.inner.kafka.as_ref()
    }
}

/// An error and its causes, as `a: b: c`.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
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
        d.finish()
    }
}

/// No source: the message carries the cause.
impl std::error::Error for Error {}

#[cfg(feature = "rdkafka")]
impl From<rdkafka::error::KafkaError> for Error {
    /// The message quotes rdkafka's, which already names its cause (the
    /// error code); the error itself stays reachable through
    /// [`kafka_error`](Error::kafka_error).
    fn from(error: rdkafka::error::KafkaError) -> Self {
        let mut this = Self::new(ErrorKind::Kafka, format!("Kafka error: {error}"));
        this.inner.kafka = Some(error);
        this
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Client, ClientBuilder, FailurePolicy};

    /// What a report that walks the chain shows, link by link (as `anyhow`'s
    /// `{:#}` does).
    fn links(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut links = vec![error.to_string()];
        let mut source = error.source();
        while let Some(cause) = source {
            links.push(cause.to_string());
            source = cause.source();
        }
        links
    }

    /// Whether every text of the chained report appears once.
    fn said_once(error: &(dyn std::error::Error + 'static)) -> Result<(), String> {
        let links = links(error);
        for (i, outer) in links.iter().enumerate() {
            if let Some(inner) = links[i + 1..].iter().find(|inner| outer.contains(*inner)) {
                return Err(format!("{outer:?} repeats its cause {inner:?}"));
            }
        }
        let report = links.join(": ");
        let parts: Vec<&str> = report.split(": ").collect();
        for (i, part) in parts.iter().enumerate() {
            if parts[i + 1..].contains(part) {
                return Err(format!("{part:?} twice in {report:?}"));
            }
        }
        Ok(())
    }

    fn assert_said_once(error: &Error, says: &[&str]) {
        if let Err(problem) = said_once(error) {
            panic!("{problem}");
        }
        let report = links(error).join(": ");
        for text in says {
            assert!(report.contains(text), "{text:?} not in {report:?}");
        }
    }

    #[tokio::test]
    async fn a_chained_report_says_each_cause_once() {
        let closed = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{closed}");
        let tp = Client::builder()
            .api_url(&url)
            .retries(0)
            .side_check(false)
            .failure_policy(FailurePolicy::Fail)
            .build()
            .unwrap();
        let unreachable = tp
            .should_consume(&crate::HeaderList::default())
            .await
            .unwrap_err();
        assert_eq!(unreachable.kind(), ErrorKind::Connect);
        assert_said_once(&unreachable, &[&url, "onnect"]);
        assert_eq!(
            links(&unreachable).join(": ").matches(&url).count(),
            1,
            "the URL once: {unreachable}"
        );

        let info = tp.intercept_info(&crate::HeaderList::default()).await;
        assert_said_once(&info.unwrap_err(), &[&url]);
        let disabled = Client::disabled().healthz().await.unwrap_err();
        assert_said_once(&disabled, &["TELEPRESENCE_API_PORT"]);

        let unreadable = crate::wire::intercept_info(200, b"{\"intercepted\":true}").unwrap_err();
        assert_said_once(&unreadable, &["intercept-info JSON object", "clientSide"]);
        let missing = crate::wire::intercept_info(404, b"404 page not found\n").unwrap_err();
        assert_said_once(&missing, &["404 page not found", "Telepresence 2.4"]);
        let config = ClientBuilder::from_env_vars(|name| {
            (name == crate::API_PORT_ENV).then(|| "99999".into())
        })
        .unwrap_err();
        assert_said_once(&config, &["TELEPRESENCE_API_PORT=\"99999\": out of range"]);
    }

    #[cfg(feature = "rdkafka")]
    #[test]
    fn a_kafka_error_is_quoted_once_and_kept() {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        use std::error::Error as _;

        let kafka = || KafkaError::MessageConsumption(RDKafkaErrorCode::BrokerTransportFailure);
        // rdkafka's own error both quotes its code and links it: linked as a
        // source, the code would be said twice.
        assert!(said_once(&kafka()).is_err());
        let error = Error::from(kafka());
        assert_said_once(&error, &["Kafka error", "Message consumption error"]);
        assert!(error.source().is_none());
        assert!(matches!(
            error.kafka_error(),
            Some(KafkaError::MessageConsumption(
                RDKafkaErrorCode::BrokerTransportFailure
            ))
        ));
    }
}
