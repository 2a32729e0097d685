//! How answers look on the wire in each Telepresence version.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The wire format of a Telepresence version.
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
/// `encoding/json/v2`, which does neither.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
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

    pub(crate) fn boolean(self, value: bool) -> Answer {
        let body: &'static [u8] = match (self, value) {
            (Self::V2_5, true) => b"true\n",
            (Self::V2_5, false) => b"false\n",
            (_, true) => b"true",
            (_, false) => b"false",
        };
        self.success(Bytes::from_static(body))
    }

    pub(crate) fn intercept_info(
        self,
        intercepted: bool,
        client_side: bool,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Answer {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Info<'a> {
            intercepted: bool,
            client_side: bool,
            #[serde(skip_serializing_if = "Option::is_none")]
            metadata: Option<&'a BTreeMap<String, String>>,
        }
        let info = Info {
            intercepted,
            client_side,
            metadata: metadata.filter(|m| !m.is_empty()),
        };
        self.success(Bytes::from(self.json(&info)))
    }

    /// A JSON body as this version's encoder writes it.
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

    /// `200` with this body and the version's content type.
    pub(crate) fn success(self, body: Bytes) -> Answer {
        let content_type = match self {
            Self::V2_4 => "text/plain",
            _ => "application/json",
        };
        Answer {
            status: StatusCode::OK,
            content_type: Some(content_type),
            nosniff: false,
            location: None,
            body,
        }
    }

    /// An error answer: JSON `{"error":...}`, or Go's `http.Error` in 2.4.
    pub(crate) fn error(self, status: StatusCode, message: &str) -> Answer {
        match self {
            Self::V2_4 => Answer::go_http_error(status, message),
            _ => {
                #[derive(Serialize)]
                struct ErrorBody<'a> {
                    error: &'a str,
                }
                Answer {
                    status,
                    content_type: Some("application/json"),
                    nosniff: false,
                    location: None,
                    body: Bytes::from(self.json(&ErrorBody { error: message })),
                }
            }
        }
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

/// An answer before it becomes a response, so the journal can keep its body.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) content_type: Option<&'static str>,
    pub(crate) nosniff: bool,
    /// `Location`, for redirects.
    pub(crate) location: Option<String>,
    pub(crate) body: Bytes,
}

impl Answer {
    /// `200`, empty body, no content type: `/healthz`.
    pub(crate) fn empty_ok() -> Self {
        Self {
            status: StatusCode::OK,
            content_type: None,
            nosniff: false,
            location: None,
            body: Bytes::new(),
        }
    }

    /// Go's `http.Error`: plain text, a trailing newline, and `nosniff`.
    pub(crate) fn go_http_error(status: StatusCode, message: &str) -> Self {
        Self {
            status,
            content_type: Some("text/plain; charset=utf-8"),
            nosniff: true,
            location: None,
            body: Bytes::from(format!("{message}\n")),
        }
    }

    /// Go's `http.Redirect` with `301 Moved Permanently`.
    pub(crate) fn go_redirect(method: &http::Method, location: &str) -> Self {
        let (content_type, body) = if *method == http::Method::GET || *method == http::Method::HEAD
        {
            let escaped = location
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;");
            (
                Some("text/html; charset=utf-8"),
                Bytes::from(format!("<a href=\"{escaped}\">Moved Permanently</a>.\n\n")),
            )
        } else {
            (None, Bytes::new())
        };
        Self {
            status: StatusCode::MOVED_PERMANENTLY,
            content_type,
            nosniff: false,
            location: Some(location.to_owned()),
            body,
        }
    }

    /// Go's `http.NotFound`.
    pub(crate) fn not_found() -> Self {
        Self::go_http_error(StatusCode::NOT_FOUND, "404 page not found")
    }

    pub(crate) fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.body));
        *res.status_mut() = self.status;
        if let Some(content_type) = self.content_type {
            res.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Some(location) = self
            .location
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            res.headers_mut().insert(header::LOCATION, location);
        }
        if self.nosniff {
            res.headers_mut().insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
        }
        res
    }
}

impl fmt::Display for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Wire {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "2.25" => Ok(Self::V2_25),
            "2.5" => Ok(Self::V2_5),
            "2.4" => Ok(Self::V2_4),
            other => Err(format!(
                "unknown wire format `{other}` (expected 2.25, 2.5 or 2.4)"
            )),
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
    use http_body_util::BodyExt;

    async fn parts(answer: Answer) -> (u16, Option<String>, Vec<u8>) {
        let res = answer.into_response();
        let status = res.status().as_u16();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, ct, body)
    }

    #[tokio::test]
    async fn booleans_per_version() {
        let json = Some("application/json".to_owned());
        assert_eq!(
            parts(Wire::V2_25.boolean(true)).await,
            (200, json.clone(), b"true".to_vec())
        );
        assert_eq!(
            parts(Wire::V2_5.boolean(false)).await,
            (200, json, b"false\n".to_vec())
        );
        assert_eq!(
            parts(Wire::V2_4.boolean(true)).await,
            (200, Some("text/plain".to_owned()), b"true".to_vec())
        );
    }

    #[tokio::test]
    async fn intercept_info_keeps_key_order_and_omits_empty_metadata() {
        let meta: BTreeMap<String, String> =
            [("b".into(), "c".into()), ("a".into(), "b".into())].into();
        let (_, _, body) = parts(Wire::V2_25.intercept_info(true, true, Some(&meta))).await;
        assert_eq!(
            body,
            br#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b","b":"c"}}"#
        );
        let (_, _, body) =
            parts(Wire::V2_25.intercept_info(true, false, Some(&BTreeMap::new()))).await;
        assert_eq!(body, br#"{"intercepted":true,"clientSide":false}"#);
        let (_, _, body) = parts(Wire::V2_5.intercept_info(false, true, None)).await;
        assert_eq!(body, b"{\"intercepted\":false,\"clientSide\":true}\n");
    }

    #[tokio::test]
    async fn errors_per_version() {
        let (status, ct, body) =
            parts(Wire::V2_25.error(StatusCode::BAD_REQUEST, "containerPort: x")).await;
        assert_eq!(
            (status, ct.as_deref(), &body[..]),
            (
                400,
                Some("application/json"),
                &br#"{"error":"containerPort: x"}"#[..]
            )
        );
        let (_, _, body) = parts(Wire::V2_5.error(StatusCode::BAD_REQUEST, "e")).await;
        assert_eq!(body, b"{\"error\":\"e\"}\n");
        let answer = Wire::V2_4.error(StatusCode::BAD_REQUEST, "e");
        assert!(answer.nosniff);
        let (_, ct, body) = parts(answer).await;
        assert_eq!(
            (ct.as_deref(), &body[..]),
            (Some("text/plain; charset=utf-8"), &b"e\n"[..])
        );
    }

    #[tokio::test]
    async fn go_v1_escapes_html_and_line_separators_and_v2_does_not() {
        let meta: BTreeMap<String, String> =
            [("k<&>".into(), "a<b>&c\u{2028}d\u{2029}é\"\\".into())].into();
        let (_, _, body) = parts(Wire::V2_5.intercept_info(true, true, Some(&meta))).await;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"intercepted\":true,\"clientSide\":true,\"metadata\":\
             {\"k\\u003c\\u0026\\u003e\":\"a\\u003cb\\u003e\\u0026c\\u2028d\\u2029é\\\"\\\\\"}}\n"
        );
        let (_, _, body) = parts(Wire::V2_25.intercept_info(true, true, Some(&meta))).await;
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"intercepted\":true,\"clientSide\":true,\"metadata\":\
             {\"k<&>\":\"a<b>&c\u{2028}d\u{2029}é\\\"\\\\\"}}"
        );
        let (_, _, body) =
            parts(Wire::V2_5.error(StatusCode::BAD_REQUEST, "parsing \"<x>\"")).await;
        assert_eq!(body, b"{\"error\":\"parsing \\\"\\u003cx\\u003e\\\"\"}\n");
    }

    #[test]
    fn parses_names_and_yaml_numbers() {
        for wire in Wire::ALL {
            assert_eq!(wire.as_str().parse::<Wire>(), Ok(wire));
            let quoted: Wire = serde_norway::from_str(&format!("\"{wire}\"")).unwrap();
            let bare: Wire = serde_norway::from_str(wire.as_str()).unwrap();
            assert_eq!((quoted, bare), (wire, wire));
        }
        assert!("2.6".parse::<Wire>().is_err());
        assert!(serde_norway::from_str::<Wire>("[1]").is_err());
    }
}
