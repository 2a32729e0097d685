//! The future of one decision.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::Error;

/// The future of [`Client::should_consume`](crate::Client::should_consume):
/// ready at once when no query is needed, a query in flight otherwise.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
/// use telepresence_kafka::{Client, HeaderList};
///
/// // A disabled client answers on the first poll, without a runtime.
/// let tp = Client::disabled();
/// let decision = pin!(tp.should_consume(&HeaderList::default()));
/// let poll = decision.poll(&mut Context::from_waker(Waker::noop()));
/// assert!(matches!(poll, Poll::Ready(Ok(true))));
/// ```
#[must_use = "a decision does nothing unless awaited"]
pub struct ShouldConsume<'a> {
    state: State<'a>,
}

enum State<'a> {
    Ready(Option<bool>),
    /// Boxed, so that the ready case stays a few bytes to create and move.
    Asking(Pin<Box<dyn Future<Output = Result<bool, Error>> + Send + 'a>>),
}

impl<'a> ShouldConsume<'a> {
    /// An answer known without asking.
    pub(super) fn ready(answer: bool) -> Self {
        Self {
            state: State::Ready(Some(answer)),
        }
    }

    /// A query to run.
    pub(super) fn asking(query: impl Future<Output = Result<bool, Error>> + Send + 'a) -> Self {
        Self {
            state: State::Asking(Box::pin(query)),
        }
    }
}

impl Future for ShouldConsume<'_> {
    type Output = Result<bool, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(answer) => Poll::Ready(Ok(answer
                .take()
                .expect("a decision is polled once it is ready"))),
            State::Asking(query) => query.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for ShouldConsume<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            State::Ready(answer) => f.debug_tuple("ShouldConsume::Ready").field(answer).finish(),
            State::Asking(_) => f.write_str("ShouldConsume::Asking"),
        }
    }
}
