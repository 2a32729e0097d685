//! HTTP to the API: one GET, retried after connection errors, within the
//! call's timeout.

use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderMap;
use reqwest::{Method, Url};

use crate::error::{Error, ErrorKind};
use crate::stats::Counters;

/// The longest wait between two retries.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);

/// The HTTP client and how it retries.
pub(super) struct Transport {
    http: reqwest::Client,
    /// Bound on a whole call, retries included.
    timeout: Duration,
    /// Retries after a connection error.
    retries: u32,
    /// Wait before the first retry; doubles each time.
    backoff: Duration,
}

impl Transport {
    pub(super) fn new(
        connect_timeout: Duration,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
    ) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::caused(ErrorKind::Config, "cannot build the HTTP client", &e))?;
        Ok(Self {
            http,
            timeout,
            retries,
            backoff,
        })
    }

    /// Sends a GET, retrying connection errors, within the call's timeout;
    /// counts requests and retries.
    pub(super) async fn send(
        &self,
        url: &Url,
        headers: &HeaderMap,
        counters: &Counters,
    ) -> Result<(u16, Bytes), Error> {
        let attempts = async {
            let mut request = reqwest::Request::new(Method::GET, url.clone());
            *request.headers_mut() = headers.clone();
            let mut retry = 0;
            loop {
                let next = (retry < self.retries)
                    .then(|| request.try_clone())
                    .flatten();
                Counters::add(&counters.requests, 1);
                match self.http.execute(request).await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response
                            .bytes()
                            .await
                            .map_err(|e| transport_error(url, &e))?;
                        return Ok((status, body));
                    }
                    Err(error) if is_retryable(&error) && next.is_some() => {
                        tracing::debug!(%error, retry, "retrying the Telepresence API");
                        Counters::add(&counters.retries, 1);
                        let wait = self.backoff.saturating_mul(1 << retry.min(10));
                        tokio::time::sleep(wait.min(MAX_RETRY_BACKOFF)).await;
                        retry += 1;
                        request = next.expect("checked above");
                    }
                    Err(error) => return Err(transport_error(url, &error)),
                }
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(result) => result,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("no answer from {url} within {:?}", self.timeout),
            )),
        }
    }
}

/// The queries are idempotent, so any failure to get an answer over a
/// connection may be retried; a timeout is not (the whole call is bounded).
fn is_retryable(error: &reqwest::Error) -> bool {
    error.is_connect() || error.is_request()
}

/// The message names the URL, then the causes of `error`: not `error`'s own
/// text, which would repeat the URL.
pub(super) fn transport_error(url: &Url, error: &reqwest::Error) -> Error {
    let kind = if error.is_timeout() {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connect
    };
    let context = format_args!("cannot reach the Telepresence API at {url}");
    match std::error::Error::source(error) {
        Some(cause) => Error::caused(kind, context, cause),
        None => Error::new(kind, context.to_string()),
    }
}
