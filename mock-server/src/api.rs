//! The Telepresence endpoints: `/healthz`, `/consume-here`, `/intercept-info`,
//! and Go's 404 for every other path.
//!
//! A request goes one way: an injected fault (its delay, and perhaps a reply
//! of its own), else the endpoint's answer; both make one [`Outcome`], which
//! [`finish`] records in the journal and sends, once per request.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, Method, StatusCode};

use crate::body::{self, ReadBody};
use crate::decision::{Decided, Query};
use crate::fault::Injection;
use crate::form;
use crate::journal::{self, Journal, RawEntry};
use crate::serve::Connection;
use crate::state::{Question, ServerState, Verdict};
use crate::wire::{Answer, WireAnswers};
use telepresence_api::endpoint;

/// A request body the API can read: hyper's own, or axum's.
pub(crate) trait HttpBody:
    hyper::body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + 'static
{
}

impl<B> HttpBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<axum::BoxError>> + Send + 'static
{
}

/// What a path is, once routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Healthz,
    Ask(Question),
    /// Any other path: Go's 404, or its redirect to the cleaned path.
    Unknown,
}

impl Endpoint {
    /// The API endpoint `path` names exactly, if any. Telepresence 2.4 had
    /// no `/intercept-info`: for it, that path is unknown like any other.
    pub(crate) fn of(state: &ServerState, path: &str) -> Option<Self> {
        match path {
            endpoint::HEALTHZ => Some(Self::Healthz),
            endpoint::CONSUME_HERE => Some(Self::Ask(Question::ConsumeHere)),
            endpoint::INTERCEPT_INFO if state.rules.serves_intercept_info => {
                Some(Self::Ask(Question::InterceptInfo))
            }
            _ => None,
        }
    }
}

/// Go's server refuses an HTTP/1.1 request without exactly one `Host`
/// header before any handler sees it: `400`, its reason in the status line
/// and the body, and the connection closed. Not journaled, as no handler
/// ran.
pub(crate) fn go_bad_request<B>(request: &http::Request<B>) -> Option<Response> {
    if request.version() < http::Version::HTTP_11 || request.method() == Method::CONNECT {
        return None;
    }
    let reason: &'static str = match request.headers().get_all(http::header::HOST).iter().count() {
        1 => return None,
        0 => "Bad Request: missing required Host header",
        _ => "Bad Request: too many Host headers",
    };
    let mut response = Response::new(Body::from(format!("400 {reason}")));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response
        .extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("close"),
    );
    Some(response)
}

/// The router's fallback: every path that is not the API's or the admin API's.
pub(crate) async fn not_found(State(state): State<Arc<ServerState>>, request: Request) -> Response {
    let connection = request.extensions().get::<Connection>().cloned();
    handle(&state, Endpoint::Unknown, request, connection).await
}

/// What one request came to: what the client gets and what the journal keeps.
#[derive(Debug)]
struct Outcome {
    reply: Reply,
    /// `path` and `containerPort` as the request gave them; empty when it
    /// was not read that far.
    path: Vec<u8>,
    container_port: Vec<u8>,
    /// The ID of the intercept that matched, if one did.
    matched: Option<Arc<str>>,
    /// What the journal needs to say why, when it is on.
    decided: Option<Decided>,
    /// The injected fault, as the journal names it.
    fault: Option<String>,
}

#[derive(Debug)]
enum Reply {
    Answer(Answer),
    /// Drop the connection without answering (the `close` fault).
    Close,
}

impl Outcome {
    fn new(reply: Reply) -> Self {
        Self {
            reply,
            path: Vec::new(),
            container_port: Vec::new(),
            matched: None,
            decided: None,
            fault: None,
        }
    }
}

/// Serves one request to `endpoint`, which came on `connection`.
///
/// Generic over the body so that the API's own requests, whose body is read
/// only when Go would read a form, do not box it first.
pub(crate) async fn handle<B: HttpBody>(
    state: &Arc<ServerState>,
    endpoint: Endpoint,
    request: http::Request<B>,
    connection: Option<Connection>,
) -> Response {
    let started_ms = Journal::now_ms();
    let (parts, body) = request.into_parts();
    let mut fault = state.faults.next(parts.uri.path(), &parts.headers);
    if let Some(delay) = fault.as_ref().and_then(|fault| fault.delay) {
        tokio::time::sleep(delay).await;
    }
    let replaced = fault.as_mut().and_then(|fault| fault_reply(state, fault));
    let fault = fault.map(|fault| fault.label);
    let outcome = match replaced {
        Some(reply) => Outcome::new(reply),
        None => answer(state, endpoint, &parts, body).await,
    };
    let outcome = Outcome { fault, ..outcome };
    finish(state, started_ms, &parts, connection.as_ref(), outcome).await
}

/// The reply a fault makes instead of the endpoint's answer; none when it
/// only delays.
fn fault_reply(state: &ServerState, fault: &mut Injection) -> Option<Reply> {
    if fault.close {
        return Some(Reply::Close);
    }
    if let Some(status) = fault.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let message = format!("mock fault: injected status {}", status.as_u16());
        return Some(Reply::Answer(state.rules.wire.error(status, &message)));
    }
    let body = fault.body.take()?;
    Some(Reply::Answer(state.rules.wire.success(Bytes::from(body))))
}

/// The endpoint's own answer.
async fn answer<B: HttpBody>(
    state: &Arc<ServerState>,
    endpoint: Endpoint,
    parts: &Parts,
    body: B,
) -> Outcome {
    match endpoint {
        Endpoint::Healthz => Outcome::new(Reply::Answer(Answer::empty_ok())),
        Endpoint::Unknown => Outcome::new(Reply::Answer(unknown_path(parts))),
        Endpoint::Ask(question) => ask(state, question, parts, body).await,
    }
}

/// Go's redirect to the cleaned path when the path is not clean, else its 404.
fn unknown_path(parts: &Parts) -> Answer {
    match go_clean_path(parts.uri.path()) {
        Some(clean) if parts.method != Method::CONNECT => {
            let location = match parts.uri.query() {
                Some(query) => format!("{clean}?{query}"),
                None => clean,
            };
            Answer::go_redirect(&parts.method, &location)
        }
        _ => Answer::not_found(),
    }
}

/// `/consume-here` and `/intercept-info`: the parameters, from the query and
/// a form body as Go reads them, then the decision.
async fn ask<B: HttpBody>(
    state: &Arc<ServerState>,
    question: Question,
    parts: &Parts,
    body: B,
) -> Outcome {
    // Held, with its share of the server's body budget, until the decision is made.
    let form_body = match read_form_body(state, parts, body).await {
        Ok(form_body) => form_body,
        Err(refused) => return Outcome::new(Reply::Answer(refused)),
    };
    let query = parts.uri.query().unwrap_or_default().as_bytes();
    let form = form_body.as_ref().map_or(&[][..], |b| &b.bytes[..]);
    let path = form::form_value(form, query, "path").into_owned();
    let container_port = form::form_value(form, query, "containerPort").into_owned();
    let (verdict, path) = match form::parse_container_port(&container_port) {
        Ok(port) => decide_anywhere(state, question, &parts.headers, path, port).await,
        Err(reason) => {
            let message = format!("containerPort: {reason}");
            let answer = state.rules.wire.error(StatusCode::BAD_REQUEST, &message);
            let verdict = Verdict {
                answer,
                matched: None,
                decided: None,
            };
            (verdict, path)
        }
    };
    Outcome {
        reply: Reply::Answer(verdict.answer),
        path,
        container_port,
        matched: verdict.matched,
        decided: verdict.decided,
        fault: None,
    }
}

/// The body, when Go would read it as a form; otherwise nothing.
async fn read_form_body<B: HttpBody>(
    state: &ServerState,
    parts: &Parts,
    body: B,
) -> Result<Option<ReadBody>, Answer> {
    if !form::has_form_body(&parts.method, &parts.headers) {
        return Ok(None);
    }
    body::read(Body::new(body), &state.limits, &state.body_budget)
        .await
        .map(Some)
        .map_err(|error| Answer::go_http_error(error.status(), &error.to_string()))
}

/// Inputs larger than this (path and header values) are matched on the
/// blocking pool, a few at a time: a slow regular expression over a huge
/// path must not hold an async worker, and `/healthz` with it.
const HEAVY_INPUT: usize = 64 * 1024;

/// [`ServerState::decide`], on the request's worker for the usual small
/// inputs, on the blocking pool for large ones; gives the path back for the
/// journal.
async fn decide_anywhere(
    state: &Arc<ServerState>,
    question: Question,
    headers: &HeaderMap,
    path: Vec<u8>,
    container_port: u16,
) -> (Verdict, Vec<u8>) {
    let input = path.len() + headers.iter().map(|(_, v)| v.len()).sum::<usize>();
    if input <= HEAVY_INPUT {
        let query = Query {
            headers,
            path: &path,
            container_port,
        };
        return (state.decide(question, &query), path);
    }
    let unmatched = |answer| Verdict {
        answer,
        matched: None,
        decided: None,
    };
    // Queued here, not on the blocking pool, which is shared with the admin API.
    let Ok(_turn) = state.heavy_decisions.acquire().await else {
        let answer = state.rules.wire.error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mock server shutting down",
        );
        return (unmatched(answer), path);
    };
    let (state, headers) = (state.clone(), headers.clone());
    tokio::task::spawn_blocking(move || {
        let query = Query {
            headers: &headers,
            path: &path,
            container_port,
        };
        (state.decide(question, &query), path)
    })
    .await
    .unwrap_or_else(|error| {
        let answer = Answer::go_http_error(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        (unmatched(answer), Vec::new())
    })
}

/// Where every request ends: its outcome is recorded, then sent.
async fn finish(
    state: &ServerState,
    started_ms: u64,
    parts: &Parts,
    connection: Option<&Connection>,
    outcome: Outcome,
) -> Response {
    match record(state, started_ms, parts, connection, outcome) {
        Reply::Answer(answer) => {
            tracing::debug!(
                method = %parts.method,
                uri = %parts.uri,
                status = answer.status.as_u16(),
                answer = %String::from_utf8_lossy(&answer.body),
                "answered"
            );
            answer.into_response()
        }
        Reply::Close => close_connection(connection).await,
    }
}

/// Keeps the outcome in the journal, when it is on; gives back the reply.
fn record(
    state: &ServerState,
    started_ms: u64,
    parts: &Parts,
    connection: Option<&Connection>,
    outcome: Outcome,
) -> Reply {
    let Outcome {
        reply,
        path,
        container_port,
        matched,
        decided,
        fault,
    } = outcome;
    if !state.journal.is_enabled() {
        return reply;
    }
    let asked = parts.uri.path();
    // The usual paths cost the entry no allocation.
    let endpoint = match endpoint::ALL.iter().find(|known| **known == asked) {
        Some(known) => Cow::Borrowed(*known),
        None => Cow::Owned(asked.to_owned()),
    };
    let answer = match &reply {
        Reply::Answer(answer) => Some(answer),
        Reply::Close => None,
    };
    let (data, complete) = journal::pack(&path, &container_port, &parts.headers);
    state.journal.record(RawEntry {
        unix_ms: started_ms,
        connection: connection.map_or(0, |c| c.id),
        method: parts.method.clone(),
        endpoint,
        data,
        status: answer.map(|a| a.status),
        answer: answer
            .map(|a| journal::cut_answer(&a.body))
            .unwrap_or_default(),
        matched,
        decided,
        complete,
        set_charge: 0,
        fault,
    });
    reply
}

/// Drops the connection without an answer; the request never completes.
async fn close_connection(connection: Option<&Connection>) -> Response {
    match connection {
        Some(connection) => {
            connection.close();
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
