//! The Telepresence endpoints: `/healthz`, `/consume-here`, `/intercept-info`,
//! and Go's 404 for every other path.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use crate::body::{self, ReadBody};
use crate::decision::{Query, Side};
use crate::fault::API_ENDPOINTS;
use crate::form;
use crate::journal::{self, Journal, RawEntry};
use crate::serve::Connection;
use crate::state::ServerState;
use crate::wire::Answer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    ConsumeHere,
    InterceptInfo,
    Unknown,
}

pub(crate) async fn healthz(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    handle(&state, Endpoint::Healthz, req).await
}

pub(crate) async fn consume_here(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    handle(&state, Endpoint::ConsumeHere, req).await
}

/// Telepresence 2.4 had no `/intercept-info`: Go's 404, like any unknown path.
pub(crate) async fn intercept_info(
    State(state): State<Arc<ServerState>>,
    req: Request,
) -> Response {
    let endpoint = if state.rules.serves_intercept_info {
        Endpoint::InterceptInfo
    } else {
        Endpoint::Unknown
    };
    handle(&state, endpoint, req).await
}

pub(crate) async fn not_found(State(state): State<Arc<ServerState>>, req: Request) -> Response {
    handle(&state, Endpoint::Unknown, req).await
}

async fn handle(state: &Arc<ServerState>, endpoint: Endpoint, req: Request) -> Response {
    let unix_ms = Journal::now_ms();
    let (parts, body) = req.into_parts();
    let injection = state.faults.next(parts.uri.path(), &parts.headers);
    let mut fault = None;
    if let Some(injection) = injection {
        if let Some(delay) = injection.delay {
            tokio::time::sleep(delay).await;
        }
        if injection.close {
            record(
                state,
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
            let answer = state.rules.wire.error(
                status,
                &format!("mock fault: injected status {}", status.as_u16()),
            );
            let fault = Some(injection.label);
            record(state, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
            return answer.into_response();
        }
        if let Some(body) = injection.body {
            let answer = state.rules.wire.success(Bytes::from(body));
            let fault = Some(injection.label);
            record(state, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
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
            let form_body = match read_form_body(state, &parts, body).await {
                Ok(body) => body,
                Err(answer) => {
                    record(state, unix_ms, &parts, &[], &[], Some(&answer), None, fault);
                    return answer.into_response();
                }
            };
            let query = parts.uri.query().unwrap_or_default().as_bytes();
            let form = form_body.as_ref().map_or(&[][..], |b| &b.bytes[..]);
            let path = form::form_value(form, query, "path").into_owned();
            let port = form::form_value(form, query, "containerPort").into_owned();
            let (answer, matched, path, port) =
                decide_anywhere(state, endpoint, &parts.headers, path, port).await;
            (Cow::Owned(path), Cow::Owned(port), answer, matched)
        }
    };
    record(
        state,
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
/// Inputs larger than this (path and header values) are matched on the
/// blocking pool, a few at a time: a slow regular expression over a huge
/// path must not hold an async worker, and `/healthz` with it.
const HEAVY_INPUT: usize = 64 * 1024;

/// [`decide`], on the request's worker for the usual small inputs, on the
/// blocking pool for large ones; gives the path and port back.
async fn decide_anywhere(
    state: &Arc<ServerState>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    path: Vec<u8>,
    port: Vec<u8>,
) -> (Answer, Option<Arc<str>>, Vec<u8>, Vec<u8>) {
    let input = path.len() + headers.iter().map(|(_, v)| v.len()).sum::<usize>();
    if input <= HEAVY_INPUT {
        let (answer, matched) = decide(state, endpoint, headers, &path, &port);
        return (answer, matched, path, port);
    }
    // Queued here, not on the blocking pool, which is shared with the admin API.
    let Ok(_turn) = state.heavy_decisions.acquire().await else {
        let answer = state.rules.wire.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mock server shutting down",
        );
        return (answer, None, path, port);
    };
    let (state, headers) = (state.clone(), headers.clone());
    tokio::task::spawn_blocking(move || {
        let (answer, matched) = decide(&state, endpoint, &headers, &path, &port);
        (answer, matched, path, port)
    })
    .await
    .unwrap_or_else(|error| {
        let answer = Answer::go_http_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        (answer, None, Vec::new(), Vec::new())
    })
}

fn decide(
    state: &ServerState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    path: &[u8],
    port: &[u8],
) -> (Answer, Option<Arc<str>>) {
    let container_port = match form::parse_container_port(port) {
        Ok(port) => port,
        Err(reason) => {
            let answer = state
                .rules
                .wire
                .error(StatusCode::BAD_REQUEST, &format!("containerPort: {reason}"));
            return (answer, None);
        }
    };
    let intercepts = state.intercept_set();
    let decision = intercepts.decide(
        state.side,
        &Query {
            headers,
            path,
            container_port,
        },
    );
    let answer = match endpoint {
        Endpoint::ConsumeHere => state.rules.wire.boolean(decision.consume_here(state.side)),
        _ => state.rules.wire.intercept_info(
            decision.intercepted(),
            state.side == Side::Client,
            decision.metadata(),
        ),
    };
    (answer, decision.matched.map(|i| i.id.clone()))
}

/// The body, when Go would read it as a form; otherwise nothing. The body
/// (and its share of the server's budget) is held until the answer is made.
async fn read_form_body(
    state: &ServerState,
    parts: &Parts,
    body: Body,
) -> Result<Option<ReadBody>, Answer> {
    if !form::has_form_body(&parts.method, &parts.headers) {
        return Ok(None);
    }
    body::read(body, &state.limits, &state.body_budget)
        .await
        .map(Some)
        .map_err(|error| Answer::go_http_error(error.status(), &error.to_string()))
}

#[allow(clippy::too_many_arguments)]
fn record(
    state: &ServerState,
    unix_ms: u64,
    parts: &Parts,
    path: &[u8],
    port: &[u8],
    answer: Option<&Answer>,
    matched: Option<Arc<str>>,
    fault: Option<String>,
) {
    if !state.journal.is_enabled() {
        return;
    }
    let path_asked = parts.uri.path();
    let endpoint = match API_ENDPOINTS.iter().find(|known| **known == path_asked) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(path_asked.to_owned()),
    };
    state.journal.record(RawEntry {
        unix_ms,
        connection: parts.extensions.get::<Connection>().map_or(0, |c| c.id),
        method: parts.method.clone(),
        endpoint,
        data: journal::pack(path, port, &parts.headers),
        status: answer.map(|a| a.status),
        answer: answer
            .map(|a| journal::cut_answer(&a.body))
            .unwrap_or_default(),
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
