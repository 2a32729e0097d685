//! The check that the API serves this client's side.

use http::header::HeaderMap;

use super::enabled::Enabled;
use crate::CALLER_INTERCEPT_ID_HEADER;
use crate::env;
use crate::error::{Error, ErrorKind};
use crate::wire;

/// What the API says about which side it serves, against this client's own
/// idea of its side.
#[derive(Debug)]
pub(super) enum SideVerdict {
    Agrees,
    /// The API cannot tell (Telepresence 2.4 has no `/intercept-info`).
    Unknown,
    /// The refusal, to give every decision.
    Mismatch(String),
}

impl Enabled {
    /// See [`Client::check_side`](crate::Client::check_side): asks once, and
    /// keeps the answer; an API that fails is asked again next time.
    pub(super) async fn check_side(&self) -> Result<(), Error> {
        let verdict = self
            .side
            .get_or_try_init(|| async {
                let mut headers = HeaderMap::with_capacity(1);
                headers.insert(CALLER_INTERCEPT_ID_HEADER, self.caller.clone());
                let (status, body) = self.send(&self.intercept_info, &headers).await?;
                if status == 404 {
                    return Ok(SideVerdict::Unknown);
                }
                let info = wire::intercept_info(status, &body)?;
                Ok::<_, Error>(self.verdict(info.client_side))
            })
            .await?;
        match verdict {
            SideVerdict::Mismatch(message) => Err(Error::config(message.clone())),
            SideVerdict::Agrees | SideVerdict::Unknown => Ok(()),
        }
    }

    /// The check before a decision: only a mismatch stops it; an API that
    /// fails leaves the decision to meet the failure itself, under the
    /// failure policy.
    pub(super) async fn check_side_before_deciding(&self) -> Result<(), Error> {
        if !self.side_check {
            return Ok(());
        }
        match self.check_side().await {
            Err(error) if error.kind() == ErrorKind::Config => Err(error),
            _ => Ok(()),
        }
    }

    fn verdict(&self, client_side: bool) -> SideVerdict {
        let intercept_id = &self.intercept_id;
        match (client_side, intercept_id.is_empty()) {
            (true, true) => SideVerdict::Mismatch(format!(
                "the Telepresence API at {} is a workstation's (it answers clientSide: true), but \
                 this process has no {}: it would leave every message to the pod, which leaves \
                 the intercepted ones to the workstation, so they would be processed by nobody. \
                 Set {} to the intercept's ID (`telepresence list` shows it) and start again",
                self.base,
                env::INTERCEPT_ID_ENV,
                env::INTERCEPT_ID_ENV
            )),
            (false, false) => SideVerdict::Mismatch(format!(
                "the Telepresence API at {} is the pod's traffic-agent (it answers clientSide: \
                 false), but this process has the intercept ID {intercept_id:?}: it would process \
                 the pod's share too. On a workstation, point {} (and {}) at the workstation's \
                 API; in the pod, leave {} unset",
                self.base,
                env::API_PORT_ENV,
                env::API_HOST_ENV,
                env::INTERCEPT_ID_ENV
            )),
            _ => SideVerdict::Agrees,
        }
    }
}
