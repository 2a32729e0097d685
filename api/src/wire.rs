//! How answers look on the wire in each Telepresence release.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::answer::{ErrorBody, InterceptInfoRef};
use crate::error::UnknownName;

/// The wire format of a Telepresence release.
///
/// | format | content type | `/consume-here` body | JSON bodies | error body |
/// | --- | --- | --- | --- | --- |
/// | `2.25` (2.25 and later) | `application/json` | `true` | as is | JSON |
/// | `2.5` (2.5 to 2.24) | `application/json` | `true\n` | newline, `<>&` escaped | JSON |
/// | `2.4` | `text/plain` | `true` | (none) | plain text |
///
/// 2.5 to 2.24 wrote JSON with Go's `json.Encoder`, which ends each value
/// with a newline and writes `<`, `>`, `&`, U+2028 and U+2029 as `\u003c`,
/// `\u003e`, `\u0026`, `\u2028`, `\u2029`; 2.25 and later write with
/// `encoding/json/v2`, which does neither. A client that trims white space
/// and reads JSON reads all three.
///
/// ```
/// use telepresence_api::Wire;
///
/// assert_eq!(Wire::V2_5.consume_here_body(true), b"true\n");
/// assert_eq!(Wire::V2_4.content_type(), "text/plain");
/// assert_eq!(Wire::V2_5.error_body("a<b"), b"{\"error\":\"a\\u003cb\"}\n");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Wire {
    /// Telepresence 2.25 and later.
    #[default]
    V2_25,
    /// Telepresence 2.5 to 2.24.
    V2_5,
    /// Telepresence 2.4.
    V2_4,
}

impl Wire {
    /// Every format, newest first.
    pub const ALL: [Wire; 3] = [Wire::V2_25, Wire::V2_5, Wire::V2_4];

    /// `2.25`, `2.5` or `2.4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V2_25 => "2.25",
            Self::V2_5 => "2.5",
            Self::V2_4 => "2.4",
        }
    }

    /// The content type of a successful answer.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::V2_4 => "text/plain",
            _ => "application/json",
        }
    }

    /// The body of a `/consume-here` answer.
    pub fn consume_here_body(self, consume: bool) -> &'static [u8] {
        match (self, consume) {
            (Self::V2_5, true) => b"true\n",
            (Self::V2_5, false) => b"false\n",
            (_, true) => b"true",
            (_, false) => b"false",
        }
    }

    /// The body of an `/intercept-info` answer; empty metadata is left out.
    pub fn intercept_info_body(
        self,
        intercepted: bool,
        client_side: bool,
        metadata: &BTreeMap<String, String>,
    ) -> Vec<u8> {
        self.json(&InterceptInfoRef {
            intercepted,
            client_side,
            metadata: Some(metadata).filter(|m| !m.is_empty()),
        })
    }

    /// The body of an error answer: JSON `{"error":...}`, or in 2.4 Go's
    /// `http.Error` text (the message and a newline, served as
    /// `text/plain; charset=utf-8`).
    pub fn error_body(self, message: &str) -> Vec<u8> {
        match self {
            Self::V2_4 => format!("{message}\n").into_bytes(),
            _ => self.json(&ErrorBody {
                error: message.to_owned(),
            }),
        }
    }

    /// A JSON body as this release's encoder writes it.
    fn json(self, value: &impl Serialize) -> Vec<u8> {
        let mut body = Vec::with_capacity(64);
        let written = if self == Self::V2_5 {
            let mut encoder = serde_json::Serializer::with_formatter(&mut body, GoEncoderFormatter);
            value.serialize(&mut encoder)
        } else {
            value.serialize(&mut serde_json::Serializer::new(&mut body))
        };
        written.expect("strings and booleans always serialize");
        if self == Self::V2_5 {
            body.push(b'\n');
        }
        body
    }
}

/// Go's `encoding/json` (v1) string escaping on top of serde_json's: HTML's
/// `<`, `>`, `&` and the JavaScript line terminators U+2028 and U+2029.
struct GoEncoderFormatter;

impl serde_json::ser::Formatter for GoEncoderFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escaped.as_bytes())?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Wire {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "2.25" => Ok(Self::V2_25),
            "2.5" => Ok(Self::V2_5),
            "2.4" => Ok(Self::V2_4),
            other => Err(UnknownName::new("wire format", other, "2.25, 2.5 or 2.4")),
        }
    }
}

impl Serialize for Wire {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Accepts `"2.25"` and also an unquoted YAML number such as `2.5`.
impl<'de> Deserialize<'de> for Wire {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct WireVisitor;
        impl serde::de::Visitor<'_> for WireVisitor {
            type Value = Wire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("2.25, 2.5 or 2.4")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Wire, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Wire, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Wire, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Wire, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(WireVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_per_release() {
        assert_eq!(Wire::V2_25.consume_here_body(true), b"true");
        assert_eq!(Wire::V2_5.consume_here_body(false), b"false\n");
        assert_eq!(Wire::V2_4.consume_here_body(true), b"true");
        assert_eq!(Wire::V2_25.content_type(), "application/json");
        assert_eq!(Wire::V2_5.content_type(), "application/json");
        assert_eq!(Wire::V2_4.content_type(), "text/plain");
    }

    #[test]
    fn intercept_info_keeps_key_order_and_omits_empty_metadata() {
        let meta: BTreeMap<String, String> =
            [("b".into(), "c".into()), ("a".into(), "b".into())].into();
        assert_eq!(
            Wire::V2_25.intercept_info_body(true, true, &meta),
            br#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b","b":"c"}}"#
        );
        assert_eq!(
            Wire::V2_25.intercept_info_body(true, false, &BTreeMap::new()),
            br#"{"intercepted":true,"clientSide":false}"#
        );
        assert_eq!(
            Wire::V2_5.intercept_info_body(false, true, &BTreeMap::new()),
            b"{\"intercepted\":false,\"clientSide\":true}\n"
        );
    }

    #[test]
    fn errors_per_release() {
        assert_eq!(
            Wire::V2_25.error_body("containerPort: x"),
            br#"{"error":"containerPort: x"}"#
        );
        assert_eq!(Wire::V2_5.error_body("e"), b"{\"error\":\"e\"}\n");
        assert_eq!(Wire::V2_4.error_body("e"), b"e\n");
    }

    #[test]
    fn go_v1_escapes_html_and_line_separators_and_v2_does_not() {
        let meta: BTreeMap<String, String> =
            [("k<&>".into(), "a<b>&c\u{2028}d\u{2029}é\"\\".into())].into();
        assert_eq!(
            String::from_utf8(Wire::V2_5.intercept_info_body(true, true, &meta)).unwrap(),
            "{\"intercepted\":true,\"clientSide\":true,\"metadata\":\
             {\"k\\u003c\\u0026\\u003e\":\"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029é\\\"\\\\\"}}\n"
        );
        assert_eq!(
            String::from_utf8(Wire::V2_25.intercept_info_body(true, true, &meta)).unwrap(),
            "{\"intercepted\":true,\"clientSide\":true,\"metadata\":\
             {\"k<&>\":\"a<b>&c\u{2028}d\u{2029}é\\\"\\\\\"}}"
        );
        assert_eq!(
            Wire::V2_5.error_body("parsing \"<x>\""),
            b"{\"error\":\"parsing \\\"\\u003cx\\u003e\\\"\"}\n"
        );
    }

    #[test]
    fn parses_names_and_yaml_numbers() {
        for wire in Wire::ALL {
            assert_eq!(wire.as_str().parse::<Wire>(), Ok(wire));
            let quoted: Wire = serde_norway::from_str(&format!("\"{wire}\"")).unwrap();
            let bare: Wire = serde_norway::from_str(wire.as_str()).unwrap();
            assert_eq!((quoted, bare), (wire, wire));
        }
        assert_eq!(
            "2.6".parse::<Wire>().unwrap_err().to_string(),
            "unknown wire format `2.6` (expected 2.25, 2.5 or 2.4)"
        );
        assert!(serde_norway::from_str::<Wire>("[1]").is_err());
    }
}
