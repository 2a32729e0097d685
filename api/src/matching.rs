//! Telepresence's matching rules for one intercept: which filters a release
//! accepts, and whether a request matches them.
//!
//! Compiling an intercept validates every field once, so the per-request path
//! never meets a bad regex or an impossible header name. Which intercept a
//! side then picks among several (by caller ID on the workstation, by
//! container port in the pod) is the server's business, not this module's.

use std::sync::Arc;

use http::HeaderName;

use crate::go_regex::GoRegex;
use crate::intercept::{Intercept, InterceptError, is_regex};
use crate::reason::{Expected, Mismatch, PathFilter};
use crate::version::{InvalidRegex, PathFilters, Rules};

impl Intercept {
    /// Checks every field as the newest Telepresence release does before it
    /// accepts the intercept.
    pub fn validate(&self) -> Result<(), InterceptError> {
        self.validate_for(&Rules::default())
    }

    /// Checks every field as a release following `rules` does: releases
    /// before 2.25 refuse several path filters and invalid regular expressions.
    ///
    /// ```
    /// use telepresence_api::{Intercept, TelepresenceVersion};
    ///
    /// let two_paths = Intercept::new("a").path_prefix("/api").path_equal("/health");
    /// let legacy: TelepresenceVersion = "2.24".parse()?;
    /// assert!(two_paths.validate().is_ok());
    /// assert!(two_paths.validate_for(&legacy.rules()).is_err());
    /// # Ok::<(), telepresence_api::VersionError>(())
    /// ```
    pub fn validate_for(&self, rules: &Rules) -> Result<(), InterceptError> {
        self.compile(rules).map(drop)
    }

    /// Validates the intercept as a release following `rules` does, and
    /// compiles its filters once for the requests to come.
    ///
    /// ```
    /// use http::HeaderMap;
    /// use telepresence_api::{Intercept, Rules};
    ///
    /// let alice = Intercept::new("abc:orders").header("x-dev", "^alice").compile(&Rules::default())?;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-dev", "alice-2".parse()?);
    /// assert!(alice.matches(&headers, b""));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compile(&self, rules: &Rules) -> Result<CompiledIntercept, InterceptError> {
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
) -> Result<Option<GoRegex>, InterceptError> {
    match GoRegex::new(pattern) {
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

/// A filter value that is not a valid regular expression, kept as a literal
/// value (as Telepresence 2.25 and later do).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LiteralRegex {
    /// Where it was given: `headers.x-dev`, `path_regex` or `path_regex[1]`.
    pub key: String,
    /// The value, compared as it is.
    pub value: String,
}

/// How a header's value is compared.
#[derive(Clone, Debug)]
enum ValueMatcher {
    Exact(String),
    Regex(GoRegex),
}

impl ValueMatcher {
    /// A regular expression never matches an empty value, even one that could
    /// match the empty string.
    fn matches(&self, value: &[u8]) -> bool {
        match self {
            Self::Exact(expected) => expected.as_bytes() == value,
            Self::Regex(re) => regex_search(re, value),
        }
    }

    fn expected(&self) -> Expected {
        match self {
            Self::Exact(value) => Expected::Exactly(value.clone()),
            Self::Regex(re) => Expected::MatchOf(re.as_str().to_owned()),
        }
    }
}

#[derive(Clone, Debug)]
struct HeaderRule {
    name: HeaderName,
    value: ValueMatcher,
}

#[derive(Clone, Debug)]
enum PathMatcher {
    Equal(String),
    Prefix(String),
    Regex(GoRegex),
}

impl PathMatcher {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            Self::Equal(p) => p.as_bytes() == path,
            Self::Prefix(p) => path.starts_with(p.as_bytes()),
            Self::Regex(re) => regex_search(re, path),
        }
    }

    fn filter(&self) -> PathFilter {
        match self {
            Self::Equal(p) => PathFilter::Equal(p.clone()),
            Self::Prefix(p) => PathFilter::Prefix(p.clone()),
            Self::Regex(re) => PathFilter::Regex(re.as_str().to_owned()),
        }
    }
}

/// Go matches regular expressions against bytes read as UTF-8, each invalid
/// byte standing for U+FFFD; the lossy conversion does the same.
fn regex_search(re: &GoRegex, value: &[u8]) -> bool {
    !value.is_empty() && re.is_match(&String::from_utf8_lossy(value))
}

/// A validated intercept, ready to match requests: built by
/// [`Intercept::compile`].
#[derive(Clone, Debug)]
pub struct CompiledIntercept {
    id: Arc<str>,
    spec: Intercept,
    headers: Vec<HeaderRule>,
    /// Any one must match; none means any path.
    paths: Vec<PathMatcher>,
    literal_regexes: Vec<LiteralRegex>,
}

impl CompiledIntercept {
    /// The intercept's ID, shared: a server can keep it per request without a copy.
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The intercept as declared.
    pub fn spec(&self) -> &Intercept {
        &self.spec
    }

    /// The filter values that are invalid regular expressions, compared as
    /// literal values (2.25 and later; older releases refuse them).
    pub fn literal_regexes(&self) -> &[LiteralRegex] {
        &self.literal_regexes
    }

    /// Whether a request with these headers and this `path` parameter
    /// matches: every header filter must match and, when there are path
    /// filters, one of them. A missing header reads as the empty string and
    /// only the first occurrence of a repeated header counts.
    pub fn matches(&self, headers: &http::HeaderMap, path: &[u8]) -> bool {
        self.headers.iter().all(|rule| {
            let value = headers.get(&rule.name).map_or(&b""[..], |v| v.as_bytes());
            rule.value.matches(value)
        }) && (self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)))
    }

    /// Why a request does not match, or `Ok` when it does: the first filter
    /// that fails, as [`Mismatch`] tells it. Agrees with
    /// [`matches`](Self::matches), which is the one to use when only the
    /// answer counts (it allocates nothing).
    pub fn explain(&self, headers: &http::HeaderMap, path: &[u8]) -> Result<(), Mismatch> {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        for rule in &self.headers {
            let value = headers.get(&rule.name).map(|v| v.as_bytes());
            if !rule.value.matches(value.unwrap_or_default()) {
                return Err(Mismatch::Header {
                    name: rule.name.as_str().to_owned(),
                    expected: rule.value.expected(),
                    got: value.map(text),
                });
            }
        }
        if self.paths.is_empty() || self.paths.iter().any(|p| p.matches(path)) {
            return Ok(());
        }
        Err(Mismatch::Path {
            path: text(path),
            filters: self.paths.iter().map(PathMatcher::filter).collect(),
        })
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

    /// Whether the request matches; every case also checks that
    /// `explain` agrees.
    fn matches(intercept: Intercept, request: &[(&str, &[u8])], path: &str) -> bool {
        let compiled = intercept
            .compile(&Rules::default())
            .expect("valid intercept");
        let (headers, path) = (headers(request), path.as_bytes());
        let matched = compiled.matches(&headers, path);
        let explained = compiled.explain(&headers, path);
        assert_eq!(matched, explained.is_ok(), "{explained:?}");
        matched
    }

    fn why(intercept: Intercept, request: &[(&str, &[u8])], path: &str) -> String {
        intercept
            .compile(&Rules::default())
            .expect("valid intercept")
            .explain(&headers(request), path.as_bytes())
            .expect_err("a mismatch")
            .to_string()
    }

    #[test]
    fn a_mismatch_names_the_first_failing_filter_and_what_it_saw() {
        let i = Intercept::new("i")
            .header("x-dev", "alice")
            .header("x-user", "^dev-")
            .path_prefix("/api")
            .path_equal("/health");
        assert_eq!(
            why(i.clone(), &[("x-dev", b"bob")], "/api"),
            r#"header x-dev: expected "alice", got "bob""#
        );
        assert_eq!(
            why(i.clone(), &[("x-dev", b"alice")], "/api"),
            "header x-user: expected a match of /^dev-/, got no such header"
        );
        assert_eq!(
            why(
                i.clone(),
                &[("x-dev", b"alice"), ("x-user", b"dev-1")],
                "/x"
            ),
            r#"path "/x" matches none of: equal to "/health", starting with "/api""#
        );
        let compiled = i.compile(&Rules::default()).unwrap();
        let request = headers(&[("x-dev", b"alice"), ("x-user", b"dev-1")]);
        assert_eq!(compiled.explain(&request, b"/api/1"), Ok(()));
        assert_eq!(
            compiled.explain(&headers(&[("X-Dev", b"Alice")]), b""),
            Err(Mismatch::Header {
                name: "x-dev".to_owned(),
                expected: Expected::Exactly("alice".to_owned()),
                got: Some("Alice".to_owned()),
            })
        );
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
}
