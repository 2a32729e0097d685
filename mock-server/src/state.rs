//! The server's state: what it mocks, the intercepts in force, the journal,
//! the faults, the limits; and the decisions made from them.
//!
//! It knows nothing of HTTP routes or handlers, so that the API and the admin
//! API, and the in-process harness, all change it through the same methods.

use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;

use crate::body::BodyBudget;
use crate::decision::{Decided, InterceptSet, InterceptSetError, Query};
use crate::fault::Faults;
use crate::journal::Journal;
use crate::limits::Limits;
use crate::wire::{Answer, WireAnswers};
use telepresence_api::{Intercept, Rules, Side, TelepresenceVersion, Wire};

/// Everything a request handler may read or change.
#[derive(Debug)]
pub(crate) struct ServerState {
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
    /// Body bytes buffered at once, across requests.
    pub(crate) body_budget: BodyBudget,
    /// Turns for decisions over large inputs, made on the blocking pool.
    pub(crate) heavy_decisions: tokio::sync::Semaphore,
}

/// Decisions over large inputs made at once; the rest wait their turn.
const HEAVY_DECISIONS_AT_ONCE: usize = 2;

/// What the mock stands in for: a side of a Telepresence release, and the workload.
#[derive(Clone, Debug)]
pub(crate) struct Mocked {
    pub(crate) side: Side,
    pub(crate) version: TelepresenceVersion,
    pub(crate) wire: Option<Wire>,
    pub(crate) workload_ports: Option<Vec<u16>>,
}

impl ServerState {
    pub(crate) fn new(
        mocked: Mocked,
        intercepts: &[Intercept],
        journal: Journal,
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
            journal,
            faults: Faults::default(),
            body_budget: BodyBudget::new(limits.max_body_bytes_in_flight),
            heavy_decisions: tokio::sync::Semaphore::new(HEAVY_DECISIONS_AT_ONCE),
            limits,
        })
    }

    /// The intercepts in force: a snapshot that edits made meanwhile leave alone.
    pub(crate) fn intercept_set(&self) -> arc_swap::Guard<Arc<InterceptSet>> {
        self.intercepts.load()
    }

    pub(crate) fn intercepts(&self) -> Vec<Intercept> {
        self.intercepts.load().specs().cloned().collect()
    }

    /// Swaps in the set `build` makes from the current one, so that a request
    /// sees either the old set or the new one. Edits are serialised, so two
    /// concurrent ones cannot lose one another. Building may take a while
    /// (thousands of intercepts): call it off the request workers.
    fn edit_intercepts<T>(
        &self,
        build: impl FnOnce(&InterceptSet) -> Result<(Option<InterceptSet>, T), InterceptSetError>,
        is_new: impl Fn(&str) -> bool,
    ) -> Result<T, InterceptSetError> {
        let _guard = self.edits.lock();
        let current = self.intercepts.load_full();
        let (next, outcome) = build(&current)?;
        if let Some(next) = next {
            warn_literal_regexes(&next, is_new);
            self.intercepts.store(Arc::new(next));
        }
        Ok(outcome)
    }

    /// Adds an intercept; its ID must be new. Compiles only the new one.
    pub(crate) fn add_intercept(&self, intercept: Intercept) -> Result<(), InterceptSetError> {
        let id = intercept.id.clone();
        self.edit_intercepts(
            |current| {
                let invalid = |error| InterceptSetError::Invalid {
                    index: current.len(),
                    id: intercept.id.clone(),
                    error,
                };
                let added = Arc::new(intercept.compile(&current.rules()).map_err(invalid)?);
                let mut list = current.compiled().to_vec();
                list.push(added);
                let next = InterceptSet::from_compiled(
                    list,
                    current.rules(),
                    self.workload_ports.as_deref(),
                )?;
                Ok((Some(next), ()))
            },
            |new| new == id,
        )
    }

    /// Replaces every intercept.
    pub(crate) fn replace_intercepts(
        &self,
        intercepts: Vec<Intercept>,
    ) -> Result<(), InterceptSetError> {
        self.edit_intercepts(
            |current| {
                let next = InterceptSet::new(
                    &intercepts,
                    current.rules(),
                    self.workload_ports.as_deref(),
                )?;
                Ok((Some(next), ()))
            },
            |_| true,
        )
    }

    /// Removes the intercept with this ID; `false` if there was none (then
    /// nothing is rebuilt).
    pub(crate) fn remove_intercept(&self, id: &str) -> Result<bool, InterceptSetError> {
        self.edit_intercepts(
            |current| {
                if !current.contains(id) {
                    return Ok((None, false));
                }
                let list: Vec<_> = current
                    .compiled()
                    .iter()
                    .filter(|i| &**i.id() != id)
                    .cloned()
                    .collect();
                let next = InterceptSet::from_compiled(
                    list,
                    current.rules(),
                    self.workload_ports.as_deref(),
                )?;
                Ok((Some(next), true))
            },
            |_| false,
        )
    }

    /// Answers `question` for `query` from the intercepts in force, in the
    /// wire format of the release mocked.
    pub(crate) fn decide(&self, question: Question, query: &Query<'_>) -> Verdict {
        let intercepts = self.intercepts.load();
        let decision = intercepts.decide(self.side, query);
        let answer = match question {
            Question::ConsumeHere => self.rules.wire.boolean(decision.consume_here(self.side)),
            Question::InterceptInfo => self.rules.wire.intercept_info(
                decision.intercepted(),
                self.side.is_client(),
                decision.metadata(),
            ),
        };
        // The journal works out why when it is read; here it only keeps the
        // intercepts in force, shared, not copied.
        let decided = self.journal.is_enabled().then(|| Decided {
            set: Arc::clone(&intercepts),
            side: self.side,
            container_port: query.container_port,
        });
        Verdict {
            answer,
            matched: decision.matched.map(|i| i.id().clone()),
            decided,
        }
    }
}

/// The two questions a consumer asks about a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Question {
    /// `/consume-here`: should this side process it?
    ConsumeHere,
    /// `/intercept-info`: which intercept does it belong to?
    InterceptInfo,
}

/// A decision as the journal and the client see it.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) answer: Answer,
    /// The ID of the intercept that matched, if one did.
    pub(crate) matched: Option<Arc<str>>,
    /// What the journal needs to say why, when it is on.
    pub(crate) decided: Option<Decided>,
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
