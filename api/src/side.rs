//! The two sides of an intercept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::UnknownName;

/// Which Telepresence component answers: the workstation's or the pod's.
///
/// Each side runs the REST API beside its consumer. The pod's answers are
/// the inverse of the workstation's for the same message, so that exactly
/// one side processes it.
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
    /// `client` or `agent`, as the mock server's configuration writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Agent => "agent",
        }
    }

    /// Whether this is the workstation's side: `clientSide` in `/intercept-info`.
    pub fn is_client(self) -> bool {
        self == Self::Client
    }

    /// Whether this side processes a message, given whether an intercept
    /// matches it: the workstation processes what is intercepted, the pod
    /// everything else.
    ///
    /// ```
    /// use telepresence_api::Side;
    ///
    /// assert!(Side::Client.consumes(true) && !Side::Agent.consumes(true));
    /// assert!(!Side::Client.consumes(false) && Side::Agent.consumes(false));
    /// ```
    pub fn consumes(self, intercepted: bool) -> bool {
        match self {
            Self::Client => intercepted,
            Self::Agent => !intercepted,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Side {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(Self::Client),
            "agent" => Ok(Self::Agent),
            other => Err(UnknownName::new("side", other, "client or agent")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_refused_by_name() {
        for side in [Side::Client, Side::Agent] {
            assert_eq!(side.as_str().parse::<Side>(), Ok(side));
            let json = serde_json::to_string(&side).unwrap();
            assert_eq!(json, format!("\"{side}\""));
        }
        assert_eq!(
            "pod".parse::<Side>().unwrap_err().to_string(),
            "unknown side `pod` (expected client or agent)"
        );
    }
}
