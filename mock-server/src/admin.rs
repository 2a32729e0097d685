//! The admin API under `/_mock/`: intercepts, the request journal, faults.
//!
//! Every answer is JSON; every error is `{"error": "..."}` naming what is wrong.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::body::{self, BodyError};
use crate::decision::InterceptSetError;
use crate::state::ServerState;
use telepresence_api::admin::{Fault, FaultError};
use telepresence_api::{Intercept, InterceptError};

/// Entries per journal page unless `limit` says otherwise, and at most.
const JOURNAL_PAGE: usize = 1000;
const JOURNAL_PAGE_MAX: usize = 10_000;
/// About the most bytes of entries one journal page holds.
const JOURNAL_PAGE_BYTES: usize = 4 << 20;

pub(crate) async fn method_not_allowed() -> AdminError {
    AdminError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this admin endpoint does not take that method",
    )
}

pub(crate) async fn no_such_endpoint() -> AdminError {
    AdminError::new(StatusCode::NOT_FOUND, "no such admin endpoint")
}

/// Lets a request through only with `Authorization: Bearer <token>` (the
/// scheme compared without regard to case, as HTTP wants).
pub(crate) async fn require_token(
    State(token): State<Arc<str>>,
    request: Request,
    next: axum::middleware::Next,
) -> Result<Response, AdminError> {
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start());
    if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes())) {
        return Err(AdminError::new(
            StatusCode::UNAUTHORIZED,
            "the admin API needs `Authorization: Bearer <token>` with the server's admin token",
        ));
    }
    Ok(next.run(request).await)
}

/// Compares without stopping at the first difference, so timing does not
/// tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An admin API error: its status, and `{"error": "..."}` naming what is wrong.
/// A `401` also says which scheme to use, as HTTP wants.
#[derive(Debug)]
pub(crate) struct AdminError {
    status: StatusCode,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }

    fn bad_request(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("no intercept with id {id:?}"),
        )
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "error": self.message }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<InterceptSetError> for AdminError {
    fn from(error: InterceptSetError) -> Self {
        match error {
            InterceptSetError::DuplicateId { .. } => Self::new(StatusCode::CONFLICT, error),
            other => Self::bad_request(other),
        }
    }
}

impl From<InterceptError> for AdminError {
    fn from(error: InterceptError) -> Self {
        Self::bad_request(error)
    }
}

impl From<FaultError> for AdminError {
    fn from(error: FaultError) -> Self {
        Self::bad_request(error)
    }
}

impl From<BodyError> for AdminError {
    fn from(error: BodyError) -> Self {
        Self::new(error.status(), error)
    }
}

/// A JSON body, read under the server's limits (size and time) and parsed
/// whole: trailing data is refused, and a bad field is named by its path.
pub(crate) struct JsonBody<T>(T);

impl<T: DeserializeOwned> FromRequest<Arc<ServerState>> for JsonBody<T> {
    type Rejection = AdminError;

    async fn from_request(request: Request, state: &Arc<ServerState>) -> Result<Self, AdminError> {
        let body = body::read(request.into_body(), &state.limits, &state.body_budget).await?;
        let mut de = serde_json::Deserializer::from_slice(&body.bytes);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                AdminError::bad_request(format!("invalid JSON body: {}", e.inner()))
            } else {
                AdminError::bad_request(format!("invalid JSON body: {path}: {}", e.inner()))
            }
        })?;
        de.end()
            .map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))?;
        Ok(Self(value))
    }
}

/// Query parameters, refused with the admin API's JSON error.
pub(crate) struct QueryParams<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AdminError> {
        let Query(params) = Query::from_request_parts(parts, state)
            .await
            .map_err(|rejection| AdminError::bad_request(rejection.body_text()))?;
        Ok(Self(params))
    }
}

/// Runs an edit of the intercepts off the request workers: building a set
/// of thousands takes a while, and `/healthz` must keep answering meanwhile.
async fn off_workers<T: Send + 'static>(
    state: &Arc<ServerState>,
    edit: impl FnOnce(&ServerState) -> Result<T, InterceptSetError> + Send + 'static,
) -> Result<T, AdminError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || edit(&state))
        .await
        .map_err(|e| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, e))?
        .map_err(AdminError::from)
}

pub(crate) async fn status(State(state): State<Arc<ServerState>>) -> Response {
    let set = state.intercept_set();
    Json(json!({
        "side": state.side,
        "telepresence_version": state.version,
        "wire": state.rules.wire,
        "workload_ports": set.workload_ports(),
        "workload_ports_declared": set.has_declared_ports(),
        "intercepts": set.specs().collect::<Vec<_>>(),
        "journal": {
            "capacity": state.journal.capacity(),
            "entries": state.journal.len(),
            "bytes": state.journal.bytes(),
            "budget_bytes": state.journal.budget(),
        },
        "faults": state.faults.list(),
    }))
    .into_response()
}

pub(crate) async fn list_intercepts(State(state): State<Arc<ServerState>>) -> Response {
    Json(state.intercept_set().specs().collect::<Vec<_>>()).into_response()
}

pub(crate) async fn get_intercept(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<Response, AdminError> {
    let set = state.intercept_set();
    let intercept = set.get(&id).ok_or_else(|| AdminError::not_found(&id))?;
    Ok(Json(intercept).into_response())
}

pub(crate) async fn add_intercept(
    State(state): State<Arc<ServerState>>,
    JsonBody(intercept): JsonBody<Intercept>,
) -> Result<Response, AdminError> {
    intercept.validate_for(&state.rules)?;
    let added = intercept.clone();
    off_workers(&state, move |state| state.add_intercept(intercept)).await?;
    Ok((StatusCode::CREATED, Json(added)).into_response())
}

pub(crate) async fn replace_intercepts(
    State(state): State<Arc<ServerState>>,
    JsonBody(intercepts): JsonBody<Vec<Intercept>>,
) -> Result<Response, AdminError> {
    off_workers(&state, move |state| state.replace_intercepts(intercepts)).await?;
    Ok(list_intercepts(State(state)).await)
}

pub(crate) async fn delete_intercepts(
    State(state): State<Arc<ServerState>>,
) -> Result<StatusCode, AdminError> {
    off_workers(&state, |state| state.replace_intercepts(Vec::new())).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn delete_intercept(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
) -> Result<StatusCode, AdminError> {
    let target = id.clone();
    let removed = off_workers(&state, move |state| state.remove_intercept(&target)).await?;
    if !removed {
        return Err(AdminError::not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalFilter {
    /// Only entries numbered above this.
    #[serde(default)]
    after: u64,
    /// Only entries for this URL path.
    endpoint: Option<String>,
    /// At most this many entries (default 1000, at most 10 000).
    limit: Option<usize>,
}

/// A page of the journal: read on with `?after=<the last seq>` while the
/// answer carries `x-journal-more: true` (or until it is empty).
pub(crate) async fn read_journal(
    State(state): State<Arc<ServerState>>,
    QueryParams(filter): QueryParams<JournalFilter>,
) -> Result<Response, AdminError> {
    let limit = filter.limit.unwrap_or(JOURNAL_PAGE);
    if limit == 0 || limit > JOURNAL_PAGE_MAX {
        return Err(AdminError::bad_request(format!(
            "limit: {limit} is not in 1..={JOURNAL_PAGE_MAX}"
        )));
    }
    let page = state.journal.page(
        filter.after,
        filter.endpoint.as_deref(),
        limit,
        JOURNAL_PAGE_BYTES,
    );
    let mut response = Json(page.entries).into_response();
    response.headers_mut().insert(
        "x-journal-more",
        HeaderValue::from_static(if page.more { "true" } else { "false" }),
    );
    Ok(response)
}

pub(crate) async fn clear_journal(State(state): State<Arc<ServerState>>) -> StatusCode {
    state.journal.clear();
    StatusCode::NO_CONTENT
}

pub(crate) async fn list_faults(State(state): State<Arc<ServerState>>) -> Response {
    Json(state.faults.list()).into_response()
}

pub(crate) async fn add_fault(
    State(state): State<Arc<ServerState>>,
    JsonBody(fault): JsonBody<Fault>,
) -> Result<Response, AdminError> {
    state.faults.add(fault)?;
    Ok((StatusCode::CREATED, Json(state.faults.list())).into_response())
}

pub(crate) async fn clear_faults(State(state): State<Arc<ServerState>>) -> StatusCode {
    state.faults.clear();
    StatusCode::NO_CONTENT
}
