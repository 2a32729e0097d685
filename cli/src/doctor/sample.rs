//! The sample message `/intercept-info` is asked about: headers given with
//! `-H`, a path, a container port.

use std::fmt;

/// One `-H` header, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// What is asked about, for the lines that quote it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample<'a> {
    pub(crate) headers: &'a [SampleHeader],
    pub(crate) path: Option<&'a str>,
    pub(crate) container_port: Option<u16>,
}

impl fmt::Display for Sample<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .headers
            .iter()
            .map(|h| format!("{}={}", h.name, h.value))
            .collect();
        if parts.is_empty() {
            parts.push("a message without headers".to_owned());
        }
        if let Some(path) = self.path {
            parts.push(format!("path {path}"));
        }
        if let Some(port) = self.container_port {
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
        let headers = [header("x-dev", "alice"), header("x-team", "a")];
        let sample = Sample {
            headers: &headers,
            path: Some("/api"),
            container_port: Some(8080),
        };
        assert_eq!(
            sample.to_string(),
            "x-dev=alice, x-team=a, path /api, container port 8080"
        );
        let bare = Sample {
            headers: &[],
            path: None,
            container_port: None,
        };
        assert_eq!(bare.to_string(), "a message without headers");
    }
}
