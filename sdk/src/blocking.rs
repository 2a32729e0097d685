//! A blocking client, for `BaseConsumer` loops and other synchronous code.
//!
//! It runs the async [`Client`](crate::Client) on a small runtime of its own,
//! like `reqwest::blocking`. Do not call it from inside an async runtime.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::{Error, ErrorKind, InterceptInfo, KafkaMessage, Stats};

/// The blocking twin of [`crate::Client`]: same configuration, same answers.
///
/// ```
/// let tp = telepresence_kafka::blocking::Client::from_env()?;
/// let message = telepresence_kafka::HeaderList::new(&[("x-dev", Some(b"alice"))]);
/// if tp.should_consume(&message)? {
///     // process it
/// }
/// # Ok::<(), telepresence_kafka::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl Client {
    /// A client configured from the environment; see [`crate::Client::from_env`].
    pub fn from_env() -> Result<Self, Error> {
        crate::ClientBuilder::from_env()?.build_blocking()
    }

    pub(crate) fn new(inner: crate::Client) -> Result<Self, Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::caused(
                    ErrorKind::Config,
                    "cannot start the blocking client's runtime",
                    &e,
                )
            })?;
        Ok(Self {
            inner,
            runtime: Arc::new(runtime),
        })
    }

    /// Runs a future to completion. Answers known without I/O (a disabled
    /// client, a cache hit) come back from the first poll, without blocking.
    fn run<F: Future>(&self, future: F) -> F::Output {
        let _context = self.runtime.enter();
        let mut future = pin!(future);
        if let Poll::Ready(output) = future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            return output;
        }
        self.runtime.block_on(future)
    }

    /// Whether this side should process `msg`; see [`crate::Client::should_consume`].
    pub fn should_consume<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Result<bool, Error> {
        self.run(self.inner.should_consume(msg))
    }

    /// The routing context of `msg`, to put on what its handling produces;
    /// see [`crate::Client::routing_headers`].
    pub fn routing_headers<'m, M: KafkaMessage + ?Sized>(
        &self,
        msg: &'m M,
    ) -> crate::RoutingHeaders<'m> {
        self.inner.routing_headers(msg)
    }

    /// What `/intercept-info` says about `msg`; see [`crate::Client::intercept_info`].
    pub fn intercept_info<M: KafkaMessage + ?Sized>(
        &self,
        msg: &M,
    ) -> Result<InterceptInfo, Error> {
        self.run(self.inner.intercept_info(msg))
    }

    /// Checks `/healthz`.
    pub fn healthz(&self) -> Result<(), Error> {
        self.run(self.inner.healthz())
    }

    /// Checks that the API serves this side; see [`crate::Client::check_side`].
    pub fn check_side(&self) -> Result<(), Error> {
        self.run(self.inner.check_side())
    }

    /// Checks that a workstation's consumer reads in its own group; see
    /// [`crate::Client::check_group`].
    #[cfg(feature = "rdkafka")]
    pub fn check_group(&self, consumer: &dyn crate::stream::ManagedConsumer) -> Result<(), Error> {
        self.inner.check_group(consumer)
    }

    /// See [`crate::Client::group_id`].
    pub fn group_id(&self, base: &str) -> String {
        self.inner.group_id(base)
    }

    /// See [`crate::Client::is_enabled`].
    pub fn is_enabled(&self) -> bool {
        self.inner.is_enabled()
    }

    /// See [`crate::Client::intercept_id`].
    pub fn intercept_id(&self) -> &str {
        self.inner.intercept_id()
    }

    /// See [`crate::Client::stats`].
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The async client underneath (sharing connections and counters).
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }
}
