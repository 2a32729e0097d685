//! The routes: the Telepresence endpoints, any method, and the `/_mock/`
//! admin API as allowed. Every route is here, so that one page tells what the
//! server serves.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::get;
use hyper::body::Incoming;
use tower::ServiceExt;

use crate::admin;
use crate::api::{self, Endpoint};
use crate::serve::Connection;
use crate::state::ServerState;

/// Who may use the `/_mock/` admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AdminAccess {
    /// Not served: the paths are Go's 404s like any other.
    Off,
    /// Anyone who reaches the port.
    Open,
    /// Requests with `Authorization: Bearer <token>`.
    Token(Arc<str>),
}

/// The whole server: the API (its three paths, any method), the admin API as
/// `access` allows, and Go's 404 (or redirect) for every other path.
///
/// The API's paths are matched first, by name: one request per message is
/// the load this server is measured by, and a generic router's boxed
/// services cost those requests a tenth of the server's own time (`perf`,
/// `wrk` at 64 connections). The rest goes through axum.
#[derive(Clone)]
pub(crate) struct Routes {
    state: Arc<ServerState>,
    others: Router,
}

impl Routes {
    pub(crate) fn new(state: Arc<ServerState>, access: &AdminAccess) -> Self {
        let others = match access {
            AdminAccess::Off => Router::new(),
            AdminAccess::Open => admin_router(),
            AdminAccess::Token(token) => admin_router().layer(
                axum::middleware::from_fn_with_state(token.clone(), admin::require_token),
            ),
        };
        let others = others.fallback(api::not_found).with_state(state.clone());
        Self { state, others }
    }

    /// Answers one request that came on `connection`.
    pub(crate) async fn call(
        self,
        mut request: hyper::Request<Incoming>,
        connection: Connection,
    ) -> Response {
        if let Some(refused) = api::go_bad_request(&request) {
            return refused;
        }
        match Endpoint::of(&self.state, request.uri().path()) {
            Some(endpoint) => api::handle(&self.state, endpoint, request, Some(connection)).await,
            None => {
                request.extensions_mut().insert(connection);
                match self.others.oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }
        }
    }
}

/// The admin API, under `/_mock`.
fn admin_router() -> Router<Arc<ServerState>> {
    let endpoints = Router::new()
        .route("/", get(admin::status))
        .route(
            "/intercepts",
            get(admin::list_intercepts)
                .post(admin::add_intercept)
                .put(admin::replace_intercepts)
                .delete(admin::delete_intercepts),
        )
        .route(
            "/intercepts/{*id}",
            get(admin::get_intercept).delete(admin::delete_intercept),
        )
        .route(
            "/journal",
            get(admin::read_journal).delete(admin::clear_journal),
        )
        .route(
            "/faults",
            get(admin::list_faults)
                .post(admin::add_fault)
                .delete(admin::clear_faults),
        )
        .method_not_allowed_fallback(admin::method_not_allowed)
        .fallback(admin::no_such_endpoint);
    Router::new()
        .nest("/_mock", endpoints)
        // A nested `/` answers `/_mock` only, not `/_mock/`.
        .route("/_mock/", get(admin::status))
}
