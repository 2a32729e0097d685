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
use crate::version::{Rules, TelepresenceVersion};
use crate::wire::Wire;
use crate::{admin, api};

/// Everything a request handler may read or change.
#[derive(Debug)]
pub(crate) struct App {
    pub(crate) side: Side,
    /// The release mocked.
    pub(crate) version: TelepresenceVersion,
    /// Its rules, with the wire format possibly overridden.
    pub(crate) rules: Rules,
    /// The workload's ports when declared; otherwise they follow the intercepts.
    workload_ports: Option<Vec<u16>>,
    /// Read on every request without a lock; replaced whole on every change.
    intercepts: ArcSwap<InterceptSet>,
    /// Serialises changes, so two concurrent edits cannot lose one another.
    edits: Mutex<()>,
    pub(crate) journal: Journal,
    pub(crate) faults: Faults,
    pub(crate) limits: Limits,
}

/// What the mock stands in for: a side of a Telepresence release, and the workload.
#[derive(Clone, Debug)]
pub(crate) struct Mocked {
    pub(crate) side: Side,
    pub(crate) version: TelepresenceVersion,
    pub(crate) wire: Option<Wire>,
    pub(crate) workload_ports: Option<Vec<u16>>,
}

impl App {
    pub(crate) fn new(
        mocked: Mocked,
        intercepts: &[Intercept],
        journal_capacity: usize,
        limits: Limits,
    ) -> Result<Self, InterceptSetError> {
        let mut rules = mocked.version.rules();
        if let Some(wire) = mocked.wire {
            rules.wire = wire;
        }
        let set = InterceptSet::new(intercepts, rules, mocked.workload_ports.as_deref())?;
        warn_literal_regexes(&set, |_| true);
        Ok(Self {
            side: mocked.side,
            version: mocked.version,
            rules,
            workload_ports: mocked.workload_ports,
            intercepts: ArcSwap::from_pointee(set),
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
    /// so a request sees either the old set or the new one. Invalid regular
    /// expressions taken literally are logged for the intercepts `is_new` names.
    fn edit_intercepts<T>(
        &self,
        edit: impl FnOnce(&mut Vec<Intercept>) -> T,
        is_new: impl Fn(&str) -> bool,
    ) -> Result<T, InterceptSetError> {
        let _guard = self.edits.lock();
        let mut list = self.intercepts();
        let outcome = edit(&mut list);
        let set = InterceptSet::new(&list, self.rules, self.workload_ports.as_deref())?;
        warn_literal_regexes(&set, is_new);
        self.intercepts.store(Arc::new(set));
        Ok(outcome)
    }

    /// Adds an intercept; its ID must be new.
    pub(crate) fn add_intercept(&self, intercept: Intercept) -> Result<(), InterceptSetError> {
        let id = intercept.id.clone();
        self.edit_intercepts(|list| list.push(intercept), |new| new == id)
    }

    /// Replaces every intercept.
    pub(crate) fn replace_intercepts(
        &self,
        intercepts: Vec<Intercept>,
    ) -> Result<(), InterceptSetError> {
        self.edit_intercepts(|list| *list = intercepts, |_| true)
    }

    /// Removes the intercept with this ID; `false` if there was none.
    pub(crate) fn remove_intercept(&self, id: &str) -> Result<bool, InterceptSetError> {
        self.edit_intercepts(
            |list| {
                let before = list.len();
                list.retain(|i| i.id != id);
                before != list.len()
            },
            |_| false,
        )
    }
}

/// One warning line per filter value taken literally.
fn warn_literal_regexes(set: &InterceptSet, is_new: impl Fn(&str) -> bool) {
    for (id, key, value) in set.literal_regexes().filter(|(id, _, _)| is_new(id)) {
        tracing::warn!(
            "intercept {id:?}: {key}: `{value}` is not a valid regular expression; \
             like Telepresence 2.25 and later, it matches only the exact value `{value}`"
        );
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
