//! The bodies the API answers with, beyond `/consume-here`'s boolean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What `/intercept-info` says about a message.
///
/// Read leniently: unknown fields are ignored and `metadata` may be absent,
/// so that answers of newer releases still read.
///
/// ```
/// use telepresence_api::InterceptInfo;
///
/// let info: InterceptInfo = serde_json::from_str(r#"{"intercepted":true,"clientSide":false}"#)?;
/// assert_eq!(info, InterceptInfo::new(true, false));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct InterceptInfo {
    /// Whether an intercept matches the message.
    pub intercepted: bool,
    /// Whether the answer comes from the workstation (the user daemon)
    /// rather than the pod (the traffic-agent).
    pub client_side: bool,
    /// The matching intercept's metadata (`--http-meta`); empty when none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl InterceptInfo {
    /// An answer without metadata.
    pub fn new(intercepted: bool, client_side: bool) -> Self {
        Self {
            intercepted,
            client_side,
            metadata: BTreeMap::new(),
        }
    }

    /// The same answer with the matching intercept's metadata.
    pub fn with_metadata(mut self, metadata: BTreeMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }
}

/// [`InterceptInfo`] as a server writes it, borrowing the metadata of the
/// matching intercept instead of copying it for every request.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InterceptInfoRef<'a> {
    pub(crate) intercepted: bool,
    pub(crate) client_side: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) metadata: Option<&'a BTreeMap<String, String>>,
}

/// An error answer in the JSON wire formats (2.5 and later): `{"error": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The server's message.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_server_writes_reads_back_as_the_same_answer() {
        let metadata: BTreeMap<String, String> = [("owner".into(), "alice".into())].into();
        for (intercepted, client_side, metadata) in [
            (true, true, Some(&metadata)),
            (false, true, None),
            (true, false, Some(&BTreeMap::new())),
        ] {
            let written = serde_json::to_string(&InterceptInfoRef {
                intercepted,
                client_side,
                metadata: metadata.filter(|m| !m.is_empty()),
            })
            .unwrap();
            let read: InterceptInfo = serde_json::from_str(&written).unwrap();
            let expected = InterceptInfo::new(intercepted, client_side)
                .with_metadata(metadata.cloned().unwrap_or_default());
            assert_eq!(read, expected, "{written}");
            assert_eq!(serde_json::to_string(&read).unwrap(), written);
        }
    }

    #[test]
    fn unknown_fields_and_missing_metadata_are_accepted() {
        let info: InterceptInfo =
            serde_json::from_str(r#"{"intercepted":true,"clientSide":true,"future":[1]}"#).unwrap();
        assert_eq!(info, InterceptInfo::new(true, true));
    }
}
