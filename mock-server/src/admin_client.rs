//! [`Admin`]: the admin API as one typed client, whether the server runs in
//! this process or elsewhere.
//!
//! In-process, it calls the server state's methods directly (the same ones
//! the HTTP handlers call); remote, it speaks the `/_mock/` API over HTTP.
//! Both give the same answers, so a test written against one runs against
//! the other.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::state::ServerState;
use telepresence_api::Intercept;
use telepresence_api::admin::{
    ActiveFault, FAULTS, Fault, INTERCEPTS, JOURNAL, JournalEntry, PREFIX,
};

/// The header that says whether a journal page is followed by more.
const JOURNAL_MORE: &str = "x-journal-more";
/// How long connecting may take: a server that does not accept within it is
/// not coming.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest part of an error body kept in [`Error::AdminRefused`].
const MESSAGE_LIMIT: usize = 1024;

/// The mock server's admin API: the intercepts in force, the journal of
/// requests, and faults to inject.
///
/// Get one from [`MockServer::admin`](crate::MockServer::admin) for a server
/// in this process, or with [`Admin::connect`] for one reached over HTTP (a
/// container, another process). The methods are the same; cloning is cheap.
///
/// ```
/// use telepresence_mock_server::{Fault, Intercept, MockServer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = MockServer::builder().start().await?;
/// let admin = server.admin();
/// admin.add_intercept(Intercept::new("abc:orders").header("x-dev", "alice")).await?;
/// admin.inject_fault(Fault::status(503).times(1)).await?;
///
/// // The same API over HTTP, as a test would reach a container.
/// let remote = telepresence_mock_server::Admin::connect(&server.url(), None).await?;
/// assert_eq!(remote.intercepts().await?, admin.intercepts().await?);
/// assert_eq!(remote.faults().await?.len(), 1);
/// # Ok(())
/// # }
/// ```
///
/// Refusals differ only in kind: in-process, an invalid intercept or fault is
/// [`Error::Intercept`], [`Error::Intercepts`] or [`Error::Fault`]; over HTTP
/// it is [`Error::AdminRefused`] with the server's message, which says the same.
#[derive(Clone)]
pub struct Admin {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// A server in this process: its state, changed directly.
    InProcess(Arc<ServerState>),
    /// A server reached over HTTP.
    Remote(Arc<Remote>),
}

impl fmt::Debug for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the whole state nor the token belongs in a log line.
        match &self.backend {
            Backend::InProcess(_) => f
                .debug_struct("Admin")
                .field("server", &"in-process")
                .finish(),
            Backend::Remote(remote) => f
                .debug_struct("Admin")
                .field("url", &remote.url)
                .field("token", &remote.token.as_ref().map(|_| "<hidden>"))
                .finish(),
        }
    }
}

impl Admin {
    pub(crate) fn in_process(state: Arc<ServerState>) -> Self {
        Self {
            backend: Backend::InProcess(state),
        }
    }

    /// The admin API of the server at `url` (its base URL, such as
    /// `http://127.0.0.1:9980`, as [`MockServer::url`](crate::MockServer::url)
    /// gives it), sending `token` as `Authorization: Bearer` when given.
    ///
    /// It asks the server once, so that a wrong address, a wrong token or an
    /// admin API turned off is reported here rather than at the first change.
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Self, Error> {
        let url = url.trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            // A test's own traffic must not wander through a proxy from the environment.
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|error| Error::AdminUnreachable {
                url: url.clone(),
                source: error.into(),
            })?;
        let remote = Remote {
            url,
            token: token.map(str::to_owned),
            http,
        };
        remote.call(Method::GET, PREFIX, None).await?;
        Ok(Self {
            backend: Backend::Remote(Arc::new(remote)),
        })
    }

    /// The intercepts in force, in order.
    pub async fn intercepts(&self) -> Result<Vec<Intercept>, Error> {
        match &self.backend {
            Backend::InProcess(state) => Ok(state.intercepts()),
            Backend::Remote(remote) => remote.get_json(INTERCEPTS).await,
        }
    }

    /// Adds an intercept; the next request sees it. Its ID must be new, and
    /// it must suit the release mocked and the workload's ports.
    pub async fn add_intercept(&self, intercept: Intercept) -> Result<(), Error> {
        match &self.backend {
            Backend::InProcess(state) => {
                intercept.validate_for(&state.rules)?;
                Ok(state.add_intercept(intercept)?)
            }
            Backend::Remote(remote) => remote.send_json(Method::POST, INTERCEPTS, &intercept).await,
        }
    }

    /// Replaces every intercept at once: a request sees the old set or the
    /// new one, never a mix.
    pub async fn set_intercepts(
        &self,
        intercepts: impl IntoIterator<Item = Intercept>,
    ) -> Result<(), Error> {
        let intercepts: Vec<Intercept> = intercepts.into_iter().collect();
        match &self.backend {
            Backend::InProcess(state) => Ok(state.replace_intercepts(intercepts)?),
            Backend::Remote(remote) => remote.send_json(Method::PUT, INTERCEPTS, &intercepts).await,
        }
    }

    /// Removes the intercept with this ID; `false` if there was none.
    pub async fn remove_intercept(&self, id: &str) -> Result<bool, Error> {
        match &self.backend {
            Backend::InProcess(state) => Ok(state.remove_intercept(id)?),
            Backend::Remote(remote) => {
                let path = format!("{INTERCEPTS}/{}", encode_path_segment(id));
                let response = remote.send(Method::DELETE, &path, None).await?;
                let status = response.status();
                if status.is_success() {
                    return Ok(true);
                }
                let body = response.bytes().await.map_err(|e| remote.unreachable(e))?;
                match admin_error_message(&body) {
                    // The admin API's own 404 means no such intercept; any
                    // other (a server without the admin API) is a refusal.
                    Some(_) if status == http::StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(refusal(&Method::DELETE, &path, status, &body)),
                }
            }
        }
    }

    /// Removes every intercept.
    pub async fn clear_intercepts(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::InProcess(state) => Ok(state.replace_intercepts(Vec::new())?),
            Backend::Remote(remote) => remote
                .call(Method::DELETE, INTERCEPTS, None)
                .await
                .map(drop),
        }
    }

    /// The journal: every request to the API (and to unknown paths), oldest
    /// first. Over HTTP it is read page by page until the last.
    pub async fn journal(&self) -> Result<Vec<JournalEntry>, Error> {
        match &self.backend {
            Backend::InProcess(state) => Ok(state.journal.entries()),
            Backend::Remote(remote) => remote.journal().await,
        }
    }

    /// Empties the journal.
    pub async fn clear_journal(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::InProcess(state) => {
                state.journal.clear();
                Ok(())
            }
            Backend::Remote(remote) => remote.call(Method::DELETE, JOURNAL, None).await.map(drop),
        }
    }

    /// Injects a fault into the next answers (see [`Fault`]).
    pub async fn inject_fault(&self, fault: Fault) -> Result<(), Error> {
        match &self.backend {
            Backend::InProcess(state) => state.faults.add(fault).map_err(Error::Fault),
            Backend::Remote(remote) => remote.send_json(Method::POST, FAULTS, &fault).await,
        }
    }

    /// The faults in force, with what is left of their `times` and `after`.
    pub async fn faults(&self) -> Result<Vec<ActiveFault>, Error> {
        match &self.backend {
            Backend::InProcess(state) => Ok(state.faults.list()),
            Backend::Remote(remote) => remote.get_json(FAULTS).await,
        }
    }

    /// Removes every fault.
    pub async fn clear_faults(&self) -> Result<(), Error> {
        match &self.backend {
            Backend::InProcess(state) => {
                state.faults.clear();
                Ok(())
            }
            Backend::Remote(remote) => remote.call(Method::DELETE, FAULTS, None).await.map(drop),
        }
    }
}

/// A server's admin API over HTTP.
struct Remote {
    /// The server's base URL, without a trailing slash.
    url: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Remote {
    /// Sends a request to `path` (with its query); any answer is `Ok`.
    async fn send(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = json_body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        request
            .send()
            .await
            .map_err(|error| self.unreachable(error))
    }

    /// Like [`send`](Self::send), but only a success is `Ok`; any other
    /// status is [`Error::AdminRefused`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<reqwest::Response, Error> {
        let response = self.send(method.clone(), path, json_body).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(error))?;
        Err(refusal(&method, path, status, &body))
    }

    fn unreachable(&self, error: reqwest::Error) -> Error {
        Error::AdminUnreachable {
            url: self.url.clone(),
            source: error.into(),
        }
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        response: reqwest::Response,
    ) -> Result<T, Error> {
        let body = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(error))?;
        serde_json::from_slice(&body).map_err(|source| Error::AdminAnswer {
            url: self.url.clone(),
            source,
        })
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let response = self.call(Method::GET, path, None).await?;
        self.read_json(response).await
    }

    async fn send_json(
        &self,
        method: Method,
        path: &str,
        value: &impl Serialize,
    ) -> Result<(), Error> {
        // Intercepts and faults are plain data with string keys: they always serialize.
        let body = serde_json::to_vec(value).expect("an admin request body serializes");
        self.call(method, path, Some(body)).await.map(drop)
    }

    /// Every page of the journal, following `x-journal-more`.
    async fn journal(&self) -> Result<Vec<JournalEntry>, Error> {
        let mut entries: Vec<JournalEntry> = Vec::new();
        loop {
            let after = entries.last().map_or(0, |last| last.seq);
            let response = self
                .call(Method::GET, &format!("{JOURNAL}?after={after}"), None)
                .await?;
            let more = response
                .headers()
                .get(JOURNAL_MORE)
                .is_some_and(|value| value == "true");
            let page: Vec<JournalEntry> = self.read_json(response).await?;
            // An empty page ends the journal even if a server said otherwise.
            if page.is_empty() {
                return Ok(entries);
            }
            entries.extend(page);
            if !more {
                return Ok(entries);
            }
        }
    }
}

/// [`Error::AdminRefused`] for an answer with `status` and `body`.
fn refusal(method: &Method, path: &str, status: http::StatusCode, body: &[u8]) -> Error {
    let message = admin_error_message(body).unwrap_or_else(|| {
        // Not the admin API speaking (a proxy, a server without it): its text.
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        match text.char_indices().nth(MESSAGE_LIMIT) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        }
    });
    Error::AdminRefused {
        request: format!("{method} {path}"),
        status: status.as_u16(),
        message,
    }
}

/// The message of the admin API's `{"error": "..."}`, if the body is one.
fn admin_error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|body| body.error)
}

/// `id` as one URL path segment: every byte but the unreserved ones
/// percent-encoded, `/` included, so that an ID such as `a/../b` reaches the
/// server whole rather than as path segments a URL parser would resolve.
fn encode_path_segment(id: &str) -> String {
    let mut encoded = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_one_path_segment() {
        assert_eq!(encode_path_segment("abc:orders"), "abc%3Aorders");
        assert_eq!(encode_path_segment("a/../b c"), "a%2F..%2Fb%20c");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn a_refusal_keeps_the_servers_message() {
        let refused = |body: &[u8]| match refusal(
            &Method::DELETE,
            "/_mock/x",
            http::StatusCode::NOT_FOUND,
            body,
        ) {
            Error::AdminRefused { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(br#"{"error": "no intercept with id \"x\""}"#),
            "no intercept with id \"x\""
        );
        assert_eq!(refused(b"404 page not found\n"), "404 page not found");
        let long = "x".repeat(MESSAGE_LIMIT + 10);
        assert_eq!(refused(long.as_bytes()).chars().count(), MESSAGE_LIMIT + 1);
        let error = refusal(
            &Method::DELETE,
            "/_mock/x",
            http::StatusCode::NOT_FOUND,
            b"gone",
        );
        assert_eq!(
            error.to_string(),
            "the admin API refused DELETE /_mock/x with status 404: gone"
        );
    }
}
