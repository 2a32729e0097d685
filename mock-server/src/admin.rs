//! The admin API under `/_mock/`: intercepts, the request journal, faults.
//!
//! Every answer is JSON; every error is `{"error": "..."}` naming what is wrong.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::app::App;
use crate::decision::InterceptSetError;
use crate::fault::Fault;
use crate::intercept::Intercept;

pub(crate) fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(status))
        .route(
            "/intercepts",
            get(list_intercepts)
                .post(add_intercept)
                .put(replace_intercepts)
                .delete(delete_intercepts),
        )
        .route(
            "/intercepts/{*id}",
            get(get_intercept).delete(delete_intercept),
        )
        .route("/journal", get(read_journal).delete(clear_journal))
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such admin endpoint") })
}

/// Lets a request through only with `Authorization: Bearer <token>`.
pub(crate) async fn require_token(
    State(token): State<Arc<str>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
        return next.run(request).await;
    }
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "the admin API needs `Authorization: Bearer <token>` with the server's admin token",
    );
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    response
}

/// Compares without stopping at the first difference, so timing does not
/// tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({ "error": message.to_string() }))).into_response()
}

/// Parses a JSON body, naming the path of the first bad field.
fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid JSON body: {}", e.inner())
        } else {
            format!("invalid JSON body: {path}: {}", e.inner())
        }
    })
}

pub(crate) async fn status(State(app): State<Arc<App>>) -> Response {
    let set = app.intercept_set();
    Json(json!({
        "side": app.side,
        "telepresence_version": app.version,
        "wire": app.rules.wire,
        "workload_ports": set.workload_ports(),
        "workload_ports_declared": set.has_declared_ports(),
        "intercepts": set.specs().collect::<Vec<_>>(),
        "journal": { "capacity": app.journal.capacity(), "entries": app.journal.len() },
        "faults": app.faults.list(),
    }))
    .into_response()
}

async fn list_intercepts(State(app): State<Arc<App>>) -> Response {
    Json(app.intercepts()).into_response()
}

async fn get_intercept(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.intercept_set().get(&id) {
        Some(intercept) => Json(intercept).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no intercept with id {id:?}"),
        ),
    }
}

async fn add_intercept(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let intercept: Intercept = match parse(&body) {
        Ok(i) => i,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    if let Err(e) = intercept.validate_for(&app.rules) {
        return error(StatusCode::BAD_REQUEST, e);
    }
    let added = intercept.clone();
    match app.add_intercept(intercept) {
        Ok(()) => (StatusCode::CREATED, Json(added)).into_response(),
        Err(e @ InterceptSetError::DuplicateId { .. }) => error(StatusCode::CONFLICT, e),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn replace_intercepts(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let intercepts: Vec<Intercept> = match parse(&body) {
        Ok(i) => i,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match app.replace_intercepts(intercepts) {
        Ok(()) => Json(app.intercepts()).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn delete_intercepts(State(app): State<Arc<App>>) -> Response {
    match app.replace_intercepts(Vec::new()) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn delete_intercept(State(app): State<Arc<App>>, Path(id): Path<String>) -> Response {
    match app.remove_intercept(&id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("no intercept with id {id:?}"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JournalFilter {
    /// Only entries numbered above this.
    #[serde(default)]
    after: u64,
    /// Only entries for this URL path.
    endpoint: Option<String>,
}

async fn read_journal(
    State(app): State<Arc<App>>,
    filter: Result<Query<JournalFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(filter) = match filter {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let mut entries = app.journal.entries_after(filter.after);
    if let Some(endpoint) = &filter.endpoint {
        entries.retain(|e| &e.endpoint == endpoint);
    }
    Json(entries).into_response()
}

async fn clear_journal(State(app): State<Arc<App>>) -> Response {
    app.journal.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn list_faults(State(app): State<Arc<App>>) -> Response {
    Json(app.faults.list()).into_response()
}

async fn add_fault(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let fault: Fault = match parse(&body) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    match app.faults.add(fault) {
        Ok(()) => (StatusCode::CREATED, Json(app.faults.list())).into_response(),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn clear_faults(State(app): State<Arc<App>>) -> Response {
    app.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}
