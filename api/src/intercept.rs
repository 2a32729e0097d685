//! Intercepts as a user declares them.
//!
//! The declaration is plain data with the same shape as an intercept in the
//! mock server's configuration file, so one type serves the YAML file, the
//! admin API's JSON and the Rust builder. Its validation and matching live
//! in `matching`, behind the feature of that name.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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
/// Which filters a release accepts depends on the
/// [`Rules`](crate::Rules) it follows: see `Intercept::validate_for`
/// (feature `matching`).
///
/// ```
/// use telepresence_api::Intercept;
///
/// let intercept = Intercept::new("4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server")
///     .container_port(8080)
///     .header("x", "y")
///     .header("x-user", "^dev-.*") // a metacharacter makes it a regex
///     .path_prefix("/api")
///     .path_prefix("/v2/api") // several path filters: any may match
///     .metadata("a", "b");
/// # #[cfg(feature = "matching")]
/// assert!(intercept.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct InterceptError {
    /// The offending key, e.g. `path_regex` or `headers.x-user`.
    pub key: String,
    /// What is wrong with its value.
    pub reason: String,
}

impl InterceptError {
    /// An error for `key` (e.g. `headers.x-dev`), saying what is wrong with its value.
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Whether Telepresence takes a header filter value as a regular expression:
/// exactly when it contains a regex metacharacter (`\\ . + * ? ( ) | [ ] { } ^ $`).
///
/// ```
/// assert!(telepresence_api::is_regex("^dev-.*"));
/// assert!(!telepresence_api::is_regex("dev-alice"));
/// ```
pub fn is_regex(value: &str) -> bool {
    value.contains(REGEX_METACHARACTERS)
}

#[cfg(test)]
mod tests {
    use super::*;

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
