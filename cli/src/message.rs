//! A sample message as the commands take it: headers, and the path and
//! container port its consumer sends with it.

use std::fmt;

use serde::Serialize;
use telepresence_kafka::HeaderList;

/// The flags that describe one message.
#[derive(Clone, Debug, Default, Serialize, clap::Args)]
pub(crate) struct MessageArgs {
    /// A header of the message: NAME=VALUE or 'NAME: VALUE' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub(crate) headers: Vec<SampleHeader>,

    /// The path its consumer sends (`path`), for intercepts with path filters
    #[arg(long, value_name = "PATH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,

    /// The container port its consumer sends (`containerPort`), in place of
    /// TELEPRESENCE_KAFKA_CONTAINER_PORT
    #[arg(long, value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,

    /// The message's record key, for a consumer that sends it as a header
    /// (--key-as-header)
    #[arg(long, value_name = "KEY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<String>,
}

impl MessageArgs {
    /// The headers as the SDK takes a message's.
    pub(crate) fn kafka_headers(&self) -> Vec<(&str, Option<&[u8]>)> {
        self.headers
            .iter()
            .map(|h| (h.name.as_str(), Some(h.value.as_bytes())))
            .collect()
    }

    /// The message as the SDK takes it: `headers` (from
    /// [`kafka_headers`](Self::kafka_headers), perhaps with more) and the key.
    pub(crate) fn message<'a>(
        &'a self,
        headers: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> HeaderList<'a> {
        keyed(headers, self.key.as_deref().map(str::as_bytes))
    }
}

/// A message of these headers, with this record key if it has one.
pub(crate) fn keyed<'a>(
    headers: &'a [(&'a str, Option<&'a [u8]>)],
    key: Option<&'a [u8]>,
) -> HeaderList<'a> {
    let message = HeaderList::new(headers);
    match key {
        Some(key) => message.key(key),
        None => message,
    }
}

/// One `-H` header, as given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct SampleHeader {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// Parses `NAME=VALUE` (as `telepresence intercept --http-header` takes it)
/// or `NAME: VALUE` (as curl and HTTP write it). A header name can hold
/// neither `=` nor `:`, so the first of them ends it, and the value keeps
/// any later one.
pub(crate) fn parse_header(text: &str) -> Result<SampleHeader, String> {
    let bad = |reason: &str| format!("`{text}` {reason}");
    let Some(at) = text.find(['=', ':']) else {
        return Err(bad("is not NAME=VALUE or 'NAME: VALUE'"));
    };
    let name = &text[..at];
    let value = match text.as_bytes()[at] {
        b':' => text[at + 1..].trim_start_matches([' ', '\t']),
        _ => &text[at + 1..],
    };
    if name.is_empty() {
        return Err(bad("has no header name before '=' or ':'"));
    }
    http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| bad(&format!("`{name}` is not a valid HTTP header name")))?;
    http::HeaderValue::from_str(value)
        .map_err(|_| bad("the value has control characters, which HTTP cannot carry"))?;
    Ok(SampleHeader {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

/// The message as the lines that quote it read it.
impl fmt::Display for MessageArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .headers
            .iter()
            .map(|h| format!("{}={}", h.name, h.value))
            .collect();
        if parts.is_empty() {
            parts.push("a message without headers".to_owned());
        }
        if let Some(key) = &self.key {
            parts.push(format!("key {key}"));
        }
        if let Some(path) = &self.path {
            parts.push(format!("path {path}"));
        }
        if let Some(port) = self.port {
            parts.push(format!("container port {port}"));
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, value: &str) -> SampleHeader {
        SampleHeader {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn both_spellings_are_read() {
        assert_eq!(parse_header("x-dev=alice"), Ok(header("x-dev", "alice")));
        assert_eq!(parse_header("x-dev: alice"), Ok(header("x-dev", "alice")));
        assert_eq!(parse_header("x-dev:alice"), Ok(header("x-dev", "alice")));
        assert_eq!(parse_header("x-dev="), Ok(header("x-dev", "")));
        assert_eq!(parse_header("x-q=a=b"), Ok(header("x-q", "a=b")));
        assert_eq!(parse_header("x-q: a=b"), Ok(header("x-q", "a=b")));
        assert_eq!(parse_header("x-t=a: b"), Ok(header("x-t", "a: b")));
        assert_eq!(parse_header("x-s= a "), Ok(header("x-s", " a ")));
    }

    #[test]
    fn every_refusal_quotes_the_value() {
        for (text, reason) in [
            ("x-dev", "is not NAME=VALUE"),
            ("=alice", "has no header name"),
            (": alice", "has no header name"),
            ("x dev=alice", "`x dev` is not a valid HTTP header name"),
            ("x-dev=a\nb", "control characters"),
        ] {
            let err = parse_header(text).unwrap_err();
            assert!(err.starts_with(&format!("`{text}`")), "{err}");
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn a_sample_reads_as_it_was_given() {
        let sample = MessageArgs {
            headers: vec![header("x-dev", "alice"), header("x-team", "a")],
            path: Some("/api".into()),
            port: Some(8080),
            key: None,
        };
        assert_eq!(
            sample.to_string(),
            "x-dev=alice, x-team=a, path /api, container port 8080"
        );
        let keyed = MessageArgs {
            key: Some("tenant-42".to_owned()),
            ..MessageArgs::default()
        };
        assert_eq!(
            keyed.to_string(),
            "a message without headers, key tenant-42"
        );
        assert_eq!(
            MessageArgs::default().to_string(),
            "a message without headers"
        );
    }
}
