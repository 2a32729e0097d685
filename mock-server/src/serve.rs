//! The accept loop: HTTP/1.1 connections served by the router, closed on
//! demand by the `close` fault, and drained on shutdown.
//!
//! `axum::serve` cannot drop a single connection from inside a handler, which
//! the `close` fault needs, so connections are driven here with hyper.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::limits::{Limits, MIN_HEADER_BYTES};
use crate::router::Routes;

/// How long shutdown waits for requests in flight before it gives up on them.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Put in every request's extensions: which connection it came on, and a
/// way to drop that connection.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    /// Numbers connections from 1 in the order they were accepted.
    pub(crate) id: u64,
    kill: Arc<Notify>,
}

impl Connection {
    pub(crate) fn close(&self) {
        self.kill.notify_one();
    }
}

/// Serves `routes` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish (up to [`SHUTDOWN_GRACE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    routes: Routes,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send,
) {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    let mut accepted: u64 = 0;
    http.timer(TokioTimer::new())
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .header_read_timeout(limits.read_timeout)
        // A client may shut down its write side once its request is sent
        // (scripts, some proxies); Go's server still answers it, so must we.
        .half_close(true);
    http.max_headers(limits.max_headers.max(1));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        // At the cap, new connections wait in the listen backlog.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let kill = Arc::new(Notify::new());
        accepted += 1;
        let connection = Connection {
            id: accepted,
            kill: kill.clone(),
        };
        let routes = routes.clone();
        let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let answer = routes.clone().call(request, connection.clone());
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                () = kill.notified() => tracing::debug!("connection closed by a fault"),
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("every connection finished"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("requests still in flight after {SHUTDOWN_GRACE:?}; stopping anyway");
        }
    }
}
