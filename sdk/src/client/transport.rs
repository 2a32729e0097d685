//! HTTP to the API: one GET, retried after connection errors, within the
//! call's timeout, over keep-alive HTTP/1.1 connections kept in a pool.
//!
//! Each query drives its connection itself, in the task that awaits the
//! decision, on hyper's connection API. A general-purpose client (reqwest,
//! hyper-util's pool) runs every connection as a task of its own, so a query
//! crosses from the caller's task to the connection's and back: two
//! wake-ups, often on other threads, which cost a query on loopback more
//! than the server's whole answer (`tpk-load breakdown`, docs/performance.md).

use std::future::poll_fn;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderMap, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, LengthLimitError, Limited};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use url::Url;

use crate::error::{Error, ErrorKind};
use crate::stats::Counters;

/// The longest wait between two retries.
const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Connections idle longer than this are closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept: a stream adapter keeps its depth of queries in
/// flight, each on a connection, and a connection dropped for want of room
/// costs the next query a TCP handshake.
const MAX_IDLE: usize = 256;
/// The largest answer read: the API's are a few bytes to a few hundred.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// The connection pool and how it retries.
pub(super) struct Transport {
    /// The API's host, as connected to and as sent in `Host`.
    host: String,
    port: u16,
    authority: HeaderValue,
    /// Connected, answered their last query whole, most recent last.
    idle: Mutex<Vec<Idle>>,
    connect_timeout: Duration,
    /// Bound on a whole call, retries included.
    timeout: Duration,
    /// Retries after a connection error.
    retries: u32,
    /// Wait before the first retry; doubles each time.
    backoff: Duration,
}

/// One HTTP/1.1 connection: the half that sends requests, and the half that
/// reads and writes the socket, polled while a query waits.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    connection: Connection<TokioIo<TcpStream>, Empty<Bytes>>,
}

struct Idle {
    conn: Conn,
    since: Instant,
}

/// Why an attempt failed, and whether another may follow.
enum Failure {
    /// Before an answer began: another attempt cannot repeat any effect.
    Connection(Error),
    /// While reading an answer.
    Answer(Error),
}

impl Transport {
    /// A transport to the API at `base`; every endpoint is under it.
    pub(super) fn new(
        base: &Url,
        connect_timeout: Duration,
        timeout: Duration,
        retries: u32,
        backoff: Duration,
    ) -> Result<Self, Error> {
        let invalid = |what: &str| Error::config(format!("API URL {base}: {what}"));
        let host = base.host_str().ok_or_else(|| invalid("no host"))?;
        let port = base
            .port_or_known_default()
            .ok_or_else(|| invalid("no port"))?;
        let authority = &base[url::Position::BeforeHost..url::Position::AfterPort];
        Ok(Self {
            // An IPv6 literal is bracketed in URLs, not in socket addresses.
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority: HeaderValue::from_str(authority).map_err(|_| invalid("invalid host"))?,
            idle: Mutex::new(Vec::new()),
            connect_timeout,
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
            let target = Uri::try_from(&url[url::Position::BeforePath..url::Position::AfterQuery])
                .map_err(|e| Error::caused(ErrorKind::Config, format_args!("URL {url}"), &e))?;
            let mut retry = 0;
            loop {
                Counters::add(&counters.requests, 1);
                let error = match self.attempt(&target, url, headers).await {
                    Ok(answer) => return Ok(answer),
                    Err(Failure::Answer(error)) => return Err(error),
                    Err(Failure::Connection(error)) if retry < self.retries => error,
                    Err(Failure::Connection(error)) => return Err(error),
                };
                tracing::debug!(%error, retry, "retrying the Telepresence API");
                Counters::add(&counters.retries, 1);
                let wait = self.backoff.saturating_mul(1 << retry.min(10));
                tokio::time::sleep(wait.min(MAX_RETRY_BACKOFF)).await;
                retry += 1;
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

    /// One attempt: on an idle connection if there is one, else on a new
    /// one. A reused connection the server has closed meanwhile (idle
    /// timeouts, restarts) fails before sending anything: the query goes
    /// once more on a new connection, which is not a retry.
    async fn attempt(
        &self,
        target: &Uri,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<(u16, Bytes), Failure> {
        if let Some(conn) = self.checkout() {
            let (answer, conn) = conn.exchange(self.request(target, headers), url).await;
            self.checkin(conn);
            match answer {
                Err(Failure::Connection(error)) => {
                    tracing::debug!(%error, "a kept-alive connection failed; connecting anew");
                }
                answer => return answer,
            }
        }
        let conn = self.connect(url).await?;
        let (answer, conn) = conn.exchange(self.request(target, headers), url).await;
        self.checkin(conn);
        answer
    }

    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(Idle { conn, since }) = idle.pop() {
            if since.elapsed() < IDLE_TIMEOUT {
                return Some(conn);
            }
            // The most recent is too old: so are the others.
            idle.clear();
        }
        None
    }

    fn checkin(&self, conn: Option<Conn>) {
        let Some(conn) = conn else {
            return;
        };
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// The request for `target` (a path and query) with `headers`.
    fn request(&self, target: &Uri, headers: &HeaderMap) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = target.clone();
        let all = request.headers_mut();
        all.reserve(headers.len() + 1);
        all.insert(HOST, self.authority.clone());
        for (name, value) in headers {
            all.append(name, value.clone());
        }
        request
    }

    async fn connect(&self, url: &Url) -> Result<Conn, Failure> {
        let connecting = async {
            let stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
            stream.set_nodelay(true)?;
            Ok::<_, std::io::Error>(stream)
        };
        let stream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(Failure::Connection(unreachable(url, &error))),
            Err(_) => {
                return Err(Failure::Connection(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "cannot reach the Telepresence API at {url}: no connection within {:?}",
                        self.connect_timeout
                    ),
                )));
            }
        };
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|error| Failure::Connection(unreachable(url, &error)))?;
        Ok(Conn { sender, connection })
    }
}

impl Conn {
    /// Sends `request` and reads its answer whole, polling the connection
    /// meanwhile; gives the connection back when it can take another query.
    async fn exchange(
        self,
        request: Request<Empty<Bytes>>,
        url: &Url,
    ) -> (Result<(u16, Bytes), Failure>, Option<Conn>) {
        let Conn {
            mut sender,
            connection,
        } = self;
        let mut connection = Some(connection);
        let answer = {
            let query = ask(&mut sender, request, url);
            tokio::pin!(query);
            let first = tokio::select! {
                biased;
                answer = &mut query => Ok(answer),
                ended = poll_fn(|cx| match connection.as_mut() {
                    Some(connection) => connection.poll_without_shutdown(cx),
                    None => std::task::Poll::Pending,
                }) => Err(ended),
            };
            match first {
                Ok(answer) => answer,
                Err(ended) => {
                    // The server closed the connection: after its answer
                    // (`Connection: close`), which the query reads now that
                    // nothing more can come, or before it.
                    connection = None;
                    query.await.map_err(|failure| match ended {
                        Err(error) => Failure::Connection(unreachable(url, &error)),
                        Ok(()) => failure,
                    })
                }
            }
        };
        let reusable = answer.is_ok() && !sender.is_closed();
        let conn = connection
            .filter(|_| reusable)
            .map(|connection| Conn { sender, connection });
        (answer, conn)
    }
}

/// Sends `request` on `sender` and reads the answer, up to
/// [`MAX_ANSWER_BYTES`].
async fn ask(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
    url: &Url,
) -> Result<(u16, Bytes), Failure> {
    sender
        .ready()
        .await
        .map_err(|e| Failure::Connection(unreachable(url, &e)))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| Failure::Connection(unreachable(url, &e)))?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|error| {
            Failure::Answer(if error.is::<LengthLimitError>() {
                Error::new(
                    ErrorKind::BadAnswer,
                    format!(
                        "the Telepresence API at {url} answered more than {MAX_ANSWER_BYTES} bytes; \
                         its answers are a few bytes"
                    ),
                )
            } else {
                Error::caused(
                    ErrorKind::Connect,
                    format_args!("cannot read the answer of the Telepresence API at {url}"),
                    error.as_ref(),
                )
            })
        })?;
    Ok((status, body.to_bytes()))
}

/// The message names the URL, then the causes of `error`.
fn unreachable(url: &Url, error: &(dyn std::error::Error + 'static)) -> Error {
    Error::caused(
        ErrorKind::Connect,
        format_args!("cannot reach the Telepresence API at {url}"),
        error,
    )
}
