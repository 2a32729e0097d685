//! The routes: the Telepresence endpoints, any method, and the `/_mock/`
//! admin API as allowed. Every route is here, so that one page tells what the
//! server serves.

use std::sync::Arc;

use axum::Router;
use axum::routing::{any, get};

use crate::state::ServerState;
use crate::{admin, api};

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

/// The whole server: the API, the admin API as `access` allows, and Go's 404
/// (or redirect) for every other path.
pub(crate) fn router(state: Arc<ServerState>, access: &AdminAccess) -> Router {
    let api = Router::new()
        .route("/healthz", any(api::healthz))
        .route("/consume-here", any(api::consume_here))
        .route("/intercept-info", any(api::intercept_info));
    let router = match access {
        AdminAccess::Off => api,
        AdminAccess::Open => api.merge(admin_router()),
        AdminAccess::Token(token) => api.merge(admin_router().layer(
            axum::middleware::from_fn_with_state(token.clone(), admin::require_token),
        )),
    };
    router.fallback(api::not_found).with_state(state)
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
