//! A sample message as the commands take it: headers, and the path and
//! container port its consumer sends with it.

use std::fmt;

use serde::Serialize;

/// The flags that describe one message.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct MessageArgs {
    /// A header of the message: NAME=VALUE or 'NAME: VALUE' (repeatable)
    #[arg(short = 'H', long = "header", value_name = "NAME=VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,

    /// The path its consumer sends (`path`; the SDK's path source)
    #[arg(long, value_name = "P")]
    path: Option<String>,

    /// The container port its consumer sends (`containerPort`;
    /// TELEPRESENCE_KAFKA_CONTAINER_PORT)
    #[arg(long, value_name = "N")]
    port: Option<u16>,
}

impl MessageArgs {
    pub(crate) fn sample(&self) -> anyhow::Result<SampleMessage> {
        Ok(SampleMessage {
            headers: self.headers.clone(),
            path: self.path.clone(),
            port: self.port,
        })
    }
}

/// One message's headers, path and container port.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SampleMessage {
    /// In order; names as given.
    pub(crate) headers: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) port: Option<u16>,
}

impl fmt::Display for SampleMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.headers.is_empty() {
            f.write_str("no headers")?;
        }
        for (index, (name, value)) in self.headers.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}: {value:?}")?;
        }
        if let Some(path) = &self.path {
            write!(f, "; path {path:?}")?;
        }
        if let Some(port) = self.port {
            write!(f, "; containerPort {port}")?;
        }
        Ok(())
    }
}

/// `NAME=VALUE`, or `NAME: VALUE` as curl writes it.
pub(crate) fn parse_header(text: &str) -> Result<(String, String), String> {
    let at = text
        .find(['=', ':'])
        .ok_or_else(|| format!("`{text}` has no `=` or `:`; write NAME=VALUE or 'NAME: VALUE'"))?;
    let name = text[..at].trim();
    let value = if text[at..].starts_with(':') {
        text[at + 1..].trim_start()
    } else {
        &text[at + 1..]
    };
    if name.is_empty() {
        return Err(format!("`{text}` has an empty header name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_read_like_curl_and_like_telepresence() {
        let parsed = |t| parse_header(t).unwrap();
        assert_eq!(parsed("x-dev=alice"), ("x-dev".into(), "alice".into()));
        assert_eq!(parsed("x-dev: alice"), ("x-dev".into(), "alice".into()));
        assert_eq!(parsed("x=a=b"), ("x".into(), "a=b".into()));
        assert_eq!(parsed("x="), ("x".into(), String::new()));
        assert!(parse_header("x-dev").unwrap_err().contains("`x-dev`"));
        assert!(
            parse_header("=v")
                .unwrap_err()
                .contains("empty header name")
        );
    }
}
