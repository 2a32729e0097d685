//! Intercepts: what a user declares (`Intercept`) and what the server matches
//! with (`CompiledIntercept`).
//!
//! The declaration is plain data with the same shape as an intercept in the
//! configuration file, so one type serves the YAML file, the admin API's JSON
//! and the Rust builder. Compiling it validates every field once, so the
//! per-request path never meets a bad regex or an impossible header name.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use http::HeaderName;
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::version::{InvalidRegex, PathFilters, Rules};

/// The container port an intercept gets when none is declared.
///
/// Telepresence always knows the port of the container it intercepts; a mock
/// intercept without one behaves like a workload that exposes only 8080.
pub const DEFAULT_CONTAINER_PORT: u16 = 8080;

/// The characters that make a header filter value a regular expression.
const REGEX_METACHARACTERS: &[char] = &[
    '\\', '.', '+', '*', '?', '(', ')', '|', '[', ']', '{', '}', '^', '$',
];

/// One intercept, as declared in a configuration file, through the admin API,
/// or in Rust.
///
/// This is the schema of one entry of `intercepts:` in the configuration file
/// (unknown keys are refused). Matching follows Telepresence's rules: every
/// header filter must match (AND), the path must match one of the path
/// filters (OR), and an intercept without filters matches every request.
/// Which filters a release accepts depends on the [`Rules`] it follows: see
/// [`validate_for`](Self::validate_for).
///
/// ```
/// use telepresence_mock_server::Intercept;
///
/// let intercept = Intercept::new("4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server")
///     .container_port(8080)
///     .header("x", "y")
///     .header("x-user", "^dev-.*") // a metacharacter makes it a regex
///     .path_prefix("/api")
///     .path_prefix("/v2/api") // several path filters: any may match
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
    /// Header filters: name (case-insensitive) to value (exact, or a regular
    /// expression when it contains a regex metacharacter).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Path filters: the `path` parameter equals one of these strings.
    /// In the configuration, a string or a list of strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub path_equal: Vec<String>,
    /// Path filters: the `path` parameter starts with one of these strings.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub path_prefix: Vec<String>,
    /// Path filters: the `path` parameter contains a match of one of these
    /// regular expressions.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "one_or_many")]
    pub path_regex: Vec<String>,
    /// Metadata returned by `/intercept-info` when this intercept matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

fn default_container_port() -> u16 {
    DEFAULT_CONTAINER_PORT
}

/// A list that may be written as a single string: `path_prefix: /api` or
/// `path_prefix: [/api, /v2]`. One value is written back as a string.
mod one_or_many {
    use std::fmt;

    use serde::de::{SeqAccess, Visitor};
    use serde::{Deserializer, Serialize, Serializer};

    struct OneOrMany;

    impl<'de> Visitor<'de> for OneOrMany {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string or a list of strings")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(vec![value.to_owned()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(64));
            while let Some(value) = seq.next_element::<String>()? {
                values.push(value);
            }
            Ok(values)
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_any(OneOrMany)
    }

    pub(super) fn serialize<S: Serializer>(values: &[String], s: S) -> Result<S::Ok, S::Error> {
        match values {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl Intercept {
    /// An intercept with this ID on [`DEFAULT_CONTAINER_PORT`], matching every request.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            container_port: DEFAULT_CONTAINER_PORT,
            headers: BTreeMap::new(),
            path_equal: Vec::new(),
            path_prefix: Vec::new(),
            path_regex: Vec::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Sets the intercepted container port.
    pub fn container_port(mut self, port: u16) -> Self {
        self.container_port = port;
        self
    }

    /// Adds a header filter (`--http-header name=value`).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Adds a path filter: the `path` equals `path` (`--http-path-equal`).
    pub fn path_equal(mut self, path: impl Into<String>) -> Self {
        self.path_equal.push(path.into());
        self
    }

    /// Adds a path filter: the `path` starts with `prefix` (`--http-path-prefix`).
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix.push(prefix.into());
        self
    }

    /// Adds a path filter: the `path` contains a match of `regex` (`--http-path-regex`).
    pub fn path_regex(mut self, regex: impl Into<String>) -> Self {
        self.path_regex.push(regex.into());
        self
    }

    /// Adds a metadata entry (`--http-meta key=value`).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks every field as the newest Telepresence release does before it
    /// accepts the intercept.
    pub fn validate(&self) -> Result<(), InterceptError> {
        self.validate_for(&Rules::default())
    }

    /// Checks every field as a release following `rules` does: releases
    /// before 2.25 refuse several path filters and invalid regular expressions.
    ///
    /// ```
    /// use telepresence_mock_server::{Intercept, TelepresenceVersion};
    ///
    /// let two_paths = Intercept::new("a").path_prefix("/api").path_equal("/health");
    /// let legacy: TelepresenceVersion = "2.24".parse()?;
    /// assert!(two_paths.validate().is_ok());
    /// assert!(two_paths.validate_for(&legacy.rules()).is_err());
    /// # Ok::<(), telepresence_mock_server::VersionError>(())
    /// ```
    pub fn validate_for(&self, rules: &Rules) -> Result<(), InterceptError> {
        self.compile(rules).map(drop)
    }

    pub(crate) fn compile(&self, rules: &Rules) -> Result<CompiledIntercept, InterceptError> {
        if self.id.is_empty() {
            return Err(InterceptError::new("id", "must not be empty"));
        }
        if self.container_port == 0 {
            return Err(InterceptError::new(
                "container_port",
                "port 0 is out of range 1..=65535",
            ));
        }
        let mut literals = Vec::new();
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
                         give each header one filter"
                    ),
                ));
            }
            let value = if is_regex(value) {
                regex_or_literal(&key, value, rules, &mut literals)?
                    .map_or_else(|| ValueMatcher::Exact(value.clone()), ValueMatcher::Regex)
            } else {
                ValueMatcher::Exact(value.clone())
            };
            headers.push(HeaderRule {
                name: header,
                value,
            });
        }
        let paths = self.path_matchers(rules, &mut literals)?;
        Ok(CompiledIntercept {
            id: self.id.as_str().into(),
            spec: self.clone(),
            headers,
            paths,
            literal_regexes: literals,
        })
    }

    fn path_matchers(
        &self,
        rules: &Rules,
        literals: &mut Vec<LiteralRegex>,
    ) -> Result<Vec<PathMatcher>, InterceptError> {
        let lists = [
            ("path_equal", &self.path_equal),
            ("path_prefix", &self.path_prefix),
            ("path_regex", &self.path_regex),
        ];
        let count: usize = lists.iter().map(|(_, values)| values.len()).sum();
        if rules.path_filters == PathFilters::AtMostOne && count > 1 {
            let given: Vec<&str> = lists
                .iter()
                .filter(|(_, values)| !values.is_empty())
                .map(|(key, _)| *key)
                .collect();
            // Name the second kind given, or the only one given several times.
            let culprit = given
                .get(1)
                .or(given.first())
                .copied()
                .unwrap_or("path_regex");
            let what = if given.len() == 1 {
                format!("{culprit} has {count} values")
            } else {
                format!("{} are given", given.join(" and "))
            };
            return Err(InterceptError::new(
                culprit,
                format!("at most one path filter is allowed before Telepresence 2.25, but {what}"),
            ));
        }
        let mut paths = Vec::with_capacity(count);
        paths.extend(self.path_equal.iter().cloned().map(PathMatcher::Equal));
        paths.extend(self.path_prefix.iter().cloned().map(PathMatcher::Prefix));
        for (index, pattern) in self.path_regex.iter().enumerate() {
            let key = if self.path_regex.len() == 1 {
                "path_regex".to_owned()
            } else {
                format!("path_regex[{index}]")
            };
            // Telepresence takes every path regex as a regex, metacharacter or not.
            paths.push(
                regex_or_literal(&key, pattern, rules, literals)?
                    .map_or_else(|| PathMatcher::Equal(pattern.clone()), PathMatcher::Regex),
            );
        }
        Ok(paths)
    }
}

/// Compiles `pattern`; when it is invalid, a release that takes it literally
/// gets `None` (and a note), an older one refuses it.
fn regex_or_literal(
    key: &str,
    pattern: &str,
    rules: &Rules,
    literals: &mut Vec<LiteralRegex>,
) -> Result<Option<Regex>, InterceptError> {
    match Regex::new(pattern) {
        Ok(regex) => Ok(Some(regex)),
        Err(error) => match rules.invalid_regex {
            InvalidRegex::Refused => Err(InterceptError::new(
                key,
                format!("invalid regular expression `{pattern}`: {error}"),
            )),
            InvalidRegex::Literal => {
                literals.push(LiteralRegex {
                    key: key.to_owned(),
                    value: pattern.to_owned(),
                });
                Ok(None)
            }
        },
    }
}

/// A human summary, as logged at start:
/// `"id" on port 8080 when x == "y" and path starts with "/api"; metadata a=b`.
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
        let paths: Vec<String> = (self.path_equal.iter().map(|p| format!("path == {p:?}")))
            .chain(
                self.path_prefix
                    .iter()
                    .map(|p| format!("path starts with {p:?}")),
            )
            .chain(self.path_regex.iter().map(|p| format!("path =~ /{p}/")))
            .collect();
        match paths.len() {
            0 => {}
            1 => conditions.extend(paths),
            _ => conditions.push(format!("({})", paths.join(" or "))),
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

/// A filter value that is not a valid regular expression, kept as a literal
/// value (as Telepresence 2.25 and later do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LiteralRegex {
    /// `headers.x-dev` or `path_regex`.
    pub(crate) key: String,
    pub(crate) value: String,
}

/// Telepresence treats a header filter value as a regular expression exactly
/// when it contains a regex metacharacter.
pub(crate) fn is_regex(value: &str) -> bool {
    value.contains(REGEX_METACHARACTERS)
}

/// How a header's value is compared.
#[derive(Clone, Debug)]
pub(crate) enum ValueMatcher {
    Exact(String),
    Regex(Regex),
}

impl ValueMatcher {
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
    /// The ID, shared with journal entries without a copy.
    pub(crate) id: Arc<str>,
    pub(crate) spec: Intercept,
    pub(crate) headers: Vec<HeaderRule>,
    /// Any one must match; none means any path.
    pub(crate) paths: Vec<PathMatcher>,
    /// Invalid regular expressions taken as literal values.
    pub(crate) literal_regexes: Vec<LiteralRegex>,
}

impl CompiledIntercept {
    /// Every header filter must match and, when there are path filters, one of
    /// them; a missing header reads as the empty string and only the first
    /// occurrence of a repeated header counts.
    pub(crate) fn matches(&self, headers: &http::HeaderMap, path: &[u8]) -> bool {
        self.headers.iter().all(|rule| {
            let value = headers.get(&rule.name).map_or(&b""[..], |v| v.as_bytes());
            rule.value.matches(value)
        }) && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
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

    fn legacy() -> Rules {
        "2.24"
            .parse::<crate::TelepresenceVersion>()
            .unwrap()
            .rules()
    }

    fn matches(intercept: Intercept, request: &[(&str, &[u8])], path: &str) -> bool {
        intercept
            .compile(&Rules::default())
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
        let always = [
            (Intercept::new(""), "id"),
            (Intercept::new("i").container_port(0), "container_port"),
            (Intercept::new("i").header("x y", "v"), "headers.x y"),
            (
                Intercept::new("i").header("X", "a").header("x", "b"),
                "headers.x",
            ),
        ];
        for (intercept, key) in always {
            for rules in [Rules::default(), legacy()] {
                let err = intercept.validate_for(&rules).expect_err(key);
                assert_eq!(err.key, key, "{err}");
            }
        }
        let before_2_25 = [
            (Intercept::new("i").header("x", "("), "headers.x"),
            (Intercept::new("i").path_regex("[a"), "path_regex"),
            (
                Intercept::new("i").path_equal("/a").path_prefix("/b"),
                "path_prefix",
            ),
            (
                Intercept::new("i").path_regex("/a").path_regex("/b"),
                "path_regex",
            ),
        ];
        for (intercept, key) in before_2_25 {
            let err = intercept.validate_for(&legacy()).expect_err(key);
            assert_eq!(err.key, key, "{err}");
            assert!(
                intercept.validate().is_ok(),
                "2.25 and later accept {intercept}"
            );
        }
    }

    #[test]
    fn legacy_refusals_say_what_was_given() {
        let two_kinds = Intercept::new("i").path_equal("/a").path_prefix("/b");
        assert_eq!(
            two_kinds.validate_for(&legacy()).unwrap_err().to_string(),
            "path_prefix: at most one path filter is allowed before Telepresence 2.25, \
             but path_equal and path_prefix are given"
        );
        let twice = Intercept::new("i").path_prefix("/a").path_prefix("/b");
        assert_eq!(
            twice.validate_for(&legacy()).unwrap_err().to_string(),
            "path_prefix: at most one path filter is allowed before Telepresence 2.25, \
             but path_prefix has 2 values"
        );
        let bad_regex = Intercept::new("i").header("x-dev", "(dev");
        let err = bad_regex.validate_for(&legacy()).unwrap_err().to_string();
        assert!(
            err.starts_with("headers.x-dev: invalid regular expression `(dev`: "),
            "{err}"
        );
    }

    #[test]
    fn several_path_filters_match_when_any_matches() {
        let i = Intercept::new("i")
            .path_equal("/health")
            .path_prefix("/api/")
            .path_regex("^/v[0-9]+/");
        for path in ["/health", "/api/x", "/v2/x"] {
            assert!(matches(i.clone(), &[], path), "{path}");
        }
        for path in ["", "/healthz", "/api", "/vx/", "/other"] {
            assert!(!matches(i.clone(), &[], path), "{path}");
        }
        let with_header = i.header("x", "y");
        assert!(matches(with_header.clone(), &[("x", b"y")], "/health"));
        assert!(!matches(with_header.clone(), &[("x", b"n")], "/health"));
        assert!(!matches(with_header, &[("x", b"y")], "/other"));
    }

    #[test]
    fn invalid_regexes_are_literal_values_from_2_25() {
        let header = Intercept::new("i").header("x-dev", "(dev");
        assert!(matches(header.clone(), &[("x-dev", b"(dev")], ""));
        assert!(!matches(header.clone(), &[("x-dev", b"dev")], ""));
        assert!(!matches(header, &[("x-dev", b"x(devx")], ""));
        let path = Intercept::new("i").path_regex("/api[");
        assert!(matches(path.clone(), &[], "/api["));
        assert!(!matches(path.clone(), &[], "/api[x"));
        assert!(!matches(path, &[], "/api"));
        let compiled = Intercept::new("i")
            .header("x-dev", "(dev")
            .path_regex("ok")
            .path_regex("[")
            .compile(&Rules::default())
            .unwrap();
        let noted: Vec<(&str, &str)> = compiled
            .literal_regexes
            .iter()
            .map(|l| (l.key.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(noted, [("headers.x-dev", "(dev"), ("path_regex[1]", "[")]);
    }

    #[test]
    fn path_filters_read_a_string_or_a_list_and_write_back_the_same() {
        let one: Intercept = serde_json::from_str(r#"{"id":"a","path_prefix":"/api"}"#).unwrap();
        assert_eq!(one.path_prefix, ["/api"]);
        let many: Intercept =
            serde_json::from_str(r#"{"id":"a","path_prefix":["/api","/v2"],"path_regex":[]}"#)
                .unwrap();
        assert_eq!(many.path_prefix, ["/api", "/v2"]);
        assert!(many.path_regex.is_empty());
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#"{"id":"a","container_port":8080,"path_prefix":"/api"}"#
        );
        assert_eq!(
            serde_json::to_string(&many).unwrap(),
            r#"{"id":"a","container_port":8080,"path_prefix":["/api","/v2"]}"#
        );
        let err = serde_json::from_str::<Intercept>(r#"{"id":"a","path_equal":3}"#).unwrap_err();
        assert!(
            err.to_string().contains("a string or a list of strings"),
            "{err}"
        );
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
        assert_eq!(
            Intercept::new("id")
                .header("x", "y")
                .path_equal("/a")
                .path_prefix("/b")
                .to_string(),
            r#""id" on port 8080 when x == "y" and (path == "/a" or path starts with "/b")"#
        );
    }
}
