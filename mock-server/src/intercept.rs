//! Intercepts: what a user declares (`Intercept`) and what the server matches
//! with (`CompiledIntercept`).
//!
//! The declaration is plain data with the same shape as an intercept in the
//! configuration file, so one type serves the YAML file, the admin API's JSON
//! and the Rust builder. Compiling it validates every field once, so the
//! per-request path never meets a bad regex or an impossible header name.

use std::collections::BTreeMap;
use std::fmt;

use http::HeaderName;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The container port an intercept gets when none is declared.
///
/// Telepresence always knows the port of the container it intercepts; a mock
/// intercept without one behaves like a workload that exposes only 8080.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;

/// The characters that make a header matcher value a regular expression.
const REGEX_METACHARACTERS: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

/// One intercept, as declared in a configuration file, through the admin API,
/// or in Rust.
///
/// This is the schema of one entry of `intercepts:` in the configuration file
/// (unknown keys are refused). Matching follows Telepresence's rules: every
/// declared matcher must match (AND), and an intercept without matchers matches
/// every request.
///
/// ```
/// use telepresence_mock_server::Intercept;
///
/// let intercept = Intercept::new("4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server")
///     .container_port(8080)
///     .header("x", "y")
///     .header("x-user", "^dev-.*") // a metacharacter makes it a regex
///     .path_prefix("/api")
///     .metadata("a", "b");
/// assert!(intercept.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intercept {
    /// The intercept ID a workstation consumer sends as
    /// `x-telepresence-caller-intercept-id`.
    pub id: String,
    /// The intercepted container port (1..=65535).
    #[serde(default = "default_container_port")]
    pub container_port: u16,
    /// Header matchers: name (case-insensitive) to value (exact, or a regular
    /// expression when it contains a regex metacharacter).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Path matcher: the `path` parameter equals this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_equal: Option<String>,
    /// Path matcher: the `path` parameter starts with this string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Path matcher: the `path` parameter contains a match of this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Metadata returned by `/intercept-info` when this intercept matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

fn default_container_port() -> u16 {
    DEFAULT_CONTAINER_PORT
}

impl Intercept {
    /// An intercept with this ID on [`DEFAULT_CONTAINER_PORT`], matching every request.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            container_port: DEFAULT_CONTAINER_PORT,
            headers: BTreeMap::new(),
            path_equal: None,
            path_prefix: None,
            path_regex: None,
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the intercepted container port.
    pub fn container_port(mut self, port: u16) -> Self {
        self.container_port = port;
        self
    }

    /// Adds a header matcher (`--http-header name=value`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Matches requests whose `path` equals `path` (`--http-path-equal`).
    pub fn path_equal(mut self, path: impl Into<String>) -> Self {
        self.path_equal = Some(path.into());
        self
    }

    /// Matches requests whose `path` starts with `prefix` (`--http-path-prefix`).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = Some(prefix.into());
        self
    }

    /// Matches requests whose `path` contains a match of `regex` (`--http-path-regex`).
    pub fn path_regex(mut self, regex: impl Into<String>) -> Self {
        self.path_regex = Some(regex.into());
        self
    }

    /// Adds a metadata entry (`--http-meta key=value`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks every field, as the server does before it accepts the intercept.
    pub fn validate(&self) -> Result<(), InterceptError> {
        self.compile().map(drop)
    }

    pub(crate) fn compile(&self) -> Result<CompiledIntercept, InterceptError> {
        if self.id.is_empty() {
            return Err(InterceptError::new("id", "must not be empty"));
        }
        if self.container_port == 0 {
            return Err(InterceptError::new(
                "container_port",
                "port 0 is out of range 1..=65535",
            ));
        }
        let mut headers: Vec<HeaderRule> = Vec::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let key = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                InterceptError::new(&key, format!("`{name}` is not a valid HTTP header name"))
            })?;
            if headers.iter().any(|rule| rule.name == header) {
                return Err(InterceptError::new(
                    &key,
                    format!(
                        "header `{name}` is given twice (names are case-insensitive); \
                         give each header one matcher"
                    ),
                ));
            }
            let value = ValueMatcher::new(value).map_err(|e| InterceptError::new(&key, e))?;
            headers.push(HeaderRule {
                name: header,
                value,
            });
        }
        let path = self.path_matcher()?;
        Ok(CompiledIntercept {
            spec: self.clone(),
            headers,
            path,
        })
    }

    fn path_matcher(&self) -> Result<Option<PathMatcher>, InterceptError> {
        let given: Vec<&str> = [
            ("path_equal", &self.path_equal),
            ("path_prefix", &self.path_prefix),
            ("path_regex", &self.path_regex),
        ]
        .iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| *key)
        .collect();
        if given.len() > 1 {
            return Err(InterceptError::new(
                given[1],
                format!(
                    "at most one path matcher is allowed, but {} are given",
                    given.join(" and ")
                ),
            ));
        }
        Ok(if let Some(p) = &self.path_equal {
            Some(PathMatcher::Equal(p.clone()))
        } else if let Some(p) = &self.path_prefix {
            Some(PathMatcher::Prefix(p.clone()))
        } else if let Some(re) = &self.path_regex {
            Some(PathMatcher::Regex(
                compile_regex(re).map_err(|e| InterceptError::new("path_regex", e))?,
            ))
        } else {
            None
        })
    }
}

/// A human summary, as logged at start: `"id" on port 8080 when x == "y" and path starts with "/api"; metadata a=b`.
impl fmt::Display for Intercept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} on port {}", self.id, self.container_port)?;
        let mut conditions = Vec::new();
        for (name, value) in &self.headers {
            if is_regex(value) {
                conditions.push(format!("{name} =~ /{value}/"));
            } else {
                conditions.push(format!("{name} == {value:?}"));
            }
        }
        if let Some(p) = &self.path_equal {
            conditions.push(format!("path == {p:?}"));
        }
        if let Some(p) = &self.path_prefix {
            conditions.push(format!("path starts with {p:?}"));
        }
        if let Some(p) = &self.path_regex {
            conditions.push(format!("path =~ /{p}/"));
        }
        if conditions.is_empty() {
            f.write_str(" matching every request")?;
        } else {
            write!(f, " when {}", conditions.join(" and "))?;
        }
        if !self.metadata.is_empty() {
            let meta: Vec<String> = self
                .metadata
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "; metadata {}", meta.join(", "))?;
        }
        Ok(())
    }
}

/// Why an intercept was refused: the key at fault and the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InterceptError {
    /// The offending key, e.g. `path_regex` or `headers.x-user`.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl InterceptError {
    pub(crate) fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Telepresence treats a header matcher value as a regular expression exactly
/// when it contains a regex metacharacter.
pub(crate) fn is_regex(value: &str) -> bool {
    value.contains(REGEX_METACHARACTERS)
}

fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("invalid regular expression `{pattern}`: {e}"))
}

/// How a header's value is compared.
#[derive(Clone, Debug)]
pub(crate) enum ValueMatcher {
    Exact(String),
    Regex(Regex),
}

impl ValueMatcher {
    fn new(value: &str) -> Result<Self, String> {
        if is_regex(value) {
            compile_regex(value).map(Self::Regex)
        } else {
            Ok(Self::Exact(value.to_owned()))
        }
    }

    /// A regular expression never matches an empty value, even one that could
    /// match the empty string.
    pub(crate) fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(expected) => expected.as_bytes() == value,
            Self::Regex(re) => regex_search(re, value),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct HeaderRule {
    pub(crate) name: HeaderName,
    pub(crate) value: ValueMatcher,
}

#[derive(Clone, Debug)]
pub(crate) enum PathMatcher {
    Equal(String),
    Prefix(String),
    Regex(Regex),
}

impl PathMatcher {
    pub(crate) fn matches(&self, path: &[u8]) -> bool {
        match self {
            Self::Equal(p) => p.as_bytes() == path,
            Self::Prefix(p) => path.starts_with(p.as_bytes()),
            Self::Regex(re) => regex_search(re, path),
        }
    }
}

/// Go matches regular expressions against bytes read as UTF-8, each invalid
/// byte standing for U+FFFD; the lossy conversion does the same.
fn regex_search(re: &Regex, value: &[u8]) -> bool {
    !value.is_empty() && re.is_match(&String::from_utf8_lossy(value))
}

/// A validated intercept, ready to match requests.
#[derive(Clone, Debug)]
pub(crate) struct CompiledIntercept {
    pub(crate) spec: Intercept,
    pub(crate) headers: Vec<HeaderRule>,
    pub(crate) path: Option<PathMatcher>,
}

impl CompiledIntercept {
    /// All matchers must match; a missing header reads as the empty string and
    /// only the first occurrence of a repeated header counts.
    pub(crate) fn matches(&self, headers: &http::HeaderMap, path: &[u8]) -> bool {
        self.headers.iter().all(|rule| {
            let value = headers.get(&rule.name).map_or(&b""[..], |v| v.as_bytes());
            rule.value.matches(value)
        }) && self.path.as_ref().is_none_or(|p| p.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        map
    }

    fn matches(intercept: Intercept, request: &[(&str, &[u8])], path: &str) -> bool {
        intercept
            .compile()
            .expect("valid intercept")
            .matches(&headers(request), path.as_bytes())
    }

    #[test]
    fn a_value_is_a_regex_exactly_when_it_has_a_metacharacter() {
        for meta in REGEX_METACHARACTERS {
            assert!(is_regex(&format!("a{meta}b")), "{meta} makes a regex");
        }
        for plain in [
            "",
            "abc",
            "dev-alice",
            "a b",
            "x/y",
            "a,b",
            "a=b",
            "a:b",
            "#!%&",
        ] {
            assert!(!is_regex(plain), "{plain:?} is a plain value");
        }
    }

    #[test]
    fn header_names_compare_case_insensitively() {
        let i = Intercept::new("i").header("X-Dev", "alice");
        assert!(matches(i.clone(), &[("x-dev", b"alice")], ""));
        assert!(matches(i, &[("X-DEV", b"alice")], ""));
    }

    #[test]
    fn exact_values_compare_case_sensitively_and_whole() {
        let i = Intercept::new("i").header("x", "alice");
        assert!(matches(i.clone(), &[("x", b"alice")], ""));
        assert!(!matches(i.clone(), &[("x", b"Alice")], ""));
        assert!(!matches(i.clone(), &[("x", b"alice2")], ""));
        assert!(!matches(i, &[("x", b"xalice")], ""));
    }

    #[test]
    fn only_the_first_occurrence_of_a_header_counts() {
        let i = Intercept::new("i").header("x", "a");
        assert!(matches(i.clone(), &[("x", b"a"), ("x", b"b")], ""));
        assert!(!matches(i, &[("x", b"b"), ("x", b"a")], ""));
    }

    #[test]
    fn a_missing_header_reads_as_the_empty_string() {
        assert!(matches(Intercept::new("i").header("x", ""), &[], ""));
        assert!(matches(
            Intercept::new("i").header("x", ""),
            &[("x", b"")],
            ""
        ));
        assert!(!matches(Intercept::new("i").header("x", "y"), &[], ""));
    }

    #[test]
    fn a_regex_is_an_unanchored_search() {
        let i = Intercept::new("i").header("x", "v1.0");
        assert!(matches(i.clone(), &[("x", b"xv1x0y")], ""));
        assert!(matches(i.clone(), &[("x", b"v1.0")], ""));
        assert!(!matches(i, &[("x", b"v10")], ""));
        let anchored = Intercept::new("i").header("x", "^dev-.*$");
        assert!(matches(anchored.clone(), &[("x", b"dev-alice")], ""));
        assert!(!matches(anchored, &[("x", b"my-dev-alice")], ""));
    }

    #[test]
    fn a_regex_never_matches_an_empty_value() {
        for pattern in [".*", "^", "z?", "(|x)"] {
            let i = Intercept::new("i").header("x", pattern);
            assert!(!matches(i.clone(), &[], ""), "{pattern} vs missing");
            assert!(!matches(i.clone(), &[("x", b"")], ""), "{pattern} vs empty");
            assert!(matches(i, &[("x", b"z")], ""), "{pattern} vs z");
        }
    }

    #[test]
    fn regexes_match_values_that_are_not_utf8() {
        let i = Intercept::new("i").header("x", "^a.*z$");
        assert!(matches(i, &[("x", b"a\xff z")], ""));
    }

    #[test]
    fn path_matchers_equal_prefix_and_regex() {
        let equal = Intercept::new("i").path_equal("/api");
        assert!(matches(equal.clone(), &[], "/api"));
        assert!(!matches(equal.clone(), &[], "/api/x"));
        assert!(!matches(equal, &[], ""));
        assert!(matches(Intercept::new("i").path_equal(""), &[], ""));

        let prefix = Intercept::new("i").path_prefix("/api");
        assert!(matches(prefix.clone(), &[], "/api"));
        assert!(matches(prefix.clone(), &[], "/apix"));
        assert!(!matches(prefix.clone(), &[], "/ap"));
        assert!(!matches(prefix, &[], ""));
        assert!(matches(Intercept::new("i").path_prefix(""), &[], ""));

        let regex = Intercept::new("i").path_regex("/v[0-9]+/");
        assert!(matches(regex.clone(), &[], "/api/v2/x"));
        assert!(!matches(regex, &[], "/api/vx/"));
        let empty_ok = Intercept::new("i").path_regex(".*");
        assert!(!matches(empty_ok.clone(), &[], ""));
        assert!(matches(empty_ok, &[], "/"));
    }

    #[test]
    fn all_matchers_must_match() {
        let i = Intercept::new("i")
            .header("x", "y")
            .header("z", "^w")
            .path_prefix("/api");
        assert!(matches(i.clone(), &[("x", b"y"), ("z", b"wq")], "/api/1"));
        assert!(!matches(i.clone(), &[("x", b"y"), ("z", b"wq")], "/other"));
        assert!(!matches(i.clone(), &[("x", b"n"), ("z", b"wq")], "/api/1"));
        assert!(!matches(i, &[("x", b"y"), ("z", b"qw")], "/api/1"));
    }

    #[test]
    fn an_intercept_without_matchers_matches_everything() {
        assert!(matches(Intercept::new("i"), &[], ""));
        assert!(matches(Intercept::new("i"), &[("a", b"b")], "/x"));
    }

    #[test]
    fn invalid_intercepts_are_refused_with_the_key_at_fault() {
        let cases = [
            (Intercept::new(""), "id"),
            (Intercept::new("i").container_port(0), "container_port"),
            (Intercept::new("i").header("x y", "v"), "headers.x y"),
            (Intercept::new("i").header("x", "("), "headers.x"),
            (Intercept::new("i").path_regex("[a"), "path_regex"),
            (
                Intercept::new("i").path_equal("/a").path_prefix("/b"),
                "path_prefix",
            ),
            (
                Intercept::new("i").header("X", "a").header("x", "b"),
                "headers.x",
            ),
        ];
        for (intercept, key) in cases {
            let err = intercept.validate().expect_err(key);
            assert_eq!(err.key, key, "{err}");
        }
    }

    #[test]
    fn the_summary_reads_like_the_flags() {
        let i = Intercept::new("id")
            .header("x", "y")
            .header("u", "^dev")
            .path_prefix("/api")
            .metadata("a", "b");
        assert_eq!(
            i.to_string(),
            r#""id" on port 8080 when u =~ /^dev/ and x == "y" and path starts with "/api"; metadata a=b"#
        );
        assert_eq!(
            Intercept::new("id").to_string(),
            r#""id" on port 8080 matching every request"#
        );
    }
}
