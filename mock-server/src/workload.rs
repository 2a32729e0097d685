//! The decision without a server: a workload's intercepts as one release
//! sees them, asked directly.

use http::HeaderMap;

use crate::decision::{InterceptSet, InterceptSetError, Query};
use telepresence_api::{Explanation, Intercept, Side, TelepresenceVersion};

/// A workload's intercepts under one Telepresence release's rules: what each
/// side decides for a request, and why, computed in-process with the same
/// code the mock server answers with.
///
/// ```
/// use http::HeaderMap;
/// use telepresence_mock_server::{Intercept, Side, TelepresenceVersion, Workload};
///
/// let workload = Workload::new(
///     &[Intercept::new("abc:orders").header("x-dev", "alice")],
///     TelepresenceVersion::default(),
///     None,
/// )?;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-dev", "bob".parse()?);
/// let pod = workload.explain(Side::Agent, &headers, "", 0);
/// assert!(pod.consume_here);
/// assert_eq!(
///     pod.reason.to_string(),
///     r#"no intercept matches: abc:orders: header x-dev: expected "alice", got "bob""#
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Workload {
    set: InterceptSet,
}

impl Workload {
    /// Checks `intercepts` under `version`'s rules. `workload_ports` are the
    /// workload's container ports in the traffic-agent's order; `None` takes
    /// the intercepts' ports in order of first appearance.
    pub fn new(
        intercepts: &[Intercept],
        version: TelepresenceVersion,
        workload_ports: Option<&[u16]>,
    ) -> Result<Self, InterceptSetError> {
        InterceptSet::new(intercepts, version.rules(), workload_ports).map(|set| Self { set })
    }

    /// What `side` decides for a request with these headers (the caller's
    /// intercept ID among them, on the workstation), `path` and
    /// `container_port` (0: none given), and why.
    pub fn explain(
        &self,
        side: Side,
        headers: &HeaderMap,
        path: &str,
        container_port: u16,
    ) -> Explanation {
        let query = Query {
            headers,
            path: path.as_bytes(),
            container_port,
        };
        let (_, reason) = self.set.explain(side, &query);
        Explanation::new(side, reason)
    }

    /// The intercepts, in declaration order.
    pub fn intercepts(&self) -> impl ExactSizeIterator<Item = &Intercept> {
        self.set.specs()
    }

    /// The workload's ports, in the traffic-agent's order.
    pub fn ports(&self) -> Vec<u16> {
        self.set.workload_ports()
    }
}
