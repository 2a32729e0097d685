//! The server's shared state and its routes.

use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::Router;
use axum::routing::any;
use parking_lot::Mutex;

use crate::decision::{InterceptSet, InterceptSetError, Side};
use crate::fault::Faults;
use crate::intercept::Intercept;
use crate::journal::Journal;
use crate::limits::Limits;
use crate::wire::Wire;
use crate::{admin, api};

/// Everything a request handler may read or change.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) side: Side,
    pub(crate) wire: Wire,
    /// Read on every request without a lock; replaced whole on every change.
    intercepts: ArcSwap<InterceptSet>,
    /// Serialises changes, so two concurrent edits cannot lose one another.
    edits: Mutex<()>,
    pub(crate) journal: Journal,
    pub(crate) faults: Faults,
    pub(crate) limits: Limits,
}

impl App {
    pub(crate) fn new(
        side: Side,
        wire: Wire,
        intercepts: &[Intercept],
        journal_capacity: usize,
        limits: Limits,
    ) -> Result<Self, InterceptSetError> {
        Ok(Self {
            side,
            wire,
            intercepts: ArcSwap::from_pointee(InterceptSet::new(intercepts)?),
            edits: Mutex::new(()),
            journal: Journal::new(journal_capacity),
            faults: Faults::default(),
            limits,
        })
    }

    pub(crate) fn intercept_set(&self) -> arc_swap::Guard<Arc<InterceptSet>> {
        self.intercepts.load()
    }

    pub(crate) fn intercepts(&self) -> Vec<Intercept> {
        self.intercepts.load().specs().cloned().collect()
    }

    /// Applies `edit` to the list of intercepts and swaps the result in whole,
    /// so a request sees either the old set or the new one.
    pub(crate) fn edit_intercepts<T>(
        &self,
        edit: impl FnOnce(&mut Vec<Intercept>) -> T,
    ) -> Result<T, InterceptSetError> {
        let _guard = self.edits.lock();
        let mut list = self.intercepts();
        let outcome = edit(&mut list);
        self.intercepts.store(Arc::new(InterceptSet::new(&list)?));
        Ok(outcome)
    }
}

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

/// The Telepresence endpoints, any method, and the admin API as allowed.
pub(crate) fn router(app: Arc<App>, access: &AdminAccess) -> Router {
    let router = Router::new()
        .route("/healthz", any(api::healthz))
        .route("/consume-here", any(api::consume_here))
        .route("/intercept-info", any(api::intercept_info));
    let admin = Router::new()
        .nest("/_mock", admin::router())
        .route("/_mock/", axum::routing::get(admin::status));
    let router = match access {
        AdminAccess::Off => router,
        AdminAccess::Open => router.merge(admin),
        AdminAccess::Token(token) => router.merge(admin.layer(
            axum::middleware::from_fn_with_state(token.clone(), admin::require_token),
        )),
    };
    router.fallback(api::not_found).with_state(app)
}
