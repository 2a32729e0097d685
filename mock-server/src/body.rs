//! Request bodies, read whole: within a size limit, a time limit, and the
//! server's budget of body bytes buffered at once, so that neither one slow
//! client nor many large ones can hold the server's memory or workers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::limits::Limits;

/// The budget is counted in units of this many bytes.
const UNIT: usize = 1024;

/// How many body bytes the server buffers at once, across all requests.
#[derive(Clone, Debug)]
pub(crate) struct BodyBudget {
    units: Arc<Semaphore>,
    bytes: usize,
}

impl BodyBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            units: Arc::new(Semaphore::new(units)),
            bytes,
        }
    }

    /// Bytes left in the budget now.
    #[cfg(test)]
    fn available(&self) -> usize {
        self.units.available_permits() * UNIT
    }
}

/// A body read whole, and its share of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct ReadBody {
    pub(crate) bytes: Bytes,
    _share: Option<OwnedSemaphorePermit>,
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// It is larger than the limit.
    TooLarge,
    /// It did not arrive in time.
    Timeout(Duration),
    /// The server buffers as many body bytes as it may; this one waited its
    /// whole time for room.
    Busy { budget: usize },
    /// It is not valid HTTP: a bad chunk size, a connection closed early.
    Malformed(String),
}

impl BodyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Go's wording for the first, as the API's answers use it.
            Self::TooLarge => f.write_str("http: request body too large"),
            Self::Timeout(after) => write!(f, "http: request body read timeout (after {after:?})"),
            Self::Busy { budget } => write!(
                f,
                "mock server busy: {budget} bytes of request bodies are buffered already; try again"
            ),
            Self::Malformed(why) => write!(f, "http: malformed request body: {why}"),
        }
    }
}

/// Reads `body` whole, within `limits` and `budget`.
pub(crate) async fn read(
    body: Body,
    limits: &Limits,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError> {
    let mut waiting_for_budget = false;
    let reading = read_within(body, limits.max_body_bytes, budget, &mut waiting_for_budget);
    match tokio::time::timeout(limits.read_timeout, reading).await {
        Ok(result) => result,
        Err(_) if waiting_for_budget => Err(BodyError::Busy {
            budget: budget.bytes,
        }),
        Err(_) => Err(BodyError::Timeout(limits.read_timeout)),
    }
}

async fn read_within(
    mut body: Body,
    limit: usize,
    budget: &BodyBudget,
    waiting_for_budget: &mut bool,
) -> Result<ReadBody, BodyError> {
    let declared = hyper::body::Body::size_hint(&body).exact();
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut collected = BytesMut::new();
    let mut share: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Malformed(source_text(&e)))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if collected.len() + data.len() > limit {
            return Err(BodyError::TooLarge);
        }
        let held = share.as_ref().map_or(0, OwnedSemaphorePermit::num_permits);
        let needed = (collected.len() + data.len()).div_ceil(UNIT);
        if needed > held {
            *waiting_for_budget = true;
            let more = budget
                .units
                .clone()
                .acquire_many_owned(u32::try_from(needed - held).unwrap_or(u32::MAX))
                .await
                .map_err(|_| BodyError::Busy {
                    budget: budget.bytes,
                })?;
            *waiting_for_budget = false;
            match &mut share {
                Some(share) => share.merge(more),
                None => share = Some(more),
            }
        }
        collected.extend_from_slice(&data);
    }
    Ok(ReadBody {
        bytes: collected.freeze(),
        _share: share,
    })
}

/// The error and its causes, as one line.
fn source_text(error: &axum::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_body_bytes: usize, read_timeout: Duration) -> Limits {
        Limits {
            max_body_bytes,
            read_timeout,
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_body_within_the_limits_is_read_and_its_share_given_back() {
        let budget = BodyBudget::new(64 * 1024);
        let body = read(
            Body::from(vec![b'x'; 5000]),
            &limits(10_000, Duration::from_secs(5)),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(body.bytes.len(), 5000);
        assert_eq!(budget.available(), 64 * 1024 - 5 * UNIT);
        drop(body);
        assert_eq!(budget.available(), 64 * 1024);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let budget = BodyBudget::new(1 << 20);
        let err = read(
            Body::from(vec![b'x'; 2000]),
            &limits(1000, Duration::from_secs(5)),
            &budget,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_body_that_does_not_fit_the_budget_waits_then_is_busy() {
        let budget = BodyBudget::new(4 * UNIT);
        let held = read(
            Body::from(vec![b'x'; 3 * UNIT]),
            &limits(1 << 20, Duration::from_secs(5)),
            &budget,
        )
        .await
        .unwrap();
        let err = read(
            Body::from(vec![b'x'; 2 * UNIT]),
            &limits(1 << 20, Duration::from_millis(50)),
            &budget,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BodyError::Busy { .. }), "{err}");
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(held);
        let fits = read(
            Body::from(vec![b'x'; 2 * UNIT]),
            &limits(1 << 20, Duration::from_millis(50)),
            &budget,
        )
        .await;
        assert!(fits.is_ok());
    }
}
