//! The Telepresence endpoints: `/healthz`, `/consume-here`, `/intercept-info`,
//! and Go's 404 for every other path.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{Method, StatusCode};

use crate::app::App;
use crate::decision::{Query, Side};
use crate::fault::API_ENDPOINTS;
use crate::form;
use crate::journal::{self, Journal, RawEntry};
use crate::serve::Connection;
use crate::wire::Answer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    ConsumeHere,
    InterceptInfo,
    Unknown,
}

pub(crate) async fn healthz(State(app): State<Arc<App>>, req: Request) -> Response {
    handle(&app, Endpoint::Healthz, req).await
}

pub(crate) async fn consume_here(State(app): State<Arc<App>>, req: Request) -> Response {
    handle(&app, Endpoint::ConsumeHere, req).await
}

/// Telepresence 2.4 had no `/intercept-info`: Go's 404, like any unknown path.
pub(crate) async fn intercept_info(State(app): State<Arc<App>>, req: Request) -> Response {
    let endpoint = if app.rules.serves_intercept_info {
        Endpoint::InterceptInfo
    } else {
        Endpoint::Unknown
    };
    handle(&app, endpoint, req).await
}

pub(crate) async fn not_found(State(app): State<Arc<App>>, req: Request) -> Response {
    handle(&app, Endpoint::Unknown, req).await
}

async fn handle(app: &App, endpoint: Endpoint, req: Request) -> Response {
    let unix_ms = Journal::now_ms();
    let (parts, body) = req.into_parts();
    let injection = app.faults.next(parts.uri.path(), &parts.headers);
    let mut fault = None;
    if let Some(injection) = injection {
        if let Some(delay) = injection.delay {
            tokio::time::sleep(delay).await;
        }
        if injection.close {
            record(
                app,
                unix_ms,
                &parts,
                &[],
                &[],
                None,
                None,
                Some(injection.label),
            );
            return close_connection(&parts).await;
        }
        if let Some(status) = injection.status {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let answer = app.rules.wire.error(
                status,
                &format!("mock fault: injected status {}", status.as_u16()),
            );
            let fault = Some(injection.label);
            record(app, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
            return answer.into_response();
        }
        if let Some(body) = injection.body {
            let answer = app.rules.wire.success(Bytes::from(body));
            let fault = Some(injection.label);
            record(app, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
            return answer.into_response();
        }
        fault = Some(injection.label);
    }

    let (path, port, answer, matched) = match endpoint {
        Endpoint::Healthz => (
            Cow::Borrowed(&[][..]),
            Cow::Borrowed(&[][..]),
            Answer::empty_ok(),
            None,
        ),
        Endpoint::Unknown => {
            let answer = match go_clean_path(parts.uri.path()) {
                Some(clean) if parts.method != Method::CONNECT => {
                    let location = match parts.uri.query() {
                        Some(query) => format!("{clean}?{query}"),
                        None => clean,
                    };
                    Answer::go_redirect(&parts.method, &location)
                }
                _ => Answer::not_found(),
            };
            (Cow::Borrowed(&[][..]), Cow::Borrowed(&[][..]), answer, None)
        }
        Endpoint::ConsumeHere | Endpoint::InterceptInfo => {
            let form_body = match read_form_body(app, &parts, body).await {
                Ok(bytes) => bytes,
                Err(answer) => {
                    record(app, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
                    return answer.into_response();
                }
            };
            let query = parts.uri.query().unwrap_or_default().as_bytes();
            let path = form::form_value(&form_body, query, "path").into_owned();
            let port = form::form_value(&form_body, query, "containerPort").into_owned();
            let (answer, matched) = decide(app, endpoint, &parts, &path, &port);
            (Cow::Owned(path), Cow::Owned(port), answer, matched)
        }
    };
    record(
        app,
        unix_ms,
        &parts,
        &path,
        &port,
        Some(&answer),
        matched,
        fault,
    );
    tracing::debug!(
        method = %parts.method,
        uri = %parts.uri,
        status = answer.status.as_u16(),
        answer = %String::from_utf8_lossy(&answer.body),
        "answered"
    );
    answer.into_response()
}

/// The answer, and the ID of the intercept that matched.
fn decide(
    app: &App,
    endpoint: Endpoint,
    parts: &Parts,
    path: &[u8],
    port: &[u8],
) -> (Answer, Option<Arc<str>>) {
    let container_port = match form::parse_container_port(port) {
        Ok(port) => port,
        Err(reason) => {
            let answer = app
                .rules
                .wire
                .error(StatusCode::BAD_REQUEST, &format!("containerPort: {reason}"));
            return (answer, None);
        }
    };
    let intercepts = app.intercept_set();
    let decision = intercepts.decide(
        app.side,
        &Query {
            headers: &parts.headers,
            path,
            container_port,
        },
    );
    let answer = match endpoint {
        Endpoint::ConsumeHere => app.rules.wire.boolean(decision.consume_here(app.side)),
        _ => app.rules.wire.intercept_info(
            decision.intercepted(),
            app.side == Side::Client,
            decision.metadata(),
        ),
    };
    (answer, decision.matched.map(|i| i.id.clone()))
}

/// The body, when Go would read it as a form; otherwise nothing.
async fn read_form_body(app: &App, parts: &Parts, body: Body) -> Result<Bytes, Answer> {
    if !form::has_form_body(&parts.method, &parts.headers) {
        return Ok(Bytes::new());
    }
    let limits = &app.limits;
    match tokio::time::timeout(
        limits.read_timeout,
        axum::body::to_bytes(body, limits.max_body_bytes),
    )
    .await
    {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(Answer::go_http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "http: request body too large",
        )),
        Err(_) => Err(Answer::go_http_error(
            StatusCode::REQUEST_TIMEOUT,
            "http: request body read timeout",
        )),
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    app: &App,
    unix_ms: u64,
    parts: &Parts,
    path: &[u8],
    port: &[u8],
    answer: Option<&Answer>,
    matched: Option<Arc<str>>,
    fault: Option<String>,
) {
    if !app.journal.is_enabled() {
        return;
    }
    let path_asked = parts.uri.path();
    let endpoint = match API_ENDPOINTS.iter().find(|known| **known == path_asked) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(path_asked.to_owned()),
    };
    app.journal.record(RawEntry {
        unix_ms,
        connection: parts.extensions.get::<Connection>().map_or(0, |c| c.id),
        method: parts.method.clone(),
        endpoint,
        data: journal::pack(path, port, &parts.headers),
        status: answer.map(|a| a.status),
        answer: answer.map(|a| a.body.clone()).unwrap_or_default(),
        matched,
        fault,
    });
}

/// Drops the connection without an answer; the request never completes.
async fn close_connection(parts: &Parts) -> Response {
    match parts.extensions.get::<Connection>() {
        Some(close) => {
            close.close();
            std::future::pending().await
        }
        None => Answer::go_http_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mock fault: this connection cannot be closed",
        )
        .into_response(),
    }
}

/// Go's `ServeMux` answers a path that is not in canonical form (`//healthz`,
/// `/./consume-here`, `/a/../healthz`) with a redirect to its cleaned form.
/// Returns that form when it differs from `path`.
fn go_clean_path(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    (clean != path).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_like_go() {
        for (path, clean) in [
            ("//healthz", Some("/healthz")),
            ("/./consume-here", Some("/consume-here")),
            ("/x/../intercept-info", Some("/intercept-info")),
            ("/../healthz", Some("/healthz")),
            ("/consume-here//", Some("/consume-here/")),
            ("/consume-here/.", Some("/consume-here")),
            ("/consume-here/", None),
            ("/", None),
            ("/a/b", None),
        ] {
            assert_eq!(go_clean_path(path).as_deref(), clean, "{path}");
        }
    }
}
