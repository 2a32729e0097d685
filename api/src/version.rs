//! Telepresence releases and the rules each one follows.
//!
//! The REST API was added in 2.4.8 and rewritten when 2.25.0 brought HTTP
//! intercepts back: the rules below changed then. `docs/mock-server.md` in the repository lists
//! each change with the source it was read from.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire::Wire;

/// A Telepresence release, as `--telepresence-version` takes it: `2.27`,
/// `2.24.1`, `v2.4`.
///
/// It selects every version-dependent behaviour of the mock at once (see
/// [`Rules`]). Releases older than the REST API (before 2.4.8) are refused;
/// releases newer than [`NEWEST_KNOWN`](Self::NEWEST_KNOWN) are accepted and
/// follow its rules.
///
/// ```
/// use telepresence_api::{PortChoice, TelepresenceVersion, Wire};
///
/// let current: TelepresenceVersion = "2.27".parse()?;
/// assert_eq!(current.rules().unspecified_port, PortChoice::FirstTarget);
///
/// let legacy: TelepresenceVersion = "2.24.1".parse()?;
/// assert_eq!(legacy.rules().wire, Wire::V2_5);
/// assert_eq!(legacy.rules().unspecified_port, PortChoice::OnlyTarget);
///
/// assert!("2.3".parse::<TelepresenceVersion>().is_err());
/// # Ok::<(), telepresence_api::VersionError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TelepresenceVersion {
    major: u16,
    minor: u16,
    patch: Option<u16>,
}

/// Why a version was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VersionError(String);

/// The first release of a rules family: 2.25.0 rewrote the REST API.
const REWRITE: (u16, u16, u16) = (2, 25, 0);
/// The release that added the REST API.
const FIRST_API: (u16, u16, u16) = (2, 4, 8);
/// The release that added `/intercept-info` and JSON answers.
const JSON_API: (u16, u16, u16) = (2, 5, 0);

impl TelepresenceVersion {
    /// The newest release this mock knows, and its default.
    pub const NEWEST_KNOWN: Self = Self {
        major: 2,
        minor: 27,
        patch: Some(4),
    };

    /// The major version (2).
    pub fn major(self) -> u16 {
        self.major
    }

    /// The minor version (27 in 2.27.4).
    pub fn minor(self) -> u16 {
        self.minor
    }

    /// The patch version, when one was given.
    pub fn patch(self) -> Option<u16> {
        self.patch
    }

    /// Whether this release is newer than [`NEWEST_KNOWN`](Self::NEWEST_KNOWN)
    /// (it then follows the newest rules).
    pub fn is_newer_than_known(self) -> bool {
        self.key() > Self::NEWEST_KNOWN.key()
    }

    fn key(self) -> (u16, u16, u16) {
        (self.major, self.minor, self.patch.unwrap_or(0))
    }

    /// `2.4` means the 2.4 line that has the API (2.4.8 and later).
    fn at_least(self, release: (u16, u16, u16)) -> bool {
        let (major, minor, patch) = release;
        (self.major, self.minor) > (major, minor)
            || ((self.major, self.minor) == (major, minor) && self.patch.is_none_or(|p| p >= patch))
    }

    /// The rules this release follows.
    pub fn rules(self) -> Rules {
        if self.at_least(REWRITE) {
            Rules {
                wire: Wire::V2_25,
                serves_intercept_info: true,
                unspecified_port: PortChoice::FirstTarget,
                candidate_order: CandidateOrder::ById,
                path_filters: PathFilters::AnyOf,
                invalid_regex: InvalidRegex::Literal,
            }
        } else {
            let json = self.at_least(JSON_API);
            Rules {
                wire: if json { Wire::V2_5 } else { Wire::V2_4 },
                serves_intercept_info: json,
                unspecified_port: PortChoice::OnlyTarget,
                candidate_order: CandidateOrder::Declared,
                path_filters: PathFilters::AtMostOne,
                invalid_regex: InvalidRegex::Refused,
            }
        }
    }
}

impl Default for TelepresenceVersion {
    fn default() -> Self {
        Self::NEWEST_KNOWN
    }
}

impl fmt::Display for TelepresenceVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)?;
        if let Some(patch) = self.patch {
            write!(f, ".{patch}")?;
        }
        Ok(())
    }
}

impl FromStr for TelepresenceVersion {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let not_a_version = || {
            VersionError(format!(
                "`{text}` is not a Telepresence release; write one such as 2.27, 2.24.1 or 2.4"
            ))
        };
        let trimmed = text.trim();
        let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let mut numbers = bare.split('.').map(|part| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            part.parse::<u16>().ok()
        });
        let major = numbers.next().flatten().ok_or_else(not_a_version)?;
        let minor = numbers.next().flatten().ok_or_else(not_a_version)?;
        let patch = match numbers.next() {
            None => None,
            Some(patch) => Some(patch.ok_or_else(not_a_version)?),
        };
        if numbers.next().is_some() {
            return Err(not_a_version());
        }
        let version = Self {
            major,
            minor,
            patch,
        };
        if !version.at_least(FIRST_API) {
            let (major, minor, patch) = FIRST_API;
            return Err(VersionError(format!(
                "Telepresence {version} has no REST API to mock; it came with {major}.{minor}.{patch}"
            )));
        }
        Ok(version)
    }
}

impl Serialize for TelepresenceVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Takes the scalar as written, so that an unquoted YAML `2.20` stays 2.20
/// (read as a number it would be 2.2).
impl<'de> Deserialize<'de> for TelepresenceVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VersionVisitor;
        impl serde::de::Visitor<'_> for VersionVisitor {
            type Value = TelepresenceVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Telepresence release such as \"2.27\" or \"2.24.1\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(VersionVisitor)
    }
}

/// Every behaviour that depends on the Telepresence release mocked.
///
/// Built by [`TelepresenceVersion::rules`]; the wire format may then be
/// overridden on its own (`--wire`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rules {
    /// How answers look on the wire.
    pub wire: Wire,
    /// Whether `/intercept-info` exists (2.5 and later; 2.4 answers Go's 404).
    pub serves_intercept_info: bool,
    /// Which target the agent takes when `containerPort` is absent or 0.
    pub unspecified_port: PortChoice,
    /// In which order the agent tries the target's intercepts.
    pub candidate_order: CandidateOrder,
    /// How many path filters an intercept may have.
    pub path_filters: PathFilters,
    /// What becomes of a filter value that is not a valid regular expression.
    pub invalid_regex: InvalidRegex,
}

impl Default for Rules {
    fn default() -> Self {
        TelepresenceVersion::NEWEST_KNOWN.rules()
    }
}

/// Which intercept target the traffic-agent takes for a query without a
/// container port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChoice {
    /// The first target (the workload's first interceptable port), intercepted or not.
    FirstTarget,
    /// The only target when the workload has exactly one port; otherwise none.
    OnlyTarget,
}

/// The order in which the traffic-agent tries a target's intercepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CandidateOrder {
    /// Sorted by intercept ID (byte order).
    ById,
    /// In the order they were declared.
    Declared,
}

/// How many path filters an intercept may have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathFilters {
    /// Any number; the path matches when any of them matches.
    AnyOf,
    /// At most one; more is refused.
    AtMostOne,
}

/// What becomes of a filter value meant as a regular expression that does not compile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidRegex {
    /// It is compared as an exact, literal value.
    Literal,
    /// The intercept is refused.
    Refused,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> TelepresenceVersion {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn releases_parse_and_print_as_written() {
        for text in ["2.27", "2.24.1", "2.4", "2.4.8", "2.25.0", "3.0", "2.100.7"] {
            assert_eq!(v(text).to_string(), text);
        }
        assert_eq!(v("v2.27.4"), TelepresenceVersion::NEWEST_KNOWN);
        assert_eq!(v(" 2.5 ").to_string(), "2.5");
    }

    #[test]
    fn anything_else_is_refused_naming_the_value() {
        for text in [
            "", "2", "2.", ".5", "2.x", "two", "2.5.1.1", "2.5-rc1", "+2.5", "2..5", "2.70000",
        ] {
            let err = text.parse::<TelepresenceVersion>().unwrap_err();
            assert!(err.to_string().contains(&format!("`{text}`")), "{err}");
        }
    }

    #[test]
    fn releases_without_the_api_are_refused() {
        for text in ["1.9", "2.3", "2.3.9", "2.4.0", "2.4.7", "0.1"] {
            let err = text.parse::<TelepresenceVersion>().unwrap_err().to_string();
            assert!(
                err.contains("has no REST API") && err.contains("2.4.8"),
                "{err}"
            );
        }
        assert!("2.4.8".parse::<TelepresenceVersion>().is_ok());
    }

    #[test]
    fn each_release_gets_its_family() {
        let current = Rules {
            wire: Wire::V2_25,
            serves_intercept_info: true,
            unspecified_port: PortChoice::FirstTarget,
            candidate_order: CandidateOrder::ById,
            path_filters: PathFilters::AnyOf,
            invalid_regex: InvalidRegex::Literal,
        };
        let legacy = Rules {
            wire: Wire::V2_5,
            serves_intercept_info: true,
            unspecified_port: PortChoice::OnlyTarget,
            candidate_order: CandidateOrder::Declared,
            path_filters: PathFilters::AtMostOne,
            invalid_regex: InvalidRegex::Refused,
        };
        let oldest = Rules {
            wire: Wire::V2_4,
            serves_intercept_info: false,
            ..legacy
        };
        for (text, rules) in [
            ("2.4", oldest),
            ("2.4.8", oldest),
            ("2.4.11", oldest),
            ("2.5", legacy),
            ("2.5.0", legacy),
            ("2.24", legacy),
            ("2.24.9", legacy),
            ("2.25", current),
            ("2.25.0", current),
            ("2.27.4", current),
            ("2.28", current),
            ("3.1", current),
        ] {
            assert_eq!(v(text).rules(), rules, "{text}");
        }
        assert_eq!(Rules::default(), current);
    }

    #[test]
    fn newer_than_known_is_told() {
        assert!(!TelepresenceVersion::NEWEST_KNOWN.is_newer_than_known());
        assert!(!v("2.27").is_newer_than_known());
        assert!(v("2.27.5").is_newer_than_known());
        assert!(v("2.28").is_newer_than_known());
    }

    #[test]
    fn yaml_keeps_the_digits_as_written() {
        let quoted: TelepresenceVersion = serde_norway::from_str("\"2.20\"").unwrap();
        assert_eq!(quoted.to_string(), "2.20");
        let bare: TelepresenceVersion = serde_norway::from_str("2.20").unwrap();
        assert_eq!(bare.to_string(), "2.20");
        let number = serde_json::from_str::<TelepresenceVersion>("2.20").unwrap_err();
        assert!(
            number
                .to_string()
                .contains("expected a Telepresence release"),
            "{number}"
        );
        let json: TelepresenceVersion = serde_json::from_str("\"2.24.1\"").unwrap();
        assert_eq!(json, v("2.24.1"));
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"2.24.1\"");
    }
}
