//! The configuration file (YAML; JSON is valid YAML) and where it comes from.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::decision::InterceptSet;
use telepresence_api::{Intercept, Side, TelepresenceVersion, Wire};

/// The environment variable that may hold the whole configuration as inline YAML.
pub const CONFIG_ENV: &str = telepresence_api::env::MOCK_CONFIG;

/// Where the server listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9980";

/// The schema of the configuration file. Every key is optional; unknown keys
/// are refused.
///
/// ```yaml
/// side: agent                  # client | agent
/// listen: 127.0.0.1:9980
/// telepresence_version: "2.27" # the release to mock (default: the newest known)
/// container_ports: [8080, 9090] # the workload's ports, in agent order
/// intercepts:
///   - id: "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server"
///     container_port: 8080
///     headers: { x: y, x-user: "^dev-.*" }
///     path_prefix: [/api, /v2/api]  # a string or a list; before 2.25 at most one filter
///     metadata: { a: b }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConfigFile {
    /// `client` (workstation) or `agent` (cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// The address to listen on, `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The Telepresence release to mock, e.g. `"2.27"` or `"2.24.1"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telepresence_version: Option<TelepresenceVersion>,
    /// Overrides the release's wire format: `2.25`, `2.5` or `2.4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wire: Option<Wire>,
    /// The workload's interceptable container ports, in agent-configuration order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_ports: Option<Vec<u16>>,
    /// The intercepts; absent means "one default intercept", `[]` means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intercepts: Option<Vec<Intercept>>,
}

/// Where a piece of configuration came from, as error messages name it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigOrigin {
    /// A file given with `--config`.
    File(PathBuf),
    /// The environment variable [`CONFIG_ENV`].
    Env,
    /// The command line.
    CommandLine,
}

impl fmt::Display for ConfigOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "config file {}", path.display()),
            Self::Env => write!(f, "environment variable {CONFIG_ENV}"),
            Self::CommandLine => f.write_str("command line"),
        }
    }
}

/// A refused configuration: where it came from and what is wrong, naming the
/// intercept and the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("{origin}: {message}")]
    Invalid {
        /// Where it came from.
        origin: ConfigOrigin,
        /// What is wrong, starting with the key.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn invalid(origin: &ConfigOrigin, message: impl fmt::Display) -> Self {
        Self::Invalid {
            origin: origin.clone(),
            message: message.to_string(),
        }
    }
}

impl ConfigFile {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, &ConfigOrigin::File(path.to_owned()))
    }

    /// Parses and checks YAML (or JSON) text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &ConfigOrigin) -> Result<Self, ConfigError> {
        check_nesting(text).map_err(|e| ConfigError::invalid(origin, e))?;
        // An empty document (or one with only comments) is an empty configuration.
        let config: Option<Self> =
            serde_norway::from_str(text).map_err(|e| ConfigError::invalid(origin, e))?;
        let config = config.unwrap_or_default();
        config.check(origin)?;
        Ok(config)
    }

    fn check(&self, origin: &ConfigOrigin) -> Result<(), ConfigError> {
        if let Some(listen) = &self.listen {
            resolve_listen(listen)
                .map_err(|e| ConfigError::invalid(origin, format!("listen: {e}")))?;
        }
        if self.intercepts.is_some() || self.container_ports.is_some() {
            let rules = self.telepresence_version.unwrap_or_default().rules();
            let intercepts = self.intercepts.as_deref().unwrap_or_default();
            InterceptSet::new(intercepts, rules, self.container_ports.as_deref())
                .map_err(|e| ConfigError::invalid(origin, e))?;
        }
        Ok(())
    }
}

/// How deeply a configuration may nest (the schema needs four levels).
const MAX_NESTING: usize = 64;

/// Refuses text nested deeper than [`MAX_NESTING`], by flow brackets or by
/// indentation, before the YAML parser meets it: its time grows with the
/// square of the depth.
fn check_nesting(text: &str) -> Result<(), String> {
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let content = line.trim_start_matches(' ');
        if flow == 0 && !content.is_empty() && !content.starts_with('#') {
            let indent = line.len() - content.len();
            while indents.last().is_some_and(|&top| top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            // A block sequence item opens one more level on the same line.
            let items = content.split(' ').take_while(|word| *word == "-").count();
            if indents.len() + items > MAX_NESTING {
                return Err(format!(
                    "line {}: nested deeper than {MAX_NESTING} levels",
                    number + 1
                ));
            }
        }
        let mut quote: Option<char> = None;
        let mut previous = ' ';
        let mut chars = content.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => {
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        chars.next();
                    } else {
                        quote = None;
                    }
                }
                (Some(_), _) => {}
                (None, '#') if previous.is_whitespace() => break,
                (None, '"' | '\'') if previous.is_whitespace() || "[{,:".contains(previous) => {
                    quote = Some(c);
                }
                (None, '[' | '{') => {
                    flow += 1;
                    if flow > MAX_NESTING {
                        return Err(format!(
                            "line {}: nested deeper than {MAX_NESTING} levels",
                            number + 1
                        ));
                    }
                }
                (None, ']' | '}') => flow = flow.saturating_sub(1),
                _ => {}
            }
            previous = c;
        }
    }
    Ok(())
}

/// Resolves `host:port` to the first address it names.
pub(crate) fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    listen
        .to_socket_addrs()
        .map_err(|e| format!("`{listen}` is not a valid host:port address: {e}"))?
        .next()
        .ok_or_else(|| format!("`{listen}` resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigFile, String> {
        ConfigFile::parse(text, &ConfigOrigin::File("mock.yaml".into())).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_example_parses() {
        let config = parse(
            r#"
side: agent                  # client | agent
listen: 127.0.0.1:9980
telepresence_version: "2.27" # the release to mock (default: the newest known)
container_ports: [8080, 9090] # the workload's ports, in agent order
intercepts:
  - id: "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server"
    container_port: 8080
    headers: { x: y, x-user: "^dev-.*" }
    path_prefix: [/api, /v2/api]  # a string or a list; before 2.25 at most one filter
    metadata: { a: b }
"#,
        )
        .unwrap();
        assert_eq!(config.side, Some(Side::Agent));
        assert_eq!(
            config.telepresence_version.map(|v| v.to_string()),
            Some("2.27".to_owned())
        );
        assert_eq!(config.container_ports, Some(vec![8080, 9090]));
        let expected = Intercept::new("4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server")
            .container_port(8080)
            .header("x", "y")
            .header("x-user", "^dev-.*")
            .path_prefix("/api")
            .path_prefix("/v2/api")
            .metadata("a", "b");
        assert_eq!(config.intercepts, Some(vec![expected]));
    }

    #[test]
    fn json_is_accepted_and_empty_documents_are_empty() {
        let config = parse(r#"{"side":"client","wire":2.5,"intercepts":[]}"#).unwrap();
        assert_eq!(config.wire, Some(Wire::V2_5));
        assert_eq!(config.intercepts, Some(vec![]));
        assert_eq!(parse("").unwrap(), ConfigFile::default());
        assert_eq!(parse("# nothing\n").unwrap(), ConfigFile::default());
    }

    #[test]
    fn errors_name_the_file_the_intercept_and_the_key() {
        let cases = [
            ("bogus: 1", "config file mock.yaml: unknown field `bogus`"),
            (
                "intercepts:\n  - id: a\n    colour: red\n",
                "config file mock.yaml: intercepts[0]: unknown field `colour`",
            ),
            (
                "telepresence_version: '2.24'\nintercepts:\n  - id: a\n  - id: b\n    path_equal: /a\n    path_prefix: /b\n",
                "config file mock.yaml: intercepts[1] (\"b\"): path_prefix: at most one path filter is allowed before Telepresence 2.25",
            ),
            (
                "telepresence_version: '2.24.1'\nintercepts:\n  - id: a\n    path_regex: '(x'\n",
                "config file mock.yaml: intercepts[0] (\"a\"): path_regex: invalid regular expression `(x`",
            ),
            (
                "telepresence_version: '2.5'\nintercepts:\n  - id: a\n    headers: {x-user: '[a'}\n",
                "config file mock.yaml: intercepts[0] (\"a\"): headers.x-user: invalid regular expression",
            ),
            (
                "container_ports: [9090]\nintercepts:\n  - id: a\n",
                "config file mock.yaml: intercepts[0] (\"a\"): container_port: 8080 is not a port of the workload (container_ports: 9090)",
            ),
            (
                "container_ports: [8080, 8080]\n",
                "config file mock.yaml: container_ports: port 8080 is listed twice",
            ),
            (
                "telepresence_version: '2.3'\n",
                "config file mock.yaml: telepresence_version: Telepresence 2.3 has no REST API to mock; it came with 2.4.8",
            ),
            (
                "telepresence_version: latest\n",
                "telepresence_version: `latest` is not a Telepresence release",
            ),
            (
                "intercepts:\n  - id: a\n    path_prefix: {x: 1}\n",
                "intercepts[0].path_prefix: invalid type: map, expected a string or a list of strings",
            ),
            (
                "intercepts:\n  - id: a\n    container_port: 70000\n",
                "config file mock.yaml: intercepts[0].container_port: invalid value: integer `70000`, expected u16",
            ),
            (
                "intercepts:\n  - id: a\n    container_port: 0\n",
                "config file mock.yaml: intercepts[0] (\"a\"): container_port: port 0 is out of range 1..=65535",
            ),
            (
                "intercepts:\n  - id: a\n  - id: a\n",
                "config file mock.yaml: intercepts[1] (\"a\"): id: duplicate intercept ID",
            ),
            ("side: middle", "side: unknown variant `middle`"),
            ("wire: 3", "wire: unknown wire format `3`"),
            (
                "listen: nowhere",
                "config file mock.yaml: listen: `nowhere` is not a valid",
            ),
            (
                "intercepts:\n  - container_port: 1\n",
                "intercepts[0]: missing field `id`",
            ),
        ];
        for (yaml, expected) in cases {
            let err = parse(yaml).expect_err(yaml);
            assert!(
                err.contains(expected),
                "{yaml:?}\n  gave {err}\n  wanted {expected}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let flow = format!("intercepts: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&flow).unwrap_err();
        assert!(
            err.contains("line 1: nested deeper than 64 levels"),
            "{err}"
        );
        let mut block = String::from("intercepts:\n");
        for depth in 1..=2000 {
            block.push_str(&format!("{}- \n", "  ".repeat(depth)));
        }
        let err = parse(&block).unwrap_err();
        assert!(err.contains("nested deeper than 64 levels"), "{err}");
        // Brackets in strings and comments do not count.
        let quoted = format!(
            "intercepts:\n  - id: \"{}\"\n    headers: {{x: '{}'}} # {}\n",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200)
        );
        assert!(parse(&quoted).is_ok(), "{:?}", parse(&quoted));
    }

    #[test]
    fn the_origin_is_named() {
        let err = ConfigFile::parse("x: 1", &ConfigOrigin::Env).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable TELEPRESENCE_MOCK_CONFIG: ")
        );
        let err = ConfigFile::load(Path::new("/no/such/file.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read config file /no/such/file.yaml"
        );
        assert!(
            std::error::Error::source(&err).is_some(),
            "the cause is linked"
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    const KEYS: &[&str] = &[
        "side",
        "listen",
        "telepresence_version",
        "wire",
        "container_ports",
        "intercepts",
        "id",
        "container_port",
        "headers",
        "path_equal",
        "path_prefix",
        "path_regex",
        "metadata",
        "x-dev",
        "bogus",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (0u32..70000).prop_map(Value::from),
            prop::sample::select(vec![
                "agent",
                "client",
                "2.5",
                "2.24",
                "2.3",
                "127.0.0.1:0",
                "(",
                "^a",
                "x",
                ""
            ])
            .prop_map(Value::from),
            any::<String>().prop_map(Value::from),
        ]
    }

    fn document() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(
                    (
                        prop_oneof![
                            prop::sample::select(KEYS).prop_map(str::to_owned),
                            "[a-z_]{1,8}"
                        ],
                        inner
                    ),
                    0..6
                )
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn keys(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    out.push(key.clone());
                    keys(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| keys(item, out)),
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_yaml_never_panics_and_refusals_name_a_key(document in document()) {
            let yaml = serde_norway::to_string(&document).unwrap();
            let origin = ConfigOrigin::File("fuzz.yaml".into());
            if let Err(error) = ConfigFile::parse(&yaml, &origin)
                && let Value::Object(map) = &document
                && !map.is_empty()
            {
                let message = error.to_string();
                let mut names = Vec::new();
                keys(&document, &mut names);
                prop_assert!(
                    names.iter().any(|key| message.contains(key.as_str())),
                    "{message}\nnames no key of\n{yaml}"
                );
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = ConfigFile::parse(&text, &ConfigOrigin::Env);
        }
    }
}
