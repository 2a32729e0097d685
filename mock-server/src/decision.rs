//! The decision: which intercept, if any, a request belongs to, on each side.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::intercept::{CompiledIntercept, Intercept, InterceptError};

/// The request header that carries the caller's intercept ID.
pub const CALLER_INTERCEPT_ID_HEADER: &str = "x-telepresence-caller-intercept-id";

/// Which Telepresence component the server stands in for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The user daemon on the workstation (`clientSide: true`): the intercept
    /// is chosen by the caller's intercept ID, and `/consume-here` answers
    /// whether it matches.
    #[default]
    Client,
    /// The traffic-agent in the pod (`clientSide: false`): the intercept is
    /// chosen by container port, and `/consume-here` answers the inverse.
    Agent,
}

impl Side {
    /// `client` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Agent => "agent",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Self::Client),
            "agent" => Ok(Self::Agent),
            other => Err(format!("unknown side `{other}` (expected client or agent)")),
        }
    }
}

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decision<'a> {
    /// The matching intercept's metadata, when one matched.
    pub(crate) matched: Option<&'a BTreeMap<String, String>>,
}

impl Decision<'_> {
    pub(crate) fn intercepted(&self) -> bool {
        self.matched.is_some()
    }

    /// The cluster consumes what is not intercepted; the workstation what is.
    pub(crate) fn consume_here(&self, side: Side) -> bool {
        match side {
            Side::Client => self.intercepted(),
            Side::Agent => !self.intercepted(),
        }
    }
}

/// The intercepts in force, in declaration order, validated.
#[derive(Clone, Debug, Default)]
pub(crate) struct InterceptSet {
    intercepts: Vec<CompiledIntercept>,
    /// The port every intercept uses, when they all use one and the same.
    sole_port: Option<u16>,
}

/// Why a set of intercepts was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
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
}

impl InterceptSet {
    pub(crate) fn new(intercepts: &[Intercept]) -> Result<Self, InterceptSetError> {
        let mut compiled: Vec<CompiledIntercept> = Vec::with_capacity(intercepts.len());
        for (index, intercept) in intercepts.iter().enumerate() {
            if let Some(first) = intercepts[..index]
                .iter()
                .position(|i| i.id == intercept.id)
            {
                return Err(InterceptSetError::DuplicateId {
                    index,
                    id: intercept.id.clone(),
                    first,
                });
            }
            compiled.push(
                intercept
                    .compile()
                    .map_err(|error| InterceptSetError::Invalid {
                        index,
                        id: intercept.id.clone(),
                        error,
                    })?,
            );
        }
        let sole_port = compiled
            .first()
            .map(|i| i.spec.container_port)
            .filter(|p| compiled.iter().all(|i| i.spec.container_port == *p));
        Ok(Self {
            intercepts: compiled,
            sole_port,
        })
    }

    pub(crate) fn specs(&self) -> impl ExactSizeIterator<Item = &Intercept> {
        self.intercepts.iter().map(|i| &i.spec)
    }

    pub(crate) fn decide<'s>(&'s self, side: Side, query: &Query<'_>) -> Decision<'s> {
        let matched = match side {
            Side::Client => self.decide_client(query),
            Side::Agent => self.decide_agent(query),
        };
        Decision {
            matched: matched.map(|i| &i.spec.metadata),
        }
    }

    /// The workstation knows only the caller's own intercept; the container
    /// port plays no part.
    fn decide_client(&self, query: &Query<'_>) -> Option<&CompiledIntercept> {
        let caller = query.caller_id();
        if caller.is_empty() {
            return None;
        }
        self.intercepts
            .iter()
            .find(|i| i.spec.id.as_bytes() == caller)
            .filter(|i| i.matches(query.headers, query.path))
    }

    /// The traffic-agent picks the intercepts on the requested port (or the
    /// only port in use), skips other callers' intercepts, and takes the first
    /// that matches.
    fn decide_agent(&self, query: &Query<'_>) -> Option<&CompiledIntercept> {
        let port = match query.container_port {
            0 => self.sole_port?,
            port => port,
        };
        let caller = query.caller_id();
        self.intercepts
            .iter()
            .filter(|i| i.spec.container_port == port)
            .filter(|i| caller.is_empty() || i.spec.id.as_bytes() == caller)
            .find(|i| i.matches(query.headers, query.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn set(intercepts: Vec<Intercept>) -> InterceptSet {
        InterceptSet::new(&intercepts).expect("valid set")
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

    /// `(intercepted, metadata value of "who")` for a request.
    fn decide(
        set: &InterceptSet,
        side: Side,
        pairs: &[(&str, &str)],
        path: &str,
        port: u16,
    ) -> Option<String> {
        let headers = headers(pairs);
        let decision = set.decide(
            side,
            &Query {
                headers: &headers,
                path: path.as_bytes(),
                container_port: port,
            },
        );
        decision
            .matched
            .map(|m| m.get("who").cloned().unwrap_or_default())
    }

    const CALLER: &str = CALLER_INTERCEPT_ID_HEADER;

    #[test]
    fn client_side_uses_only_the_callers_intercept() {
        let s = set(vec![
            Intercept::new("a").metadata("who", "a"),
            Intercept::new("b").header("x", "y").metadata("who", "b"),
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
        let s = set(vec![
            Intercept::new("a")
                .container_port(8080)
                .metadata("who", "a"),
        ]);
        for port in [0, 8080, 9090] {
            assert_eq!(
                decide(&s, Side::Client, &[(CALLER, "a")], "", port),
                Some("a".into())
            );
        }
    }

    #[test]
    fn agent_side_selects_the_sole_port_when_none_is_given() {
        let s = set(vec![
            Intercept::new("a")
                .container_port(8080)
                .header("x", "1")
                .metadata("who", "a"),
            Intercept::new("b")
                .container_port(8080)
                .header("x", "2")
                .metadata("who", "b"),
        ]);
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

    #[test]
    fn agent_side_with_several_ports_needs_the_container_port() {
        let s = set(vec![
            Intercept::new("a")
                .container_port(8080)
                .metadata("who", "a"),
            Intercept::new("b")
                .container_port(9090)
                .metadata("who", "b"),
        ]);
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), None);
        assert_eq!(decide(&s, Side::Agent, &[], "", 8080), Some("a".into()));
        assert_eq!(decide(&s, Side::Agent, &[], "", 9090), Some("b".into()));
        assert_eq!(decide(&s, Side::Agent, &[], "", 7070), None);
    }

    #[test]
    fn agent_side_without_intercepts_intercepts_nothing() {
        let s = set(vec![]);
        assert_eq!(decide(&s, Side::Agent, &[], "", 0), None);
        assert_eq!(decide(&s, Side::Agent, &[], "", 8080), None);
    }

    #[test]
    fn agent_side_leaves_out_other_callers_intercepts() {
        let s = set(vec![
            Intercept::new("a").metadata("who", "a"),
            Intercept::new("b").metadata("who", "b"),
        ]);
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
    }

    #[test]
    fn agent_side_takes_the_first_matching_intercept_in_order() {
        let s = set(vec![
            Intercept::new("a").header("x", "^y").metadata("who", "a"),
            Intercept::new("b").header("x", "y").metadata("who", "b"),
            Intercept::new("c").metadata("who", "c"),
        ]);
        assert_eq!(
            decide(&s, Side::Agent, &[("x", "y")], "", 0),
            Some("a".into())
        );
        assert_eq!(
            decide(&s, Side::Agent, &[("x", "zz")], "", 0),
            Some("c".into())
        );
    }

    #[test]
    fn consume_here_is_the_inverse_on_the_agent_side() {
        let hit = Decision {
            matched: Some(&BTreeMap::new()),
        };
        let miss = Decision { matched: None };
        assert!(hit.consume_here(Side::Client));
        assert!(!hit.consume_here(Side::Agent));
        assert!(!miss.consume_here(Side::Client));
        assert!(miss.consume_here(Side::Agent));
    }

    #[test]
    fn duplicate_ids_are_refused_naming_both() {
        let err = InterceptSet::new(&[
            Intercept::new("a"),
            Intercept::new("b"),
            Intercept::new("a"),
        ])
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"intercepts[2] ("a"): id: duplicate intercept ID, already used by intercepts[0]"#
        );
    }
}

/// The decision against a plain model of Telepresence's rules, written from
/// the rules as stated, over arbitrary intercepts and requests.
#[cfg(test)]
mod properties {
    use std::collections::BTreeMap;

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
    ];
    const PATHS: &[&str] = &["", "/", "/api", "/api/v1", "/apix", "/other", "api"];
    const IDS: &[&str] = &["a", "b", "c"];

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
        path: Option<PathRule>,
    }

    fn metachar(value: &str) -> bool {
        value.chars().any(|c| "\\.+*?()|[]{}^$".contains(c))
    }

    fn value_matches(rule: &str, value: &str) -> bool {
        if metachar(rule) {
            !value.is_empty() && regex::Regex::new(rule).unwrap().is_match(value)
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
                && match &self.path {
                    None => true,
                    Some(PathRule::Equal(p)) => request.path == *p,
                    Some(PathRule::Prefix(p)) => request.path.starts_with(p),
                    // A path regex is a regex whatever its characters.
                    Some(PathRule::Regex(r)) => {
                        !request.path.is_empty()
                            && regex::Regex::new(r).unwrap().is_match(request.path)
                    }
                }
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
    fn reference(side: Side, intercepts: &[Model], request: &Request) -> Option<&'static str> {
        let caller = request.caller.unwrap_or("");
        match side {
            Side::Client => intercepts
                .iter()
                .find(|i| !caller.is_empty() && i.id == caller)
                .filter(|i| i.matches(request))
                .map(|i| i.id),
            Side::Agent => {
                let port = if request.port != 0 {
                    request.port
                } else {
                    let first = intercepts.first()?.port;
                    if intercepts.iter().any(|i| i.port != first) {
                        return None;
                    }
                    first
                };
                intercepts
                    .iter()
                    .filter(|i| i.port == port)
                    .filter(|i| caller.is_empty() || i.id == caller)
                    .find(|i| i.matches(request))
                    .map(|i| i.id)
            }
        }
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
                Just(None),
                prop::sample::select(PATHS).prop_map(|p| Some(PathRule::Equal(p))),
                prop::sample::select(PATHS).prop_map(|p| Some(PathRule::Prefix(p))),
                prop::sample::select(&["^/api", "v1", "x$", ".*"][..])
                    .prop_map(|r| Some(PathRule::Regex(r))),
            ],
        )
            .prop_map(|(id, port, headers, path)| Model {
                id,
                port,
                headers: headers.into_iter().collect(),
                path,
            })
    }

    fn request() -> impl Strategy<Value = Request> {
        (
            prop::collection::vec(
                (prop::sample::select(NAMES), prop::sample::select(VALUES)),
                0..5,
            ),
            prop::option::of(prop::sample::select(&["a", "b", "c", "", "A"][..])),
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

    fn compile(models: &[Model]) -> InterceptSet {
        let specs: Vec<Intercept> = models
            .iter()
            .map(|m| {
                let mut spec = Intercept::new(m.id)
                    .container_port(m.port)
                    .metadata("id", m.id);
                for (name, value) in &m.headers {
                    spec = spec.header(*name, *value);
                }
                match m.path {
                    None => spec,
                    Some(PathRule::Equal(p)) => spec.path_equal(p),
                    Some(PathRule::Prefix(p)) => spec.path_prefix(p),
                    Some(PathRule::Regex(r)) => spec.path_regex(r),
                }
            })
            .collect();
        InterceptSet::new(&specs).expect("the generator makes valid, distinct intercepts")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn decisions_follow_the_stated_rules(
            intercepts in prop::collection::vec(intercept_model(), 0..4)
                .prop_map(|mut v| { let mut seen = Vec::new(); v.retain(|m| { let new = !seen.contains(&m.id); seen.push(m.id); new }); v }),
            request in request(),
            agent in any::<bool>(),
        ) {
            let side = if agent { Side::Agent } else { Side::Client };
            let set = compile(&intercepts);
            let mut headers = HeaderMap::new();
            for (name, value) in &request.headers {
                headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_static(value));
            }
            if let Some(caller) = request.caller {
                headers.insert(CALLER_INTERCEPT_ID_HEADER, HeaderValue::from_static(caller));
            }
            let decision = set.decide(side, &Query { headers: &headers, path: request.path.as_bytes(), container_port: request.port });
            let got = decision.matched.map(|m: &BTreeMap<String, String>| m["id"].clone());
            prop_assert_eq!(got.as_deref(), reference(side, &intercepts, &request));
        }
    }
}
