//! The one error shared by the protocol's named values.

/// A name that is none of the values it could be: a side, a wire format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (expected {expected})")]
pub struct UnknownName {
    kind: &'static str,
    value: String,
    expected: &'static str,
}

impl UnknownName {
    pub(crate) fn new(kind: &'static str, value: &str, expected: &'static str) -> Self {
        Self {
            kind,
            value: value.to_owned(),
            expected,
        }
    }

    /// The name as given.
    pub fn value(&self) -> &str {
        &self.value
    }
}
