//! The decision: which intercept, if any, a request belongs to, on each side.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use http::HeaderMap;

use telepresence_api::{
    CALLER_INTERCEPT_ID_HEADER, CandidateOrder, CompiledIntercept, Intercept, InterceptError, Miss,
    PortChoice, Reason, Rules, Side,
};

/// What the server knows about a request when it decides.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query<'a> {
    pub(crate) headers: &'a HeaderMap,
    /// The decoded `path` parameter (empty when absent).
    pub(crate) path: &'a [u8],
    /// The `containerPort` parameter (0 when absent).
    pub(crate) container_port: u16,
}

impl Query<'_> {
    fn caller_id(&self) -> &[u8] {
        self.headers
            .get(CALLER_INTERCEPT_ID_HEADER)
            .map_or(&b""[..], |v| v.as_bytes())
    }
}

/// The outcome for one request, as `/intercept-info` reports it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision<'a> {
    /// The matching intercept, when one matched.
    pub(crate) matched: Option<&'a CompiledIntercept>,
}

impl<'a> Decision<'a> {
    pub(crate) fn intercepted(&self) -> bool {
        self.matched.is_some()
    }

    /// The matching intercept's metadata.
    pub(crate) fn metadata(&self) -> Option<&'a BTreeMap<String, String>> {
        self.matched.map(|i| &i.spec().metadata)
    }

    /// The cluster consumes what is not intercepted; the workstation what is.
    pub(crate) fn consume_here(&self, side: Side) -> bool {
        side.consumes(self.intercepted())
    }
}

/// A decision as the journal keeps it, to say why when read: the
/// intercepts in force then (shared, not copied), the side and the port.
#[derive(Clone, Debug)]
pub(crate) struct Decided {
    pub(crate) set: Arc<InterceptSet>,
    pub(crate) side: Side,
    pub(crate) container_port: u16,
}

/// The intercepts in force, validated for one release's rules, indexed for
/// both sides.
#[derive(Clone, Debug)]
pub(crate) struct InterceptSet {
    /// In declaration order; shared with the sets that edits derive from
    /// this one, so that an edit compiles only what it adds.
    intercepts: Vec<Arc<CompiledIntercept>>,
    /// The client side's lookup, by exact ID.
    by_id: HashMap<Arc<str>, usize>,
    /// The workload's ports in agent-configuration order, each with its
    /// intercepts in the order the agent tries them.
    targets: Vec<Target>,
    /// Whether the ports were declared (`container_ports`) or taken from the intercepts.
    declared_ports: bool,
    rules: Rules,
    /// What keeping it costs, roughly ([`approx_bytes`]).
    bytes: usize,
}

#[derive(Clone, Debug)]
struct Target {
    port: u16,
    /// Indices into `intercepts`.
    candidates: Vec<usize>,
}

/// Why a set of intercepts was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InterceptSetError {
    /// One intercept is invalid.
    #[error("intercepts[{index}] ({id:?}): {error}")]
    Invalid {
        /// Its position in the list.
        index: usize,
        /// Its ID as given.
        id: String,
        /// What is wrong.
        error: InterceptError,
    },
    /// Two intercepts share an ID.
    #[error(
        "intercepts[{index}] ({id:?}): id: duplicate intercept ID, already used by intercepts[{first}]"
    )]
    DuplicateId {
        /// The position of the second one.
        index: usize,
        /// The shared ID.
        id: String,
        /// The position of the first one.
        first: usize,
    },
    /// An intercept is on a port the workload does not have.
    #[error(
        "intercepts[{index}] ({id:?}): container_port: {port} is not a port of the workload \
         (container_ports: {})",
        port_list(ports)
    )]
    UnknownPort {
        /// Its position in the list.
        index: usize,
        /// Its ID.
        id: String,
        /// Its port.
        port: u16,
        /// The workload's ports.
        ports: Vec<u16>,
    },
    /// The list of the workload's ports is invalid.
    #[error("container_ports: {0}")]
    WorkloadPorts(String),
}

/// `8080, 9090`, or `none`.
pub(crate) fn port_list(ports: &[u16]) -> String {
    if ports.is_empty() {
        return "none".to_owned();
    }
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    ports.join(", ")
}

impl InterceptSet {
    /// Validates `intercepts` under `rules`. The workload's ports are
    /// `workload_ports` when given (every intercept must use one of them),
    /// otherwise the distinct ports of the intercepts in order of first
    /// appearance.
    pub(crate) fn new(
        intercepts: &[Intercept],
        rules: Rules,
        workload_ports: Option<&[u16]>,
    ) -> Result<Self, InterceptSetError> {
        let compiled = intercepts
            .iter()
            .enumerate()
            .map(|(index, intercept)| {
                intercept.compile(&rules).map(Arc::new).map_err(|error| {
                    InterceptSetError::Invalid {
                        index,
                        id: intercept.id.clone(),
                        error,
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_compiled(compiled, rules, workload_ports)
    }

    /// A set of intercepts compiled under `rules`: checks the IDs and the
    /// ports and builds the indexes, in O(n log n).
    pub(crate) fn from_compiled(
        compiled: Vec<Arc<CompiledIntercept>>,
        rules: Rules,
        workload_ports: Option<&[u16]>,
    ) -> Result<Self, InterceptSetError> {
        let declared: Option<HashSet<u16>> = match workload_ports {
            Some(ports) => {
                check_workload_ports(ports)?;
                Some(ports.iter().copied().collect())
            }
            None => None,
        };
        let mut by_id: HashMap<Arc<str>, usize> = HashMap::with_capacity(compiled.len());
        for (index, intercept) in compiled.iter().enumerate() {
            if let Some(&first) = by_id.get(intercept.id()) {
                return Err(InterceptSetError::DuplicateId {
                    index,
                    id: intercept.spec().id.clone(),
                    first,
                });
            }
            if let (Some(declared), Some(ports)) = (&declared, workload_ports)
                && !declared.contains(&intercept.spec().container_port)
            {
                return Err(InterceptSetError::UnknownPort {
                    index,
                    id: intercept.spec().id.clone(),
                    port: intercept.spec().container_port,
                    ports: ports.to_vec(),
                });
            }
            by_id.insert(intercept.id().clone(), index);
        }
        let ports: Vec<u16> = match workload_ports {
            Some(ports) => ports.to_vec(),
            None => {
                let mut seen = HashSet::new();
                compiled
                    .iter()
                    .map(|i| i.spec().container_port)
                    .filter(|port| seen.insert(*port))
                    .collect()
            }
        };
        let mut targets: Vec<Target> = ports
            .iter()
            .map(|&port| Target {
                port,
                candidates: Vec::new(),
            })
            .collect();
        let slot: HashMap<u16, usize> = ports.iter().enumerate().map(|(i, &p)| (p, i)).collect();
        for (index, intercept) in compiled.iter().enumerate() {
            if let Some(&target) = slot.get(&intercept.spec().container_port) {
                targets[target].candidates.push(index);
            }
        }
        if rules.candidate_order == CandidateOrder::ById {
            for target in &mut targets {
                target
                    .candidates
                    .sort_unstable_by(|&a, &b| compiled[a].id().cmp(compiled[b].id()));
            }
        }
        Ok(Self {
            bytes: approx_bytes(&compiled),
            intercepts: compiled,
            by_id,
            targets,
            declared_ports: workload_ports.is_some(),
            rules,
        })
    }

    pub(crate) fn specs(&self) -> impl ExactSizeIterator<Item = &Intercept> {
        self.intercepts.iter().map(|i| i.spec())
    }

    /// The compiled intercepts, in declaration order.
    pub(crate) fn compiled(&self) -> &[Arc<CompiledIntercept>] {
        &self.intercepts
    }

    /// What keeping it costs in memory, roughly, erring high: the journal
    /// counts it in its bytes while its entries refer to it.
    pub(crate) fn approx_bytes(&self) -> usize {
        self.bytes
    }

    /// How many intercepts it has.
    pub(crate) fn len(&self) -> usize {
        self.intercepts.len()
    }

    /// Whether an intercept has this ID.
    pub(crate) fn contains(&self, id: &str) -> bool {
        self.by_id.contains_key(id)
    }

    /// The rules it was built with.
    pub(crate) fn rules(&self) -> Rules {
        self.rules
    }

    /// The intercept with this ID.
    pub(crate) fn get(&self, id: &str) -> Option<&Intercept> {
        self.by_id.get(id).map(|&i| self.intercepts[i].spec())
    }

    /// The workload's ports, in agent-configuration order.
    pub(crate) fn workload_ports(&self) -> Vec<u16> {
        self.targets.iter().map(|t| t.port).collect()
    }

    /// Whether the workload's ports were declared rather than taken from the intercepts.
    pub(crate) fn has_declared_ports(&self) -> bool {
        self.declared_ports
    }

    /// Invalid regular expressions taken as literal values: `(id, key, value)`.
    pub(crate) fn literal_regexes(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.intercepts.iter().flat_map(|i| {
            i.literal_regexes()
                .iter()
                .map(|l| (i.spec().id.as_str(), l.key.as_str(), l.value.as_str()))
        })
    }

    pub(crate) fn decide<'s>(&'s self, side: Side, query: &Query<'_>) -> Decision<'s> {
        self.decide_traced(side, query, &mut Untraced)
    }

    /// The decision and why it was made. Slower than [`decide`](Self::decide):
    /// every failed filter is described.
    pub(crate) fn explain<'s>(&'s self, side: Side, query: &Query<'_>) -> (Decision<'s>, Reason) {
        let mut why = Why::default();
        let decision = self.decide_traced(side, query, &mut why);
        let reason = why.reason.unwrap_or(Reason::NoMatch {
            container_port: None,
            candidates: Vec::new(),
            unlisted: 0,
        });
        (decision, reason)
    }

    fn decide_traced<'s, T: Trace>(
        &'s self,
        side: Side,
        query: &Query<'_>,
        trace: &mut T,
    ) -> Decision<'s> {
        let matched = match side {
            Side::Client => self.decide_client(query, trace),
            Side::Agent => self.decide_agent(query, trace),
        };
        Decision { matched }
    }

    fn by_caller(&self, caller: &[u8]) -> Option<&CompiledIntercept> {
        let caller = std::str::from_utf8(caller).ok()?;
        self.by_id.get(caller).map(|&i| &*self.intercepts[i])
    }

    /// The workstation knows only the caller's own intercept; the container
    /// port plays no part.
    fn decide_client<T: Trace>(
        &self,
        query: &Query<'_>,
        trace: &mut T,
    ) -> Option<&CompiledIntercept> {
        let caller = query.caller_id();
        if caller.is_empty() {
            trace.conclude(|_| Reason::NoCallerId);
            return None;
        }
        let Some(intercept) = self.by_caller(caller) else {
            trace.conclude(|_| Reason::UnknownCaller {
                caller: String::from_utf8_lossy(caller).into_owned(),
            });
            return None;
        };
        trace.verdict(intercept, query, None)
    }

    /// The traffic-agent picks one target by port (no fall-through to
    /// another), leaves out other callers' intercepts, and takes the first
    /// candidate that matches.
    fn decide_agent<T: Trace>(
        &self,
        query: &Query<'_>,
        trace: &mut T,
    ) -> Option<&CompiledIntercept> {
        let target = match query.container_port {
            0 => match self.rules.unspecified_port {
                PortChoice::FirstTarget => self.targets.first(),
                PortChoice::OnlyTarget => match self.targets.as_slice() {
                    [only] => Some(only),
                    [] => None,
                    _ => {
                        trace.conclude(|_| Reason::NoPortGiven {
                            workload_ports: self.workload_ports(),
                        });
                        return None;
                    }
                },
            },
            port => self.targets.iter().find(|t| t.port == port),
        };
        let Some(target) = target else {
            trace.conclude(|_| Reason::NoTarget {
                container_port: query.container_port,
                workload_ports: self.workload_ports(),
            });
            return None;
        };
        let caller = query.caller_id();
        if !caller.is_empty() {
            // IDs are unique: the caller's intercept is the only candidate left.
            let Some(intercept) = self.by_caller(caller) else {
                trace.conclude(|_| Reason::UnknownCaller {
                    caller: String::from_utf8_lossy(caller).into_owned(),
                });
                return None;
            };
            if intercept.spec().container_port != target.port {
                trace.conclude(|_| Reason::CallerOnOtherPort {
                    caller: intercept.spec().id.clone(),
                    intercept_port: intercept.spec().container_port,
                    container_port: target.port,
                });
                return None;
            }
            return trace.verdict(intercept, query, Some(target.port));
        }
        let matched = target
            .candidates
            .iter()
            .map(|&i| &*self.intercepts[i])
            .find(|i| trace.check(i, query));
        trace.conclude(|tried| match matched {
            Some(intercept) => Reason::Matched {
                intercept: intercept.spec().id.clone(),
                passed_over: tried.candidates,
            },
            None => Reason::NoMatch {
                container_port: Some(target.port),
                candidates: tried.candidates,
                unlisted: tried.unlisted,
            },
        });
        matched
    }
}

/// What a decision notes as it goes. The request path uses [`Untraced`],
/// which notes nothing and costs nothing; the journal and `explain` use
/// [`Why`].
trait Trace {
    /// Whether `intercept` matches the request.
    fn check(&mut self, intercept: &CompiledIntercept, query: &Query<'_>) -> bool;

    /// Records the reason, built from the candidates that failed so far.
    fn conclude(&mut self, reason: impl FnOnce(Tried) -> Reason);

    /// The decision for a single candidate, with its reason.
    fn verdict<'i>(
        &mut self,
        intercept: &'i CompiledIntercept,
        query: &Query<'_>,
        container_port: Option<u16>,
    ) -> Option<&'i CompiledIntercept> {
        let matched = self.check(intercept, query);
        self.conclude(|tried| {
            if matched {
                Reason::Matched {
                    intercept: intercept.spec().id.clone(),
                    passed_over: Vec::new(),
                }
            } else {
                Reason::NoMatch {
                    container_port,
                    candidates: tried.candidates,
                    unlisted: tried.unlisted,
                }
            }
        });
        matched.then_some(intercept)
    }
}

/// The candidates that failed, as far as they are described.
#[derive(Debug, Default)]
struct Tried {
    candidates: Vec<Miss>,
    unlisted: usize,
}

struct Untraced;

impl Trace for Untraced {
    #[inline]
    fn check(&mut self, intercept: &CompiledIntercept, query: &Query<'_>) -> bool {
        intercept.matches(query.headers, query.path)
    }

    #[inline]
    fn conclude(&mut self, _reason: impl FnOnce(Tried) -> Reason) {}
}

/// How many failed candidates a reason lists; past them, it only counts.
/// An agent may try thousands of intercepts on one port.
pub(crate) const LISTED_CANDIDATES: usize = 16;

#[derive(Default)]
struct Why {
    tried: Tried,
    reason: Option<Reason>,
}

impl Trace for Why {
    fn check(&mut self, intercept: &CompiledIntercept, query: &Query<'_>) -> bool {
        if self.tried.candidates.len() >= LISTED_CANDIDATES {
            let matched = intercept.matches(query.headers, query.path);
            if !matched {
                self.tried.unlisted += 1;
            }
            return matched;
        }
        match intercept.explain(query.headers, query.path) {
            Ok(()) => true,
            Err(mismatch) => {
                self.tried
                    .candidates
                    .push(Miss::new(intercept.spec().id.clone(), mismatch));
                false
            }
        }
    }

    fn conclude(&mut self, reason: impl FnOnce(Tried) -> Reason) {
        self.reason = Some(reason(std::mem::take(&mut self.tried)));
    }
}

/// A compiled regular expression's usual footprint, erring high.
const REGEX_BYTES: usize = 4096;

/// The memory a set of intercepts holds: indexes, specs and compiled
/// regular expressions, roughly. Counted whole even where an edit shares
/// intercepts with the set before it.
fn approx_bytes(compiled: &[Arc<CompiledIntercept>]) -> usize {
    let text = |value: &str| {
        value.len()
            + if telepresence_api::is_regex(value) {
                REGEX_BYTES
            } else {
                0
            }
    };
    compiled
        .iter()
        .map(|intercept| {
            let spec = intercept.spec();
            256 + spec.id.len()
                + spec
                    .headers
                    .iter()
                    .map(|(name, value)| name.len() + text(value))
                    .sum::<usize>()
                + spec
                    .path_equal
                    .iter()
                    .chain(&spec.path_prefix)
                    .map(String::len)
                    .sum::<usize>()
                + spec
                    .path_regex
                    .iter()
                    .map(|p| p.len() + REGEX_BYTES)
                    .sum::<usize>()
                + spec
                    .metadata
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>()
        })
        .sum()
}

fn check_workload_ports(ports: &[u16]) -> Result<(), InterceptSetError> {
    let mut seen = HashSet::new();
    for &port in ports {
        if port == 0 {
            return Err(InterceptSetError::WorkloadPorts(
                "port 0 is out of range 1..=65535".to_owned(),
            ));
        }
        if !seen.insert(port) {
            return Err(InterceptSetError::WorkloadPorts(format!(
                "port {port} is listed twice"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn rules(version: &str) -> Rules {
        version
            .parse::<crate::TelepresenceVersion>()
            .unwrap()
            .rules()
    }

    fn current() -> Rules {
        Rules::default()
    }

    fn legacy() -> Rules {
        rules("2.24")
    }

    fn set(intercepts: Vec<Intercept>) -> InterceptSet {
        InterceptSet::new(&intercepts, current(), None).expect("valid set")
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// The ID of the intercept a request belongs to.
    fn decide(
        set: &InterceptSet,
        side: Side,
        pairs: &[(&str, &str)],
        path: &str,
        port: u16,
    ) -> Option<String> {
        let headers = headers(pairs);
        let query = Query {
            headers: &headers,
            path: path.as_bytes(),
            container_port: port,
        };
        let decided = set.decide(side, &query).matched.map(|i| i.id().to_string());
        // Explaining must never change the decision.
        let (explained, reason) = set.explain(side, &query);
        assert_eq!(explained.matched.map(|i| i.id().to_string()), decided);
        match &reason {
            Reason::Matched { intercept, .. } => assert_eq!(Some(intercept), decided.as_ref()),
            other => assert_eq!(decided, None, "{other}"),
        }
        decided
    }

    /// Why `side` decides what it does.
    fn why(
        set: &InterceptSet,
        side: Side,
        pairs: &[(&str, &str)],
        path: &str,
        port: u16,
    ) -> String {
        let headers = headers(pairs);
        let query = Query {
            headers: &headers,
            path: path.as_bytes(),
            container_port: port,
        };
        set.explain(side, &query).1.to_string()
    }

    #[test]
    fn the_workstation_says_why() {
        let s = set(vec![
            Intercept::new("a").header("x-dev", "alice"),
            Intercept::new("b").path_prefix("/api"),
        ]);
        let client = |pairs: &[(&str, &str)], path| why(&s, Side::Client, pairs, path, 0);
        assert_eq!(
            client(&[("x-dev", "alice")], ""),
            "the request names no intercept (no x-telepresence-caller-intercept-id header); \
             the workstation decides only for its own"
        );
        assert_eq!(
            client(&[(CALLER, "c")], ""),
            r#"caller intercept "c" is not an intercept here"#
        );
        assert_eq!(
            client(&[(CALLER, "a"), ("x-dev", "bob")], ""),
            r#"no intercept matches: a: header x-dev: expected "alice", got "bob""#
        );
        assert_eq!(
            client(&[(CALLER, "a")], ""),
            r#"no intercept matches: a: header x-dev: expected "alice", got no such header"#
        );
        assert_eq!(
            client(&[(CALLER, "b")], "/x"),
            r#"no intercept matches: b: path "/x" matches none of: starting with "/api""#
        );
        assert_eq!(
            client(&[(CALLER, "a"), ("x-dev", "alice")], ""),
            "intercept a matches"
        );
    }

    #[test]
    fn the_agent_says_why() {
        let s = InterceptSet::new(
            &[
                Intercept::new("a")
                    .container_port(8080)
                    .header("x-dev", "alice"),
                Intercept::new("b")
                    .container_port(8080)
                    .header("x-dev", "^b"),
                Intercept::new("c").container_port(9090),
            ],
            current(),
            Some(&[8080, 9090, 7070]),
        )
        .unwrap();
        let agent = |pairs: &[(&str, &str)], port| why(&s, Side::Agent, pairs, "", port);
        assert_eq!(
            agent(&[("x-dev", "bob")], 0),
            r#"intercept b matches (tried before it: a: header x-dev: expected "alice", got "bob")"#
        );
        assert_eq!(
            agent(&[("x-dev", "carol")], 8080),
            r#"no intercept matches: a: header x-dev: expected "alice", got "carol"; b: header x-dev: expected a match of /^b/, got "carol""#
        );
        assert_eq!(agent(&[], 7070), "no intercept on port 7070");
        assert_eq!(
            agent(&[], 6060),
            "port 6060 has no target (the workload's ports: 8080, 9090, 7070)"
        );
        assert_eq!(
            agent(&[(CALLER, "c")], 8080),
            "caller intercept c is on port 9090, not on port 8080"
        );
        assert_eq!(
            agent(&[(CALLER, "z")], 8080),
            r#"caller intercept "z" is not an intercept here"#
        );
        assert_eq!(agent(&[(CALLER, "c")], 9090), "intercept c matches");
        let legacy = InterceptSet::new(
            &[
                Intercept::new("a").container_port(8080),
                Intercept::new("c").container_port(9090),
            ],
            legacy(),
            None,
        )
        .unwrap();
        assert_eq!(
            why(&legacy, Side::Agent, &[], "", 0),
            "no container port given and the workload has several (8080, 9090); before \
             Telepresence 2.25 the agent then picks none"
        );
        assert_eq!(
            why(&set(vec![]), Side::Agent, &[], "", 0),
            "no intercept is active, so no port is intercepted"
        );
    }

    #[test]
    fn a_reason_lists_a_bounded_number_of_candidates() {
        let many: Vec<Intercept> = (0..LISTED_CANDIDATES + 5)
            .map(|i| Intercept::new(format!("i{i}")).header("x-dev", format!("dev{i}")))
            .collect();
        let s = set(many);
        let headers = headers(&[("x-dev", "nobody")]);
        let query = Query {
            headers: &headers,
            path: b"",
            container_port: 0,
        };
        match s.explain(Side::Agent, &query).1 {
            Reason::NoMatch {
                candidates,
                unlisted,
                ..
            } => {
                assert_eq!(candidates.len(), LISTED_CANDIDATES);
                assert_eq!(unlisted, 5);
            }
            other => panic!("{other:?}"),
        }
        assert!(why(&s, Side::Agent, &[("x-dev", "nobody")], "", 0).ends_with("; and 5 more"));
    }

    const CALLER: &str = CALLER_INTERCEPT_ID_HEADER;

    #[test]
    fn client_side_uses_only_the_callers_intercept() {
        let s = set(vec![
            Intercept::new("a"),
            Intercept::new("b").header("x", "y"),
        ]);
        assert_eq!(
            decide(&s, Side::Client, &[(CALLER, "a")], "", 0),
            Some("a".into())
        );
        assert_eq!(decide(&s, Side::Client, &[(CALLER, "b")], "", 0), None);
        assert_eq!(
            decide(&s, Side::Client, &[(CALLER, "b"), ("x", "y")], "", 0),
            Some("b".into())
        );
    }

    #[test]
    fn client_side_without_a_known_caller_intercepts_nothing() {
        let s = set(vec![Intercept::new("a")]);
        assert_eq!(decide(&s, Side::Client, &[], "", 0), None);
        assert_eq!(decide(&s, Side::Client, &[(CALLER, "")], "", 0), None);
        assert_eq!(decide(&s, Side::Client, &[(CALLER, "A")], "", 0), None);
        assert_eq!(decide(&s, Side::Client, &[(CALLER, "a ")], "", 0), None);
    }

    #[test]
    fn client_side_ignores_the_container_port() {
        let s = set(vec![Intercept::new("a").container_port(8080)]);
        for port in [0, 8080, 9090] {
            assert_eq!(
                decide(&s, Side::Client, &[(CALLER, "a")], "", port),
                Some("a".into())
            );
        }
    }

    #[test]
    fn agent_side_with_one_port_takes_it_when_none_is_given() {
        for rules in [current(), legacy()] {
            let s = InterceptSet::new(
                &[
                    Intercept::new("a").container_port(8080).header("x", "1"),
                    Intercept::new("b").container_port(8080).header("x", "2"),
                ],
                rules,
                None,
            )
            .unwrap();
            assert_eq!(
                decide(&s, Side::Agent, &[("x", "2")], "", 0),
                Some("b".into())
            );
            assert_eq!(
                decide(&s, Side::Agent, &[("x", "2")], "", 8080),
                Some("b".into())
            );
            assert_eq!(decide(&s, Side::Agent, &[("x", "2")], "", 9090), None);
            assert_eq!(decide(&s, Side::Agent, &[("x", "3")], "", 0), None);
        }
    }

    #[test]
    fn agent_side_with_several_ports_and_none_given() {
        let intercepts = [
            Intercept::new("a").container_port(8080),
            Intercept::new("b").container_port(9090),
        ];
        // 2.25 and later: the first target; before: none.
        let now = InterceptSet::new(&intercepts, current(), None).unwrap();
        let before = InterceptSet::new(&intercepts, legacy(), None).unwrap();
        assert_eq!(decide(&now, Side::Agent, &[], "", 0), Some("a".into()));
        assert_eq!(decide(&before, Side::Agent, &[], "", 0), None);
        for s in [&now, &before] {
            assert_eq!(decide(s, Side::Agent, &[], "", 8080), Some("a".into()));
            assert_eq!(decide(s, Side::Agent, &[], "", 9090), Some("b".into()));
            assert_eq!(decide(s, Side::Agent, &[], "", 7070), None);
        }
    }

    #[test]
    fn agent_side_first_target_may_be_unintercepted() {
        let intercepts = [Intercept::new("b").container_port(9090)];
        let s = InterceptSet::new(&intercepts, current(), Some(&[8080, 9090])).unwrap();
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), None, "no fall-through");
        assert_eq!(decide(&s, Side::Agent, &[], "", 9090), Some("b".into()));
        assert_eq!(s.workload_ports(), [8080, 9090]);
        let first = InterceptSet::new(&intercepts, current(), Some(&[9090, 8080])).unwrap();
        assert_eq!(decide(&first, Side::Agent, &[], "", 0), Some("b".into()));
        // Legacy: one intercepted port among two is still two targets.
        let old = InterceptSet::new(&intercepts, legacy(), Some(&[8080, 9090])).unwrap();
        assert_eq!(decide(&old, Side::Agent, &[], "", 0), None);
        let single = InterceptSet::new(&intercepts, legacy(), Some(&[9090])).unwrap();
        assert_eq!(decide(&single, Side::Agent, &[], "", 0), Some("b".into()));
    }

    #[test]
    fn agent_side_without_intercepts_intercepts_nothing() {
        let s = set(vec![]);
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), None);
        assert_eq!(decide(&s, Side::Agent, &[], "", 8080), None);
        let ports = InterceptSet::new(&[], current(), Some(&[8080])).unwrap();
        assert_eq!(decide(&ports, Side::Agent, &[], "", 0), None);
    }

    #[test]
    fn agent_side_leaves_out_other_callers_intercepts() {
        let s = set(vec![Intercept::new("a"), Intercept::new("b")]);
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), Some("a".into()));
        assert_eq!(
            decide(&s, Side::Agent, &[(CALLER, "")], "", 0),
            Some("a".into())
        );
        assert_eq!(
            decide(&s, Side::Agent, &[(CALLER, "b")], "", 0),
            Some("b".into())
        );
        assert_eq!(decide(&s, Side::Agent, &[(CALLER, "c")], "", 0), None);
        let ports = InterceptSet::new(
            &[
                Intercept::new("a"),
                Intercept::new("b").container_port(9090),
            ],
            current(),
            None,
        )
        .unwrap();
        assert_eq!(
            decide(&ports, Side::Agent, &[(CALLER, "b")], "", 8080),
            None,
            "the caller's intercept is on another target"
        );
    }

    #[test]
    fn agent_side_tries_candidates_by_id_from_2_25_and_in_order_before() {
        let intercepts = [
            Intercept::new("c"),
            Intercept::new("b").header("x", "y"),
            Intercept::new("a").header("x", "^y"),
        ];
        let now = InterceptSet::new(&intercepts, current(), None).unwrap();
        let before = InterceptSet::new(&intercepts, legacy(), None).unwrap();
        assert_eq!(
            decide(&now, Side::Agent, &[("x", "y")], "", 0),
            Some("a".into())
        );
        assert_eq!(
            decide(&now, Side::Agent, &[("x", "zz")], "", 0),
            Some("c".into())
        );
        assert_eq!(
            decide(&before, Side::Agent, &[("x", "y")], "", 0),
            Some("c".into())
        );
        let ordered = InterceptSet::new(&intercepts[1..], legacy(), None).unwrap();
        assert_eq!(
            decide(&ordered, Side::Agent, &[("x", "y")], "", 0),
            Some("b".into())
        );
        // Byte order: upper case before lower case, "a:10" before "a:9".
        let ids = InterceptSet::new(
            &[
                Intercept::new("a:9"),
                Intercept::new("a:10"),
                Intercept::new("B"),
            ],
            current(),
            None,
        )
        .unwrap();
        assert_eq!(decide(&ids, Side::Agent, &[], "", 0), Some("B".into()));
    }

    #[test]
    fn consume_here_is_the_inverse_on_the_agent_side() {
        let compiled = Intercept::new("a").compile(&current()).unwrap();
        let hit = Decision {
            matched: Some(&compiled),
        };
        let miss = Decision { matched: None };
        assert!(hit.consume_here(Side::Client));
        assert!(!hit.consume_here(Side::Agent));
        assert!(!miss.consume_here(Side::Client));
        assert!(miss.consume_here(Side::Agent));
    }

    #[test]
    fn duplicate_ids_are_refused_naming_both() {
        let err = InterceptSet::new(
            &[
                Intercept::new("a"),
                Intercept::new("b"),
                Intercept::new("a"),
            ],
            current(),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"intercepts[2] ("a"): id: duplicate intercept ID, already used by intercepts[0]"#
        );
    }

    #[test]
    fn workload_ports_are_checked_and_name_the_culprit() {
        let err = InterceptSet::new(
            &[
                Intercept::new("a"),
                Intercept::new("b").container_port(7070),
            ],
            current(),
            Some(&[8080, 9090]),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"intercepts[1] ("b"): container_port: 7070 is not a port of the workload (container_ports: 8080, 9090)"#
        );
        for (ports, message) in [
            (
                &[8080, 8080][..],
                "container_ports: port 8080 is listed twice",
            ),
            (
                &[0][..],
                "container_ports: port 0 is out of range 1..=65535",
            ),
        ] {
            let err = InterceptSet::new(&[], current(), Some(ports)).unwrap_err();
            assert_eq!(err.to_string(), message);
        }
        let none = InterceptSet::new(&[Intercept::new("a")], current(), Some(&[])).unwrap_err();
        assert!(
            none.to_string().contains("(container_ports: none)"),
            "{none}"
        );
    }

    #[test]
    fn ports_come_from_the_intercepts_in_order_of_first_appearance() {
        let s = set(vec![
            Intercept::new("z").container_port(9090),
            Intercept::new("a").container_port(8080),
            Intercept::new("m").container_port(9090),
        ]);
        assert_eq!(s.workload_ports(), [9090, 8080]);
        assert!(!s.has_declared_ports());
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), Some("m".into()));
    }
}

/// The decision against a plain model of Telepresence's rules, written from
/// the rules as stated, over arbitrary intercepts, requests, workload ports
/// and both families of releases.
#[cfg(test)]
mod properties {
    use http::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    use super::*;

    const NAMES: &[&str] = &["x-dev", "X-Dev", "x-team", "traceparent"];
    const VALUES: &[&str] = &[
        "",
        "alice",
        "Alice",
        "bob",
        "^a",
        "b$",
        "a.c",
        ".*",
        "al(ice|ex)",
        "[ab]+",
        "(dev",
        "[a",
    ];
    const PATHS: &[&str] = &["", "/", "/api", "/api/v1", "/apix", "/other", "api", "/v1["];
    const PATH_REGEXES: &[&str] = &["^/api", "v1", "x$", ".*", "/v1[", "(api"];
    const IDS: &[&str] = &["b", "a", "c", "B", "a:10", "a:9"];

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Family {
        Current,
        Legacy,
    }

    impl Family {
        fn rules(self) -> Rules {
            let version = match self {
                Self::Current => "2.27",
                Self::Legacy => "2.24",
            };
            version
                .parse::<crate::TelepresenceVersion>()
                .unwrap()
                .rules()
        }
    }

    #[derive(Clone, Debug)]
    enum PathRule {
        Equal(&'static str),
        Prefix(&'static str),
        Regex(&'static str),
    }

    #[derive(Clone, Debug)]
    struct Model {
        id: &'static str,
        port: u16,
        headers: Vec<(&'static str, &'static str)>,
        paths: Vec<PathRule>,
    }

    fn metachar(value: &str) -> bool {
        value.chars().any(|c| "\\.+*?()|[]{}^$".contains(c))
    }

    /// An invalid regex is a literal value (the model is only asked about
    /// intercepts the release accepts).
    fn regex_matches(pattern: &str, value: &str) -> bool {
        match regex::Regex::new(pattern) {
            Ok(re) => !value.is_empty() && re.is_match(value),
            Err(_) => pattern == value,
        }
    }

    fn value_matches(rule: &str, value: &str) -> bool {
        if metachar(rule) {
            regex_matches(rule, value)
        } else {
            rule == value
        }
    }

    impl Model {
        fn matches(&self, request: &Request) -> bool {
            let first = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map_or("", |(_, v)| *v)
            };
            self.headers
                .iter()
                .all(|(name, rule)| value_matches(rule, first(name)))
                && (self.paths.is_empty()
                    || self.paths.iter().any(|rule| match rule {
                        PathRule::Equal(p) => request.path == *p,
                        PathRule::Prefix(p) => request.path.starts_with(p),
                        // A path regex is a regex whatever its characters.
                        PathRule::Regex(r) => regex_matches(r, request.path),
                    }))
        }

        /// Whether a release before 2.25 accepts it.
        fn legacy_accepts(&self) -> bool {
            let invalid = |p: &str| regex::Regex::new(p).is_err();
            self.paths.len() <= 1
                && !self.headers.iter().any(|(_, v)| metachar(v) && invalid(v))
                && !self
                    .paths
                    .iter()
                    .any(|p| matches!(p, PathRule::Regex(r) if invalid(r)))
        }
    }

    #[derive(Clone, Debug)]
    struct Request {
        headers: Vec<(&'static str, &'static str)>,
        caller: Option<&'static str>,
        path: &'static str,
        port: u16,
    }

    /// The rules as stated: which intercept (by ID) a request belongs to.
    fn reference(
        family: Family,
        side: Side,
        intercepts: &[Model],
        ports: Option<&[u16]>,
        request: &Request,
    ) -> Option<&'static str> {
        let caller = request.caller.unwrap_or("");
        match side {
            Side::Client => intercepts
                .iter()
                .find(|i| !caller.is_empty() && i.id == caller)
                .filter(|i| i.matches(request))
                .map(|i| i.id),
            Side::Agent => {
                let mut targets: Vec<u16> = Vec::new();
                match ports {
                    Some(ports) => targets.extend(ports),
                    None => {
                        for i in intercepts {
                            if !targets.contains(&i.port) {
                                targets.push(i.port);
                            }
                        }
                    }
                }
                let port = match (request.port, family) {
                    (0, Family::Current) => *targets.first()?,
                    (0, Family::Legacy) if targets.len() == 1 => targets[0],
                    (0, Family::Legacy) => return None,
                    (port, _) if targets.contains(&port) => port,
                    _ => return None,
                };
                let mut candidates: Vec<&Model> = intercepts
                    .iter()
                    .filter(|i| i.port == port)
                    .filter(|i| caller.is_empty() || i.id == caller)
                    .collect();
                if family == Family::Current {
                    candidates.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
                }
                candidates
                    .into_iter()
                    .find(|i| i.matches(request))
                    .map(|i| i.id)
            }
        }
    }

    fn path_rule() -> impl Strategy<Value = PathRule> {
        prop_oneof![
            prop::sample::select(PATHS).prop_map(PathRule::Equal),
            prop::sample::select(PATHS).prop_map(PathRule::Prefix),
            prop::sample::select(PATH_REGEXES).prop_map(PathRule::Regex),
        ]
    }

    fn intercept_model() -> impl Strategy<Value = Model> {
        (
            prop::sample::select(IDS),
            prop::sample::select(&[8080u16, 9090][..]),
            prop::collection::btree_map(
                prop::sample::select(&["x-dev", "x-team", "traceparent"][..]),
                prop::sample::select(VALUES),
                0..3,
            ),
            prop_oneof![
                2 => prop::collection::vec(path_rule(), 0..2),
                1 => prop::collection::vec(path_rule(), 2..4),
            ],
        )
            .prop_map(|(id, port, headers, paths)| Model {
                id,
                port,
                headers: headers.into_iter().collect(),
                paths,
            })
    }

    fn request() -> impl Strategy<Value = Request> {
        (
            prop::collection::vec(
                (prop::sample::select(NAMES), prop::sample::select(VALUES)),
                0..5,
            ),
            prop::option::of(prop::sample::select(&["a", "b", "c", "", "A", "a:10"][..])),
            prop::sample::select(PATHS),
            prop::sample::select(&[0u16, 8080, 9090, 7070][..]),
        )
            .prop_map(|(headers, caller, path, port)| Request {
                headers,
                caller,
                path,
                port,
            })
    }

    fn spec(m: &Model) -> Intercept {
        let mut spec = Intercept::new(m.id)
            .container_port(m.port)
            .metadata("id", m.id);
        for (name, value) in &m.headers {
            spec = spec.header(*name, *value);
        }
        for rule in &m.paths {
            spec = match *rule {
                PathRule::Equal(p) => spec.path_equal(p),
                PathRule::Prefix(p) => spec.path_prefix(p),
                PathRule::Regex(r) => spec.path_regex(r),
            };
        }
        spec
    }

    /// Workload port lists that hold every port the generator uses.
    const PORT_LISTS: &[&[u16]] = &[&[8080, 9090], &[9090, 8080], &[7070, 8080, 9090]];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn decisions_follow_the_stated_rules(
            intercepts in prop::collection::vec(intercept_model(), 0..4)
                .prop_map(|mut v| { let mut seen = Vec::new(); v.retain(|m| { let new = !seen.contains(&m.id); seen.push(m.id); new }); v }),
            request in request(),
            agent in any::<bool>(),
            legacy in any::<bool>(),
            ports in prop::option::of(prop::sample::select(PORT_LISTS)),
        ) {
            let side = if agent { Side::Agent } else { Side::Client };
            let family = if legacy { Family::Legacy } else { Family::Current };
            let specs: Vec<Intercept> = intercepts.iter().map(spec).collect();
            let built = InterceptSet::new(&specs, family.rules(), ports);
            let accepted = family == Family::Current || intercepts.iter().all(Model::legacy_accepts);
            prop_assert_eq!(built.is_ok(), accepted, "{:?}", built.as_ref().err());
            let Ok(set) = built else { return Ok(()) };
            let mut headers = HeaderMap::new();
            for (name, value) in &request.headers {
                headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static(value));
            }
            if let Some(caller) = request.caller {
                headers.insert(CALLER_INTERCEPT_ID_HEADER, HeaderValue::from_static(caller));
            }
            let decision = set.decide(side, &Query { headers: &headers, path: request.path.as_bytes(), container_port: request.port });
            let got = decision.metadata().map(|m| m["id"].clone());
            prop_assert_eq!(got.as_deref(), reference(family, side, &intercepts, ports, &request));
        }
    }
}
