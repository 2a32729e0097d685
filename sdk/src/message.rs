//! What the API is asked about: a message's topic, headers, key and path.

/// A Kafka message as far as a decision goes: its headers, its topic, and
/// optionally its record key and the path to send.
///
/// Every [`rdkafka::message::Message`] implements it (with the `rdkafka`
/// feature); [`HeaderList`] covers other Kafka clients and tests; implement it
/// for your own message type if you like:
///
/// ```
/// use telepresence_kafka::{Client, KafkaMessage};
///
/// struct Order {
///     headers: Vec<(String, Vec<u8>)>,
/// }
///
/// impl KafkaMessage for Order {
///     fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
///         self.headers.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice())))
///     }
///
///     fn topic(&self) -> Option<&str> {
///         Some("orders")
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), telepresence_kafka::Error> {
/// let order = Order { headers: vec![("x-dev".into(), b"alice".to_vec())] };
/// assert!(Client::disabled().should_consume(&order).await?);
/// # Ok(()) }
/// ```
pub trait KafkaMessage {
    /// The headers, in order, as `(key, value)`; a null value is `None`.
    fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)>;

    /// The topic, used by [`PathSource::Topic`](crate::PathSource::Topic).
    fn topic(&self) -> Option<&str> {
        None
    }

    /// A path for this message, overriding the client's [`PathSource`](crate::PathSource).
    fn path(&self) -> Option<&str> {
        None
    }

    /// The record key, sent as a header when the client is told to
    /// ([`ClientBuilder::key_as_header`](crate::ClientBuilder::key_as_header));
    /// `None` when the message has none. Read only then: a client that does
    /// not send keys never calls it.
    fn key(&self) -> Option<&[u8]> {
        None
    }
}

/// A message given as header pairs, for Kafka clients other than rdkafka and
/// for tests.
///
/// ```
/// use telepresence_kafka::HeaderList;
///
/// let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice")), ("trace", None)];
/// let message = HeaderList::new(headers)
///     .topic("orders")
///     .path("/orders/new")
///     .key(b"tenant-42:order-7");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct HeaderList<'a> {
    headers: &'a [(&'a str, Option<&'a [u8]>)],
    topic: Option<&'a str>,
    path: Option<&'a str>,
    key: Option<&'a [u8]>,
}

impl<'a> HeaderList<'a> {
    /// A message with these headers, no topic, no key and no path of its own.
    pub fn new(headers: &'a [(&'a str, Option<&'a [u8]>)]) -> Self {
        Self {
            headers,
            ..Self::default()
        }
    }

    /// Sets the topic.
    pub fn topic(mut self, topic: &'a str) -> Self {
        self.topic = Some(topic);
        self
    }

    /// Sets the path, overriding the client's path source.
    pub fn path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    /// Sets the record key.
    pub fn key(mut self, key: &'a [u8]) -> Self {
        self.key = Some(key);
        self
    }
}

impl KafkaMessage for HeaderList<'_> {
    fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        self.headers.iter().copied()
    }

    fn topic(&self) -> Option<&str> {
        self.topic
    }

    fn path(&self) -> Option<&str> {
        self.path
    }

    fn key(&self) -> Option<&[u8]> {
        self.key
    }
}

#[cfg(feature = "rdkafka")]
impl<M: rdkafka::message::Message> KafkaMessage for M {
    fn headers(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> {
        use rdkafka::message::Headers;
        rdkafka::message::Message::headers(self)
            .into_iter()
            .flat_map(|headers| headers.iter())
            .map(|header| (header.key, header.value))
    }

    fn topic(&self) -> Option<&str> {
        Some(rdkafka::message::Message::topic(self))
    }

    fn key(&self) -> Option<&[u8]> {
        rdkafka::message::Message::key(self)
    }
}

/// What a [`PathSource::Custom`](crate::PathSource::Custom) function sees of a message.
#[derive(Clone, Copy, Debug)]
pub struct MessageView<'a> {
    pub(crate) topic: Option<&'a str>,
    pub(crate) headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> MessageView<'a> {
    /// The topic, when known.
    pub fn topic(&self) -> Option<&'a str> {
        self.topic
    }

    /// The first value of a header (case-insensitive name); a null value is empty.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.unwrap_or_default())
    }

    /// Every header, in order.
    pub fn headers(&self) -> &'a [(&'a str, Option<&'a [u8]>)] {
        self.headers
    }
}
