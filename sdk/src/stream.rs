//! Filtering a consumer's message stream, with offsets that never lose a message.
//!
//! [`Client::filter_stream`] wraps a consumer's stream: it asks the API about
//! up to N messages at once, yields only the messages this side must process,
//! in their original order, and stores offsets (`enable.auto.offset.store`
//! must be `false`) so that a commit moves past skipped messages but never
//! past a message that was handed out and not yet [`done`](Filtered::done).
//!
//! Per partition it keeps the offsets handed out and not yet done, and the
//! highest offset finished (skipped or done). The offset it stores is the
//! lowest one still pending, or the highest finished plus one when none is:
//! everything below it was processed or deliberately skipped.
//!
//! While the API fails and decisions are *held* (the default on a
//! workstation, see [`FailurePolicy`](crate::FailurePolicy)), it pauses the
//! partitions of the held messages and keeps polling the consumer, so that
//! the consumer stays in its group however long the outage lasts.
//!
//! Created with a [`FilterContext`] (or a context of your own that reports to
//! a [`Rebalances`]), it also hears of rebalances: it commits what is stored
//! before partitions are revoked and drops the messages of revoked partitions
//! it has not handed out yet, so that their new owner is the only one to
//! process them.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::stream::{BoxStream, Stream, StreamExt};
use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, ConsumerGroupMetadata,
    DefaultConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{Producer, ProducerContext};
use rdkafka::{Offset, TopicPartitionList};

use crate::{Client, Error, ShouldConsume};

/// How many decisions the stream adapter runs at once unless told otherwise.
pub const DEFAULT_CONCURRENCY: usize = 32;

/// What the stream adapter needs of a consumer: storing and committing
/// offsets, pausing partitions, and hearing of rebalances. rdkafka's
/// consumers implement it.
pub trait ManagedConsumer: Send + Sync {
    /// Stores these offsets (each the next offset to read) for the next commit.
    fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()>;

    /// Commits the stored offsets now.
    fn commit_stored(&self, mode: CommitMode) -> KafkaResult<()>;

    /// Stops fetching from these partitions (their decisions are held).
    fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        let _ = partitions;
        Ok(())
    }

    /// Fetches from these partitions again.
    fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
        let _ = partitions;
        Ok(())
    }

    /// Where revocations are reported, if anywhere.
    fn rebalances(&self) -> Option<&Rebalances> {
        None
    }

    /// The consumer's `group.id`, when it can tell.
    fn group_id(&self) -> Option<String> {
        None
    }

    /// The consumer's group metadata, which a transactional producer needs
    /// to commit offsets; `None` when it has none.
    fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        None
    }

    /// Moves the consumer back to its group's committed offsets, on every
    /// partition assigned to it (one with none to where `auto.offset.reset`
    /// says), so that it reads again what an aborted transaction covered.
    fn rewind(&self, timeout: Duration) -> KafkaResult<()> {
        let _ = timeout;
        Err(KafkaError::Seek(
            "this consumer cannot rewind to its committed offsets".to_owned(),
        ))
    }
}

/// Seeks every partition assigned to `consumer` to its committed offset.
fn rewind_to_committed<X, C>(consumer: &C, timeout: Duration) -> KafkaResult<()>
where
    X: ConsumerContext,
    C: Consumer<X>,
{
    let assignment = consumer.assignment()?;
    if assignment.count() == 0 {
        return Ok(());
    }
    let committed = consumer.committed_offsets(assignment, timeout)?;
    let reset = configured(consumer.client(), c"auto.offset.reset");
    let mut seek = TopicPartitionList::with_capacity(committed.count());
    for element in committed.elements() {
        let offset = match (element.offset(), reset.as_deref()) {
            (Offset::Offset(offset), _) => Offset::Offset(offset),
            (_, Some("smallest" | "earliest" | "beginning")) => Offset::Beginning,
            (_, Some("largest" | "latest" | "end")) => Offset::End,
            (_, reset) => {
                return Err(KafkaError::Seek(format!(
                    "{} [{}] has no committed offset to rewind to, and auto.offset.reset is {}",
                    element.topic(),
                    element.partition(),
                    reset.unwrap_or("unknown"),
                )));
            }
        };
        seek.add_partition_offset(element.topic(), element.partition(), offset)?;
    }
    for element in consumer.seek_partitions(seek, timeout)?.elements() {
        element.error()?;
    }
    Ok(())
}

/// A client's `group.id`, as librdkafka holds it.
fn configured_group_id<C: ClientContext>(client: &rdkafka::client::Client<C>) -> Option<String> {
    configured(client, c"group.id")
}

/// A setting of a client's configuration, as librdkafka holds it (its
/// default when not set).
fn configured<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    name: &std::ffi::CStr,
) -> Option<String> {
    use rdkafka::bindings as rdsys;
    let mut size: usize = 0;
    // SAFETY: `rd_kafka_conf` gives the client's own configuration, valid as
    // long as the client is; `rd_kafka_conf_get` writes at most `size` bytes
    // (the first call, with no buffer, only asks for the size).
    unsafe {
        let conf = rdsys::rd_kafka_conf(client.native_ptr());
        if conf.is_null() {
            return None;
        }
        let ok = rdsys::rd_kafka_conf_res_t::RD_KAFKA_CONF_OK;
        if rdsys::rd_kafka_conf_get(conf, name.as_ptr(), std::ptr::null_mut(), &mut size) != ok {
            return None;
        }
        let mut buffer = vec![0u8; size];
        if rdsys::rd_kafka_conf_get(conf, name.as_ptr(), buffer.as_mut_ptr().cast(), &mut size)
            != ok
        {
            return None;
        }
        let text = std::ffi::CStr::from_bytes_until_nul(&buffer).ok()?;
        text.to_str().ok().map(str::to_owned)
    }
}

/// A consumer context that may report rebalances to the stream adapter:
/// [`FilterContext`] does; rdkafka's [`DefaultConsumerContext`] does not. A
/// context of your own implements it, returning `None`, or a [`Rebalances`]
/// that its `pre_rebalance` tells of revocations.
pub trait RebalanceAware {
    /// Where this context reports revocations.
    fn rebalances(&self) -> Option<&Rebalances> {
        None
    }
}

impl RebalanceAware for DefaultConsumerContext {}

/// Revocations, as a consumer context reports them to the stream adapter.
/// Cheap to clone; clones share the log.
#[derive(Clone, Debug, Default)]
pub struct Rebalances {
    log: Arc<RebalanceLog>,
}

#[derive(Debug, Default)]
struct RebalanceLog {
    /// Bumped on every revocation, read without a lock on every poll.
    revocations: AtomicU64,
    revoked: Mutex<Vec<(String, i32)>>,
}

impl Rebalances {
    /// Reports partitions about to be revoked; call it from
    /// [`ConsumerContext::pre_rebalance`] on [`Rebalance::Revoke`].
    pub fn revoking(&self, partitions: &TopicPartitionList) {
        let mut revoked = self.log.revoked.lock();
        revoked.extend(
            partitions
                .elements()
                .iter()
                .map(|p| (p.topic().to_owned(), p.partition())),
        );
        self.log.revocations.fetch_add(1, Ordering::Release);
    }

    /// How many revocations were reported so far.
    pub fn count(&self) -> u64 {
        self.log.revocations.load(Ordering::Acquire)
    }

    /// The partitions revoked since the last call, if `seen` is behind.
    fn take_revoked(&self, seen: &mut u64) -> Vec<(String, i32)> {
        let now = self.count();
        if now == *seen {
            return Vec::new();
        }
        *seen = now;
        std::mem::take(&mut *self.log.revoked.lock())
    }
}

/// A consumer context for the stream adapter: it tells the adapter which
/// partitions are revoked, so that it hands out none of their messages
/// afterwards, and sees that the offsets the adapter stored are committed
/// before the partitions go (librdkafka does it with `enable.auto.commit`,
/// the default; without it, the context commits, except on close).
///
/// ```no_run
/// use rdkafka::ClientConfig;
/// use rdkafka::consumer::StreamConsumer;
/// use telepresence_kafka::stream::FilterContext;
///
/// # fn build() -> rdkafka::error::KafkaResult<()> {
/// let consumer: StreamConsumer<FilterContext> = ClientConfig::new()
///     .set("bootstrap.servers", "localhost:9092")
///     .set("group.id", "orders")
///     .set("enable.auto.offset.store", "false")
///     .create_with_context(FilterContext::default())?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct FilterContext {
    rebalances: Rebalances,
}

impl FilterContext {
    /// The revocations it reports.
    pub fn rebalances(&self) -> &Rebalances {
        &self.rebalances
    }
}

impl ClientContext for FilterContext {}

impl ConsumerContext for FilterContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        self.rebalances.revoking(partitions);
        // With auto commit (the default), librdkafka commits the offsets
        // stored for the revoked partitions itself, as part of the
        // unassignment and before the group moves on: nothing to do here. A
        // commit of ours would race it: a synchronous one can wait forever
        // when the rebalance is the consumer's own close, and librdkafka
        // aborts the process (`!rd_kafka_assignment_in_progress`) when a
        // close ends with an asynchronous one in flight.
        if configured(consumer.client(), c"enable.auto.commit").as_deref() != Some("false") {
            return;
        }
        // Without auto commit the application commits; what it stored is
        // committed while the partitions are still ours, so that their next
        // owner starts after it. Not on close: the application's own close
        // path commits, and a commit here could wait forever.
        if consumer.closed() {
            return;
        }
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => tracing::warn!(%error, "cannot commit before a rebalance"),
        }
    }
}

impl RebalanceAware for FilterContext {
    fn rebalances(&self) -> Option<&Rebalances> {
        Some(&self.rebalances)
    }
}

/// rdkafka's two consumers store, commit, pause and report rebalances alike.
macro_rules! impl_managed_consumer {
    ($consumer:ty, [$($generic:ident),+]) => {
        impl<$($generic),+> ManagedConsumer for $consumer
        where
            C: ConsumerContext + RebalanceAware + 'static,
            Self: Send + Sync,
        {
            fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
                Consumer::store_offsets(self, offsets)
            }

            fn commit_stored(&self, mode: CommitMode) -> KafkaResult<()> {
                Consumer::commit_consumer_state(self, mode)
            }

            fn pause(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
                Consumer::pause(self, partitions)
            }

            fn resume(&self, partitions: &TopicPartitionList) -> KafkaResult<()> {
                Consumer::resume(self, partitions)
            }

            fn rebalances(&self) -> Option<&Rebalances> {
                self.context().rebalances()
            }

            fn group_id(&self) -> Option<String> {
                configured_group_id(self.client())
            }

            fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
                Consumer::group_metadata(self)
            }

            fn rewind(&self, timeout: Duration) -> KafkaResult<()> {
                rewind_to_committed(self, timeout)
            }
        }
    };
}

impl_managed_consumer!(StreamConsumer<C, R>, [C, R]);
impl_managed_consumer!(BaseConsumer<C>, [C]);

impl Client {
    /// Checks that a workstation's consumer reads in the workstation's own
    /// group (one [`group_id`](Client::group_id) made): in the pod's group,
    /// Kafka would split the partitions between pod and workstation, and the
    /// workstation would skip, for good, the pod's messages on its partitions.
    /// The stream adapter checks it before its first message; a plain loop can
    /// call it once before it starts. Nothing to check in the cluster, on a
    /// disabled client, with
    /// [`allow_shared_group`](crate::ClientBuilder::allow_shared_group), or
    /// when the consumer does not tell its group.
    pub fn check_group(&self, consumer: &dyn ManagedConsumer) -> Result<(), Error> {
        if !self.is_workstation() || !self.is_enabled() || self.allows_shared_group() {
            return Ok(());
        }
        let Some(group) = consumer.group_id() else {
            return Ok(());
        };
        if self.is_own_group(&group) {
            return Ok(());
        }
        Err(Error::config(format!(
            "this workstation's consumer reads in group {group:?}, which is not its own: \
             in the pod's group Kafka would split the partitions between pod and workstation, \
             and the workstation would skip the pod's messages on its partitions for good. \
             Use group.id = client.group_id({group:?}) (here {:?}), or allow_shared_group(true) \
             if no other consumer is in that group",
            self.group_id(&group)
        )))
    }

    /// Filters a [`StreamConsumer`]'s messages: see [`Filtered`].
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
    ///
    /// # async fn run(consumer: StreamConsumer) -> Result<(), telepresence_kafka::Error> {
    /// // consumer created with enable.auto.offset.store=false
    /// let tp = telepresence_kafka::Client::from_env()?;
    /// let mut messages = tp.filter_stream(&consumer, 32);
    /// while let Some(message) = messages.next().await {
    ///     let message = message?;
    ///     // ... process it ...
    ///     messages.done(&message)?;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn filter_stream<'a, C, R>(
        &'a self,
        consumer: &'a StreamConsumer<C, R>,
        concurrency: usize,
    ) -> Filtered<'a, BorrowedMessage<'a>>
    where
        C: ConsumerContext + RebalanceAware + 'static,
        R: rdkafka::util::AsyncRuntime,
        StreamConsumer<C, R>: Send + Sync,
    {
        self.filter_messages(consumer, consumer.stream(), concurrency)
    }

    /// Filters any stream of messages, storing offsets through `consumer`
    /// (normally the consumer the messages come from).
    pub fn filter_messages<'a, S, M>(
        &'a self,
        consumer: &'a dyn ManagedConsumer,
        messages: S,
        concurrency: usize,
    ) -> Filtered<'a, M>
    where
        S: Stream<Item = KafkaResult<M>> + Send + 'a,
        M: Message + Send + 'a,
    {
        Filtered {
            client: self,
            messages: messages.boxed(),
            source_ended: false,
            in_flight: VecDeque::with_capacity(concurrency.max(1)),
            deciding: 0,
            depth: concurrency.max(1),
            offsets: Offsets {
                store: consumer,
                tracker: Arc::default(),
            },
            paused: HashSet::new(),
            revocations_seen: consumer.rebalances().map_or(0, Rebalances::count),
            group: GroupCheck::Pending,
            progress: Progress::default(),
        }
    }
}

// Nothing in it is pinned in place: messages and decisions move freely.
impl<M> Unpin for Filtered<'_, M> {}

/// A message received, with its decision pending or made.
enum InFlight<'a, M> {
    Deciding(M, ShouldConsume<'a>),
    Decided(M, Result<bool, Error>),
    Kafka(KafkaError),
}

impl<M: Message> InFlight<'_, M> {
    fn message(&self) -> Option<&M> {
        match self {
            Self::Deciding(message, _) | Self::Decided(message, _) => Some(message),
            Self::Kafka(_) => None,
        }
    }
}

/// A consumer's messages, only those this side must process, in order.
///
/// Yields `Ok(message)` for each message to process, and `Err` for a Kafka
/// error or a decision that failed under [`FailurePolicy::Fail`](crate::FailurePolicy::Fail).
/// A failed message is never handed out and its partition's stored offset
/// stays below it, so a commit cannot move past it.
///
/// Call [`done`](Self::done) (or [`Offsets::done`]) once a message is
/// processed: that stores its offset, and the offsets of the skipped messages
/// after it.
pub struct Filtered<'a, M> {
    client: &'a Client,
    messages: BoxStream<'a, KafkaResult<M>>,
    source_ended: bool,
    /// Received messages in their order, up to `depth` of them; each
    /// decision is polled in place and the front is let out once decided.
    /// (A general-purpose ordered-futures queue would allocate a task per
    /// message; here an answer known at once costs nothing extra.)
    in_flight: VecDeque<InFlight<'a, M>>,
    /// How many of them wait for their decision: none, mostly, with the
    /// cache, and then the queue is not walked for each message.
    deciding: usize,
    depth: usize,
    offsets: Offsets<'a>,
    /// Partitions paused while their decisions are held.
    paused: HashSet<(String, i32)>,
    /// The consumer's revocation count last acted on.
    revocations_seen: u64,
    /// Whether the consumer's group was checked, and refused.
    group: GroupCheck,
    progress: Progress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum GroupCheck {
    Pending,
    Passed,
    Refused,
}

/// How many messages a [`Filtered`] stream has let through so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Messages handed out to be processed here.
    pub handed_out: u64,
    /// Messages skipped (left to the other side), offsets stored.
    pub skipped: u64,
    /// Messages whose decision failed, yielded as errors.
    pub failed: u64,
    /// Messages received but dropped before a decision let them out, because
    /// their partition was revoked (their new owner processes them).
    pub revoked: u64,
}

impl Progress {
    /// Every message the stream has handed out, skipped or failed.
    pub fn total(&self) -> u64 {
        self.handed_out + self.skipped + self.failed
    }
}

impl<'a, M: Message> Filtered<'a, M> {
    /// Marks a message handed out by this stream as processed, and stores
    /// the offset up to which everything is processed or skipped.
    pub fn done(&self, message: &M) -> Result<(), Error> {
        self.offsets.done(message)
    }

    /// A handle to mark messages done from elsewhere (concurrent processing).
    pub fn offsets(&self) -> Offsets<'a> {
        self.offsets.clone()
    }

    /// Commits what is stored: every message done or skipped, up to the first
    /// one still pending in each partition. Nothing new to commit is not an
    /// error. Call it on shutdown, after the last [`done`](Self::done).
    pub fn commit(&self, mode: CommitMode) -> Result<(), Error> {
        match self.offsets.store.commit_stored(mode) {
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
            other => Ok(other?),
        }
    }

    /// Hands offsets to a transaction instead of storing them in the
    /// consumer, for read-process-write with exactly-once semantics: what
    /// becomes safe (messages done, and those skipped) waits for
    /// [`send_offsets_to_transaction`](Self::send_offsets_to_transaction),
    /// so that a skipped message is committed in the same transaction as the
    /// output of the processed ones. Nothing is stored in the consumer.
    ///
    /// The consumer needs `enable.auto.commit=false`, and its reader of the
    /// output `isolation.level=read_committed`. One transaction at a time:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use futures_util::StreamExt;
    /// use rdkafka::consumer::StreamConsumer;
    /// use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    /// use telepresence_kafka::WithRouting;
    ///
    /// # async fn run(tp: telepresence_kafka::Client, consumer: StreamConsumer, producer: FutureProducer)
    /// # -> Result<(), Box<dyn std::error::Error>> {
    /// // producer created with transactional.id, and init_transactions() called
    /// let timeout = Duration::from_secs(10);
    /// let mut orders = tp.filter_stream(&consumer, 32).transactional();
    /// loop {
    ///     producer.begin_transaction()?;
    ///     for _ in 0..100 {
    ///         let Some(order) = orders.next().await else { break };
    ///         let order = order?;
    ///         let invoice = FutureRecord::<(), _>::to("invoices")
    ///             .payload("...")
    ///             .with_routing(&tp.routing_headers(&order));
    ///         producer.send_result(invoice).map_err(|(e, _)| e)?;
    ///         orders.done(&order)?; // after its output is produced
    ///     }
    ///     orders.send_offsets_to_transaction(&producer, timeout)?;
    ///     if let Err(error) = producer.commit_transaction(timeout) {
    ///         eprintln!("transaction aborted: {error}");
    ///         producer.abort_transaction(timeout)?;
    ///         orders.rewind(timeout)?; // read it all again
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// Mark a message [`done`](Self::done) once its output is produced, and
    /// before the offsets are sent: its offset then travels with its output.
    pub fn transactional(self) -> Self {
        self.offsets.tracker.lock().transaction = Some(HashMap::new());
        self
    }

    /// The offsets waiting for the next transaction (each the next offset to
    /// read of its partition); always empty unless
    /// [`transactional`](Self::transactional).
    pub fn transaction_offsets(&self) -> TopicPartitionList {
        let tracker = self.offsets.tracker.lock();
        let mut list = TopicPartitionList::new();
        for (topic, partitions) in tracker.transaction.iter().flatten() {
            for (&partition, &next) in partitions {
                // Only fails for an invalid partition number, which a
                // received message cannot have.
                let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
            }
        }
        list
    }

    /// Sends the offsets waiting (see
    /// [`transaction_offsets`](Self::transaction_offsets)) to the producer's
    /// current transaction, with the consumer's group metadata; they are
    /// committed with it. If they cannot be sent, they wait for the next
    /// call. Nothing waiting is not an error.
    pub fn send_offsets_to_transaction<C, Part>(
        &self,
        producer: &impl Producer<C, Part>,
        timeout: Duration,
    ) -> Result<(), Error>
    where
        C: ProducerContext<Part>,
        Part: rdkafka::producer::Partitioner,
    {
        if !self.offsets.tracker.lock().is_transactional() {
            return Err(Error::config(
                "send_offsets_to_transaction needs a transactional stream: call transactional() \
                 on it before the first message",
            ));
        }
        let offsets = self.transaction_offsets();
        if offsets.count() == 0 {
            return Ok(());
        }
        let metadata = self.offsets.store.group_metadata().ok_or_else(|| {
            Error::config(
                "the consumer has no group metadata: a transaction commits offsets for a group, \
                 so the consumer needs a group.id",
            )
        })?;
        producer.send_offsets_to_transaction(&offsets, &metadata, timeout)?;
        self.offsets.tracker.lock().sent(&offsets);
        Ok(())
    }

    /// After an aborted transaction: moves the consumer back to its
    /// committed offsets and forgets every message received since, handed
    /// out or not, so that what the transaction covered is decided and
    /// processed again. [`progress`](Self::progress) counts each delivery.
    pub fn rewind(&mut self, timeout: Duration) -> Result<(), Error> {
        self.offsets.store.rewind(timeout)?;
        self.in_flight.clear();
        self.deciding = 0;
        self.offsets.tracker.lock().start_over();
        Ok(())
    }

    /// How many messages went through so far. Unlike the client's
    /// [`stats`](Client::stats), which count decisions as they complete, this
    /// counts messages as the stream lets them out, in order.
    pub fn progress(&self) -> Progress {
        self.progress
    }
}

impl<M: Message> Stream for Filtered<'_, M> {
    type Item = Result<M, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.group {
            GroupCheck::Passed => {}
            GroupCheck::Refused => return Poll::Ready(None),
            GroupCheck::Pending => {
                // Before any message: nothing skipped, nothing stored.
                if let Err(error) = this.client.check_group(this.offsets.store) {
                    this.group = GroupCheck::Refused;
                    return Poll::Ready(Some(Err(error)));
                }
                this.group = GroupCheck::Passed;
            }
        }
        let next = this.poll_decided(cx);
        // Skips in a row are stored once, before control goes back to the
        // caller: a commit after this call sees all of them, but for those
        // before a message still pending, which its `done` stores.
        this.offsets.store_skipped();
        next
    }
}

impl<'a, M: Message> Filtered<'a, M> {
    /// Receives messages up to the depth, starting their decisions. While
    /// partitions are paused for held decisions it goes on polling, so that
    /// the consumer stays in its group.
    fn fill(&mut self, cx: &mut Context<'_>) {
        while !self.source_ended && (self.in_flight.len() < self.depth || !self.paused.is_empty()) {
            match self.messages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(message))) => {
                    if self.in_flight.len() >= self.depth {
                        // Beyond the depth only while paused: no more of this
                        // partition until the API answers.
                        self.pause([(message.topic(), message.partition())]);
                    }
                    let mut decision = self.client.should_consume(&message);
                    // Ready at once for a disabled client or a cache hit.
                    let entry = match Pin::new(&mut decision).poll(cx) {
                        Poll::Ready(answer) => InFlight::Decided(message, answer),
                        Poll::Pending => {
                            self.deciding += 1;
                            InFlight::Deciding(message, decision)
                        }
                    };
                    self.in_flight.push_back(entry);
                }
                Poll::Ready(Some(Err(error))) => self.in_flight.push_back(InFlight::Kafka(error)),
                Poll::Ready(None) => self.source_ended = true,
                Poll::Pending => break,
            }
        }
    }

    /// Polls every pending decision; all share this task's waker.
    fn advance_decisions(&mut self, cx: &mut Context<'_>) {
        if self.deciding == 0 {
            return;
        }
        for entry in &mut self.in_flight {
            let InFlight::Deciding(_, decision) = entry else {
                continue;
            };
            if let Poll::Ready(answer) = Pin::new(decision).poll(cx) {
                let placeholder = InFlight::Kafka(KafkaError::Canceled);
                if let InFlight::Deciding(message, _) = std::mem::replace(entry, placeholder) {
                    *entry = InFlight::Decided(message, answer);
                    self.deciding -= 1;
                }
            }
        }
    }

    /// Drops the messages of partitions revoked since last time: nothing of
    /// theirs was handed out or stored past them, and their new owner gets them.
    fn forget_revoked(&mut self) {
        let Some(rebalances) = self.offsets.store.rebalances() else {
            return;
        };
        let revoked = rebalances.take_revoked(&mut self.revocations_seen);
        if revoked.is_empty() {
            return;
        }
        let is_revoked = |topic: &str, partition: i32| {
            revoked.iter().any(|(t, p)| t == topic && *p == partition)
        };
        let before = self.in_flight.len();
        self.in_flight.retain(|entry| {
            entry
                .message()
                .is_none_or(|m| !is_revoked(m.topic(), m.partition()))
        });
        let dropped = before - self.in_flight.len();
        self.deciding = self
            .in_flight
            .iter()
            .filter(|entry| matches!(entry, InFlight::Deciding(..)))
            .count();
        self.progress.revoked += dropped as u64;
        self.paused.retain(|(t, p)| !is_revoked(t, *p));
        let mut tracker = self.offsets.tracker.lock();
        for (topic, partition) in &revoked {
            tracker.forget(topic, *partition);
        }
        tracing::debug!(
            partitions = revoked.len(),
            dropped,
            "partitions revoked; their undecided messages are left to their next owner"
        );
    }

    /// Pauses these partitions, those not paused yet.
    fn pause<'p>(&mut self, partitions: impl IntoIterator<Item = (&'p str, i32)>) {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            if self.paused.insert((topic.to_owned(), partition)) {
                list.add_partition(topic, partition);
            }
        }
        if list.count() == 0 {
            return;
        }
        tracing::debug!(
            partitions = list.count(),
            "pausing partitions while decisions are held"
        );
        if let Err(error) = self.offsets.store.pause(&list) {
            tracing::warn!(%error, "cannot pause partitions while decisions are held");
        }
    }

    /// Once the queue is full and decisions are held, pauses the partitions
    /// of the queued messages; resumes them once the API answers.
    fn pause_while_held(&mut self, holding: bool) {
        if holding && (self.in_flight.len() >= self.depth || !self.paused.is_empty()) {
            let queued: Vec<(String, i32)> = self
                .in_flight
                .iter()
                .filter_map(InFlight::message)
                .map(|m| (m.topic().to_owned(), m.partition()))
                .filter(|key| !self.paused.contains(key))
                .collect();
            self.pause(queued.iter().map(|(t, p)| (t.as_str(), *p)));
        } else if !self.paused.is_empty() {
            let mut list = TopicPartitionList::new();
            for (topic, partition) in self.paused.drain() {
                list.add_partition(&topic, partition);
            }
            tracing::debug!(
                partitions = list.count(),
                "resuming partitions: the API answers"
            );
            if let Err(error) = self.offsets.store.resume(&list) {
                // A partition revoked meanwhile cannot be resumed; its next
                // owner fetches it anyway.
                tracing::debug!(%error, "cannot resume every paused partition");
            }
        }
    }

    fn poll_decided(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<M, Error>>> {
        loop {
            self.fill(cx);
            self.forget_revoked();
            self.advance_decisions(cx);
            self.pause_while_held(self.client.holds_decisions());
            let (message, decision) = match self.in_flight.pop_front() {
                None if self.source_ended => return Poll::Ready(None),
                None => return Poll::Pending,
                Some(InFlight::Kafka(error)) => return Poll::Ready(Some(Err(error.into()))),
                Some(InFlight::Decided(message, decision)) => (message, decision),
                Some(deciding @ InFlight::Deciding(..)) => {
                    self.in_flight.push_front(deciding);
                    return Poll::Pending;
                }
            };
            let at = Position::of(&message);
            match decision {
                Ok(true) => {
                    self.offsets.tracker.lock().handed_out(&at);
                    self.progress.handed_out += 1;
                    return Poll::Ready(Some(Ok(message)));
                }
                Ok(false) => {
                    self.offsets.tracker.lock().skipped(&at);
                    self.progress.skipped += 1;
                }
                Err(error) => {
                    // Pending forever: no stored offset will pass it.
                    self.offsets.tracker.lock().handed_out(&at);
                    self.progress.failed += 1;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

/// Marks messages done and stores offsets; cheap to clone.
#[derive(Clone)]
pub struct Offsets<'a> {
    store: &'a dyn ManagedConsumer,
    tracker: Arc<Mutex<Tracker>>,
}

impl Offsets<'_> {
    /// Marks a handed-out message as processed and stores what became safe.
    /// A message that was not handed out by the stream is ignored.
    pub fn done<M: Message>(&self, message: &M) -> Result<(), Error> {
        let at = Position::of(message);
        let mut tracker = self.tracker.lock();
        let Some(next) = tracker.done(&at) else {
            return Ok(());
        };
        if tracker.is_transactional() {
            tracker.for_transaction(at.topic, at.partition, next);
            return Ok(());
        }
        let Some(partition) = tracker.partition(at.topic, at.partition) else {
            return Ok(());
        };
        Ok(partition.store(self.store, at.topic, at.partition, next)?)
    }

    /// Stores what skipped messages made safe since last time in the
    /// partitions where no message is pending.
    fn store_skipped(&self) {
        let mut tracker = self.tracker.lock();
        if !tracker.unstored {
            return;
        }
        tracker.unstored = false;
        let Tracker {
            topics,
            transaction,
            ..
        } = &mut *tracker;
        for (topic, partitions) in topics {
            for (&number, partition) in partitions.iter_mut() {
                // A message is pending after these skips: its `done` stores
                // past them, so one store serves both. A failed message
                // stays pending for good, and its partition's offset below
                // it either way.
                if transaction.is_none() && !partition.pending.is_empty() {
                    continue;
                }
                let Some(next) = partition.unstored.take() else {
                    continue;
                };
                match transaction {
                    Some(waiting) => wait_for_transaction(waiting, topic, number, next),
                    None => {
                        if let Err(error) = partition.store(self.store, topic, number, next) {
                            tracing::warn!(%error, topic, partition = number, "cannot store the offset of skipped messages");
                        }
                    }
                }
            }
        }
    }
}

/// Keeps `next` for one partition in a transaction's waiting offsets, unless
/// a later one is there.
fn wait_for_transaction(
    waiting: &mut HashMap<String, HashMap<i32, i64>>,
    topic: &str,
    partition: i32,
    next: i64,
) {
    if !waiting.contains_key(topic) {
        waiting.insert(topic.to_owned(), HashMap::new());
    }
    let partitions = waiting.get_mut(topic).expect("inserted above");
    let slot = partitions.entry(partition).or_insert(next);
    *slot = (*slot).max(next);
}

struct Position<'m> {
    topic: &'m str,
    partition: i32,
    offset: i64,
}

impl<'m> Position<'m> {
    fn of<M: Message>(message: &'m M) -> Self {
        Self {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
        }
    }
}

/// The tracker's maps are looked up for every message: a fast hasher, seeded
/// per process (topic names and partition numbers come from the broker).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Tracker {
    topics: FastMap<String, FastMap<i32, Partition>>,
    /// Whether some partition has an offset to store.
    unstored: bool,
    /// For a transactional stream: the offsets made safe and not yet sent
    /// to a transaction, by topic and partition.
    transaction: Option<HashMap<String, HashMap<i32, i64>>>,
}

#[derive(Debug, Default)]
struct Partition {
    /// Handed out, not yet done, in ascending order: a partition's messages
    /// are handed out in order (a lower offset means a rewind, which starts
    /// the partition over), and mostly done in order, so the front is what
    /// goes.
    pending: VecDeque<i64>,
    /// The highest offset skipped or done.
    finished: Option<i64>,
    /// The next offset last made safe.
    stored: Option<i64>,
    /// Made safe by skipped messages, not stored yet.
    unstored: Option<i64>,
    /// This partition as a list of one, kept for its stores: it is not
    /// allocated again for each, and librdkafka keeps in it the partition's
    /// state it found on the first, so later stores skip the lookup by name.
    list: Option<TopicPartitionList>,
}

impl Partition {
    /// Stores `next` (the next offset to read). A partition revoked
    /// meanwhile cannot take it, which is fine, not an error: its new owner
    /// starts from the last commit. A kept list that fails is tried once
    /// more anew, in case the partition librdkafka kept in it is not the one
    /// assigned now (a topic deleted and made again), and is dropped if that
    /// fails too.
    fn store(
        &mut self,
        store: &dyn ManagedConsumer,
        topic: &str,
        partition: i32,
        next: i64,
    ) -> KafkaResult<()> {
        let fresh = || {
            let mut list = TopicPartitionList::with_capacity(1);
            list.add_partition(topic, partition);
            list
        };
        let kept = self.list.is_some();
        let list = self.list.get_or_insert_with(fresh);
        list.set_all_offsets(Offset::Offset(next))?;
        let mut stored = store.store_offsets(list);
        if stored.is_err() && kept {
            *list = fresh();
            list.set_all_offsets(Offset::Offset(next))?;
            stored = store.store_offsets(list);
        }
        if stored.is_err() {
            self.list = None;
        }
        match stored {
            Err(KafkaError::StoreOffset(RDKafkaErrorCode::State)) => {
                tracing::debug!(
                    topic,
                    partition,
                    next,
                    "partition no longer assigned; offset not stored"
                );
                Ok(())
            }
            other => other,
        }
    }

    fn highest_seen(&self) -> Option<i64> {
        self.finished.max(self.pending.back().copied())
    }

    /// The next offset up to which everything is finished, if it moved.
    fn advance(&mut self) -> Option<i64> {
        let next = match self.pending.front() {
            Some(&first) => first,
            None => self.finished? + 1,
        };
        if self.stored.is_some_and(|stored| stored >= next) {
            return None;
        }
        self.stored = Some(next);
        Some(next)
    }
}

impl Tracker {
    /// The partition's state for a newly received message. A message at or
    /// below what was already seen means the partition was rewound (a
    /// rebalance or a seek): what was tracked no longer applies.
    fn receive(&mut self, at: &Position<'_>) -> &mut Partition {
        if !self.topics.contains_key(at.topic) {
            self.topics.insert(at.topic.to_owned(), FastMap::default());
        }
        let partitions = self.topics.get_mut(at.topic).expect("inserted above");
        let partition = partitions.entry(at.partition).or_default();
        if partition
            .highest_seen()
            .is_some_and(|seen| at.offset <= seen)
        {
            *partition = Partition::default();
        }
        partition
    }

    fn is_transactional(&self) -> bool {
        self.transaction.is_some()
    }

    /// Keeps `next` for the next transaction.
    fn for_transaction(&mut self, topic: &str, partition: i32, next: i64) {
        if let Some(waiting) = &mut self.transaction {
            wait_for_transaction(waiting, topic, partition, next);
        }
    }

    /// Forgets the offsets sent to a transaction, unless a later one came
    /// meanwhile.
    fn sent(&mut self, offsets: &TopicPartitionList) {
        let Some(waiting) = &mut self.transaction else {
            return;
        };
        for element in offsets.elements() {
            let Some(partitions) = waiting.get_mut(element.topic()) else {
                continue;
            };
            let partition = element.partition();
            let superseded = match (partitions.get(&partition), element.offset()) {
                (Some(&next), Offset::Offset(sent)) => next <= sent,
                _ => false,
            };
            if superseded {
                partitions.remove(&partition);
            }
        }
    }

    /// Forgets every message and offset, as after a rewind; a transactional
    /// tracker stays transactional.
    fn start_over(&mut self) {
        self.topics.clear();
        self.unstored = false;
        if let Some(waiting) = &mut self.transaction {
            waiting.clear();
        }
    }

    /// Forgets a revoked partition: a later `done` of one of its messages
    /// stores nothing.
    fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(partitions) = self.topics.get_mut(topic) {
            partitions.remove(&partition);
        }
    }

    fn partition(&mut self, topic: &str, partition: i32) -> Option<&mut Partition> {
        self.topics.get_mut(topic)?.get_mut(&partition)
    }

    fn handed_out(&mut self, at: &Position<'_>) {
        self.receive(at).pending.push_back(at.offset);
    }

    /// Notes a skipped message; what it made safe is stored later, in a batch.
    fn skipped(&mut self, at: &Position<'_>) -> Option<i64> {
        let partition = self.receive(at);
        partition.finished = partition.finished.max(Some(at.offset));
        let next = partition.advance();
        if next.is_some() {
            partition.unstored = next;
            self.unstored = true;
        }
        next
    }

    /// Notes a processed message; what it made safe is stored at once.
    fn done(&mut self, at: &Position<'_>) -> Option<i64> {
        let partition = self.topics.get_mut(at.topic)?.get_mut(&at.partition)?;
        let Ok(index) = partition.pending.binary_search(&at.offset) else {
            return None;
        };
        partition.pending.remove(index);
        partition.finished = partition.finished.max(Some(at.offset));
        let next = partition.advance();
        if next.is_some() {
            partition.unstored = None;
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> Position<'static> {
        Position {
            topic: "t",
            partition,
            offset,
        }
    }

    #[test]
    fn skipped_messages_advance_the_offset_when_nothing_is_pending() {
        let mut t = Tracker::default();
        assert_eq!(t.skipped(&at(0, 0)), Some(1));
        assert_eq!(t.skipped(&at(0, 1)), Some(2));
        assert_eq!(t.skipped(&at(1, 7)), Some(8), "partitions are separate");
    }

    #[test]
    fn a_pending_message_holds_the_offset_until_it_is_done() {
        let mut t = Tracker::default();
        t.handed_out(&at(0, 5));
        assert_eq!(t.skipped(&at(0, 6)), Some(5), "never past 5");
        assert_eq!(t.skipped(&at(0, 7)), None, "still 5");
        assert_eq!(t.done(&at(0, 5)), Some(8), "5 done, 6 and 7 skipped");
    }

    #[test]
    fn out_of_order_acknowledgements_store_only_the_contiguous_part() {
        let mut t = Tracker::default();
        for offset in 10..14 {
            t.handed_out(&at(0, offset));
        }
        assert_eq!(t.done(&at(0, 12)), Some(10));
        assert_eq!(t.done(&at(0, 11)), None);
        assert_eq!(t.done(&at(0, 10)), Some(13));
        assert_eq!(t.done(&at(0, 13)), Some(14));
    }

    #[test]
    fn unknown_or_repeated_acknowledgements_are_ignored() {
        let mut t = Tracker::default();
        assert_eq!(t.done(&at(0, 3)), None);
        t.handed_out(&at(0, 3));
        assert_eq!(t.done(&at(0, 3)), Some(4));
        assert_eq!(t.done(&at(0, 3)), None);
    }

    #[test]
    fn a_failed_message_blocks_its_partition_forever() {
        let mut t = Tracker::default();
        t.handed_out(&at(0, 4)); // a failed decision is tracked like this
        assert_eq!(t.skipped(&at(0, 5)), Some(4));
        assert_eq!(t.skipped(&at(0, 6)), None);
        assert_eq!(t.skipped(&at(1, 0)), Some(1), "other partitions go on");
    }

    /// Fails as many stores as it is told to, and records every offset.
    #[derive(Default)]
    struct FlakyStore {
        failures: Mutex<usize>,
        offsets: Mutex<Vec<i64>>,
    }

    impl ManagedConsumer for FlakyStore {
        fn store_offsets(&self, offsets: &TopicPartitionList) -> KafkaResult<()> {
            for element in offsets.elements() {
                if let Offset::Offset(next) = element.offset() {
                    self.offsets.lock().push(next);
                }
            }
            let mut failures = self.failures.lock();
            if *failures > 0 {
                *failures -= 1;
                return Err(KafkaError::StoreOffset(RDKafkaErrorCode::State));
            }
            Ok(())
        }

        fn commit_stored(&self, _: CommitMode) -> KafkaResult<()> {
            Ok(())
        }
    }

    #[test]
    fn a_kept_partition_list_that_fails_is_made_anew_once() {
        let store = FlakyStore::default();
        let mut partition = Partition::default();
        partition.store(&store, "t", 0, 5).unwrap();
        *store.failures.lock() = 1;
        partition.store(&store, "t", 0, 6).unwrap();
        assert_eq!(*store.offsets.lock(), [5, 6, 6], "tried again, anew");
        *store.failures.lock() = 2;
        partition
            .store(&store, "t", 0, 7)
            .expect("a partition no longer assigned is not an error");
        assert!(partition.list.is_none(), "no list kept after a failure");
        *store.failures.lock() = 1;
        partition.store(&store, "t", 0, 8).unwrap();
        assert_eq!(
            *store.offsets.lock(),
            [5, 6, 6, 7, 7, 8],
            "a new list is not tried twice"
        );
    }

    #[test]
    fn a_rewound_partition_starts_over() {
        let mut t = Tracker::default();
        t.handed_out(&at(0, 5));
        assert_eq!(t.skipped(&at(0, 6)), Some(5));
        // Redelivered from 5 after a rebalance.
        assert_eq!(t.skipped(&at(0, 5)), Some(6));
        assert_eq!(t.done(&at(0, 5)), None, "the old hand-out is forgotten");
    }
}
