//! Where the `path` parameter of a query comes from.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::message::MessageView;

/// Where the `path` parameter of a query comes from.
///
/// A message's own [`KafkaMessage::path`](crate::KafkaMessage::path) takes
/// precedence over all of these. The builder has a shortcut for each
/// ([`fixed_path`](crate::ClientBuilder::fixed_path),
/// [`path_from_topic`](crate::ClientBuilder::path_from_topic), ...).
///
/// ```
/// use std::sync::Arc;
/// use telepresence_kafka::{Client, PathSource};
///
/// let tp = Client::builder()
///     .api_url("http://localhost:9980")
///     .path(PathSource::Custom(Arc::new(|message| {
///         message.topic().map(|topic| format!("/{topic}"))
///     })))
///     .build()?;
/// # Ok::<(), telepresence_kafka::Error>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum PathSource {
    /// No path (the server sees an empty path).
    #[default]
    None,
    /// The same path for every message.
    Fixed(String),
    /// The message's topic.
    Topic,
    /// The first value of this message header (read as UTF-8, lossily).
    Header(String),
    /// Computed from the message.
    Custom(PathFn),
}

/// A function that computes a message's path, for [`PathSource::Custom`].
pub type PathFn = Arc<dyn Fn(&MessageView<'_>) -> Option<String> + Send + Sync>;

impl fmt::Debug for PathSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Fixed(p) => f.debug_tuple("Fixed").field(p).finish(),
            Self::Topic => f.write_str("Topic"),
            Self::Header(h) => f.debug_tuple("Header").field(h).finish(),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl PathSource {
    /// The path for this message, borrowed when it can be.
    pub(super) fn resolve<'m>(&'m self, view: &MessageView<'m>) -> Option<Cow<'m, str>> {
        match self {
            Self::Header(name) => view.header(name).map(String::from_utf8_lossy),
            Self::Custom(f) => f(view).map(Cow::Owned),
            _ => self.resolve_from_topic(|| view.topic())?,
        }
    }

    /// The path of a message with this topic, when the source does not read
    /// headers (`None` when it does).
    pub(super) fn resolve_from_topic<'m>(
        &'m self,
        topic: impl FnOnce() -> Option<&'m str>,
    ) -> Option<Option<Cow<'m, str>>> {
        match self {
            Self::None => Some(None),
            Self::Fixed(path) => Some(Some(Cow::Borrowed(path))),
            Self::Topic => Some(topic().map(Cow::Borrowed)),
            Self::Header(_) | Self::Custom(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_come_from_the_configured_source() {
        let headers: &[(&str, Option<&[u8]>)] = &[("x-path", Some(b"/h")), ("x-path", Some(b"/2"))];
        let view = MessageView {
            topic: Some("orders"),
            headers,
        };
        let resolve = |source: PathSource| source.resolve(&view).map(Cow::into_owned);
        assert_eq!(resolve(PathSource::None), None);
        assert_eq!(resolve(PathSource::Fixed("/f".into())), Some("/f".into()));
        assert_eq!(resolve(PathSource::Topic), Some("orders".into()));
        assert_eq!(
            resolve(PathSource::Header("X-Path".into())),
            Some("/h".into())
        );
        assert_eq!(resolve(PathSource::Header("missing".into())), None);
        let custom = PathSource::Custom(Arc::new(|v: &MessageView<'_>| {
            v.topic().map(|t| format!("/{t}"))
        }));
        assert_eq!(resolve(custom), Some("/orders".into()));
    }
}
