//! Answers as responses: each release's wire format (from `telepresence_api::Wire`)
//! with the status, the headers and Go's own error pages.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use telepresence_api::Wire;

/// Answers in a release's wire format, ready for the journal and the response.
pub(crate) trait WireAnswers {
    /// A `/consume-here` answer.
    fn boolean(self, value: bool) -> Answer;
    /// An `/intercept-info` answer.
    fn intercept_info(
        self,
        intercepted: bool,
        client_side: bool,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Answer;
    /// `200` with this body and the release's content type.
    fn success(self, body: Bytes) -> Answer;
    /// An error answer: JSON `{"error":...}`, or Go's `http.Error` in 2.4.
    fn error(self, status: StatusCode, message: &str) -> Answer;
}

impl WireAnswers for Wire {
    fn boolean(self, value: bool) -> Answer {
        self.success(Bytes::from_static(self.consume_here_body(value)))
    }

    fn intercept_info(
        self,
        intercepted: bool,
        client_side: bool,
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Answer {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        let body = self.intercept_info_body(intercepted, client_side, metadata.unwrap_or(&NONE));
        self.success(Bytes::from(body))
    }

    fn success(self, body: Bytes) -> Answer {
        Answer {
            status: StatusCode::OK,
            content_type: Some(self.content_type()),
            nosniff: false,
            location: None,
            body,
        }
    }

    fn error(self, status: StatusCode, message: &str) -> Answer {
        match self {
            Wire::V2_4 => Answer::go_http_error(status, message),
            _ => Answer {
                status,
                content_type: Some("application/json"),
                nosniff: false,
                location: None,
                body: Bytes::from(self.error_body(message)),
            },
        }
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
}
