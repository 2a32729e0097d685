//! Metrics of an enabled client's decisions, on the [`metrics`]
//! crate's facade (0.24): plug in the exporter you already use (Prometheus,
//! StatsD, OpenTelemetry, ...), and the client reports to it.
//!
//! | metric | kind | counts |
//! | --- | --- | --- |
//! | [`telepresence_kafka_processed_total`](PROCESSED_TOTAL) | counter | decisions to process the message on this side (fallbacks included) |
//! | [`telepresence_kafka_skipped_total`](SKIPPED_TOTAL) | counter | decisions to leave it to the other side (fallbacks included) |
//! | [`telepresence_kafka_fallbacks_total`](FALLBACKS_TOTAL) | counter | decisions taken by the failure policy instead of the API |
//! | [`telepresence_kafka_held_total`](HELD_TOTAL) | counter | decisions that waited for a failing API (counted when they start waiting) |
//! | [`telepresence_kafka_decision_duration_seconds`](DECISION_DURATION_SECONDS) | histogram | how long a decision took to answer, a cache hit as 0 |
//!
//! Every metric has two labels:
//!
//! - [`side`](SIDE_LABEL): `cluster`, or `workstation` when the client has
//!   an intercept ID;
//! - [`topic`](TOPIC_LABEL): the message's topic ([`KafkaMessage::topic`](crate::KafkaMessage::topic)),
//!   empty when it has none. A client labels at most [`MAX_TOPICS`] topics;
//!   later ones, and names longer than Kafka allows, are reported under
//!   [`OTHER_TOPIC`], so that a stream of ever new topics cannot grow the
//!   client's (and the exporter's) memory without bound.
//!
//! What is recorded, and what is not:
//!
//! - **Only an enabled client records.** A disabled client (no Telepresence:
//!   production) records nothing and keeps its path free of I/O and
//!   allocation; [`Client::stats`](crate::Client::stats) still counts its
//!   decisions.
//! - **The latency is what the caller waits for the API**: from the query
//!   ready to send (as [`Client::should_consume`](crate::Client::should_consume)
//!   returns) to the answer, the retries included and, for a held decision,
//!   the whole wait for the API. A cache hit is recorded as 0: it takes well
//!   under a microsecond, and two clock reads would cost a good part of
//!   that; so does reading the message, which is not timed.
//! - **Errors record nothing here**: a decision that returns an error
//!   (failure policy [`Fail`](crate::FailurePolicy::Fail), a refused side)
//!   is neither processed nor skipped; [`Stats::errors`](crate::Stats::errors)
//!   counts failed calls.
//! - **The recorder**: metrics go to the recorder in force where and when
//!   `should_consume` is called: the global one (installed by your
//!   exporter), or a local one ([`metrics::with_local_recorder`]), which is
//!   one thread's, for tests on a single-threaded runtime. Install it at the
//!   start of the program, before the first message; a client built
//!   earlier, even one that has decided already, reports to it from its next
//!   decision on. The metrics are described (units and help texts) to each
//!   recorder the client reports to.
//! - **The cost**: once a topic has been seen, the metrics allocate
//!   nothing; a decision looks at which recorder is in force, looks the
//!   topic up in a small map under a read lock and adds to a few atomic
//!   counters (and the exporter does what it does with a histogram sample);
//!   one that asks the API also reads the clock twice. The first decision
//!   about a topic registers its metrics with the recorder.
//!
//! A decision is not a processed message: the stream adapter counts those in
//! its `progress()`.
//!
//! A complete program that serves them to Prometheus:
//! `examples/src/bin/metrics.rs` in the repository. Here, a test's view,
//! with a recorder that keeps what it is given:
//!
#![cfg_attr(feature = "metrics", doc = "```")]
// Compiled only with the feature: without it the module is the no-op hooks.
#![cfg_attr(not(feature = "metrics"), doc = "```ignore")]
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use telepresence_kafka::{Client, HeaderList, metrics::PROCESSED_TOTAL};
//! use telepresence_mock_server::{Intercept, MockServer, Side};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! // On this thread only: a program installs its exporter's recorder globally.
//! let _local = metrics::set_default_local_recorder(&recorder);
//!
//! let api = MockServer::builder()
//!     .side(Side::Client)
//!     .intercept(Intercept::new("4b16:orders").header("x-dev", "alice"))
//!     .start()
//!     .await?;
//! let tp = Client::builder().api_url(api.url()).intercept_id("4b16:orders").build()?;
//! let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice"))];
//! assert!(tp.should_consume(&HeaderList::new(headers).topic("orders")).await?);
//!
//! let processed = snapshotter.snapshot().into_vec().into_iter().find(|(key, ..)| {
//!     let key = key.key();
//!     let labels: Vec<_> = key.labels().map(|l| (l.key(), l.value())).collect();
//!     key.name() == PROCESSED_TOTAL
//!         && labels == [("side", "workstation"), ("topic", "orders")]
//! });
//! assert!(matches!(processed, Some((.., DebugValue::Counter(1)))));
//! # Ok(()) }
//! ```

#[cfg(feature = "metrics")]
pub use self::names::*;
pub(crate) use self::recording::{DecisionMetrics, Recording};

#[cfg(feature = "metrics")]
mod names {
    /// Counter: decisions to process the message on this side, fallbacks
    /// included.
    pub const PROCESSED_TOTAL: &str = "telepresence_kafka_processed_total";
    /// Counter: decisions to leave the message to the other side, fallbacks
    /// included.
    pub const SKIPPED_TOTAL: &str = "telepresence_kafka_skipped_total";
    /// Counter: decisions taken by the failure policy instead of the API.
    pub const FALLBACKS_TOTAL: &str = "telepresence_kafka_fallbacks_total";
    /// Counter: decisions that waited for a failing API, counted when they
    /// start waiting (failure policy `Hold`, and `Auto` on a workstation).
    pub const HELD_TOTAL: &str = "telepresence_kafka_held_total";
    /// Histogram, in seconds: how long a decision waited for the API, from
    /// its query ready to send to the answer, retries and holds included; a
    /// cache hit as 0.
    ///
    /// Exporters that need buckets for a histogram take this name, e.g.
    /// `metrics-exporter-prometheus`'s `set_buckets_for_metric`.
    pub const DECISION_DURATION_SECONDS: &str = "telepresence_kafka_decision_duration_seconds";

    /// Label: `cluster` or `workstation`.
    pub const SIDE_LABEL: &str = "side";
    /// Label: the message's topic; empty when it has none, [`OTHER_TOPIC`]
    /// past [`MAX_TOPICS`].
    pub const TOPIC_LABEL: &str = "topic";
    /// The topic label of the topics a client does not label by name: those
    /// after its first [`MAX_TOPICS`], and names longer than a Kafka topic's
    /// 249 characters. No Kafka topic has this name: parentheses are not
    /// allowed in one.
    pub const OTHER_TOPIC: &str = "(other)";
    /// How many topics a client labels by name.
    pub const MAX_TOPICS: usize = 1024;
}

#[cfg(feature = "metrics")]
mod recording {
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use ::metrics::{Counter, Histogram, Label, Recorder, Unit};
    use parking_lot::RwLock;

    use super::names::*;
    use crate::message::KafkaMessage;

    /// The longest topic name Kafka allows; a longer one, possible only
    /// from a `KafkaMessage` of one's own, is not a label.
    const MAX_TOPIC_LEN: usize = 249;

    /// One client's metrics: the handles of each topic it has decided
    /// about, registered once, so that a decision allocates nothing.
    pub(crate) struct DecisionMetrics {
        side: &'static str,
        topics: RwLock<Topics>,
    }

    #[derive(Default)]
    struct Topics {
        /// At most [`MAX_TOPICS`].
        named: HashMap<Box<str>, Arc<Handles>>,
        /// Shared by the topics past the cap.
        other: Option<Arc<Handles>>,
        /// The recorder the metrics were last described to.
        described: Option<RecorderId>,
    }

    /// A recorder, by address, only to tell whether it is still the one in
    /// force; never dereferenced.
    #[derive(Clone, Copy, PartialEq, Eq)]
    struct RecorderId(usize);

    impl RecorderId {
        /// The recorder the `metrics` macros would use here and now.
        fn current() -> Self {
            ::metrics::with_recorder(|recorder| {
                Self(
                    std::ptr::from_ref::<dyn Recorder>(recorder)
                        .cast::<()>()
                        .addr(),
                )
            })
        }
    }

    /// A topic's metrics, registered with one recorder.
    struct Handles {
        recorder: RecorderId,
        processed: Counter,
        skipped: Counter,
        fallbacks: Counter,
        held: Counter,
        duration: Histogram,
    }

    /// A decision in flight: its topic's metrics, and when it started.
    pub(crate) struct Recording {
        handles: Arc<Handles>,
        started: Instant,
    }

    impl DecisionMetrics {
        pub(crate) fn new(workstation: bool) -> Self {
            Self {
                side: if workstation {
                    "workstation"
                } else {
                    "cluster"
                },
                topics: RwLock::new(Topics::default()),
            }
        }

        /// Records a decision known without asking (a cache hit) as taking
        /// no time: it takes well under a microsecond, and reading the clock
        /// twice would cost a good part of that.
        pub(crate) fn known<M: KafkaMessage + ?Sized>(&self, msg: &M, answer: bool) {
            self.with_handles(msg.topic().unwrap_or(""), |handles| {
                handles.answered(answer, false, Duration::ZERO);
            });
        }

        /// The recording of a decision about to ask the API: timed from
        /// now.
        pub(crate) fn asking<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Recording {
            Recording {
                handles: self.with_handles(msg.topic().unwrap_or(""), Arc::clone),
                started: Instant::now(),
            }
        }

        /// Runs `f` with the handles of `topic` for the recorder in force,
        /// registering them first when there are none yet for it.
        fn with_handles<R>(&self, topic: &str, f: impl FnOnce(&Arc<Handles>) -> R) -> R {
            let recorder = RecorderId::current();
            {
                let topics = self.topics.read();
                if let Some(handles) = topics.get(topic) {
                    if handles.recorder == recorder {
                        return f(handles);
                    }
                }
            }
            let mut topics = self.topics.write();
            f(topics.register(topic, recorder, self.side))
        }
    }

    impl Topics {
        /// The handles that `topic` reports to, if any yet.
        fn get(&self, topic: &str) -> Option<&Arc<Handles>> {
            match self.named.get(topic) {
                Some(handles) => Some(handles),
                None if self.labels(topic) => None,
                None => self.other.as_ref(),
            }
        }

        /// Whether `topic`, not labelled yet, gets a label of its own.
        fn labels(&self, topic: &str) -> bool {
            self.named.len() < MAX_TOPICS && topic.len() <= MAX_TOPIC_LEN
        }

        /// The handles of `topic` for `recorder`, registered unless another
        /// thread just did.
        fn register(
            &mut self,
            topic: &str,
            recorder: RecorderId,
            side: &'static str,
        ) -> &Arc<Handles> {
            if self.described != Some(recorder) {
                describe();
                self.described = Some(recorder);
            }
            let named = self.named.contains_key(topic) || self.labels(topic);
            let label = if named { topic } else { OTHER_TOPIC };
            let fresh = || Arc::new(Handles::register(recorder, side, label));
            let slot = if named {
                self.named.entry(topic.into()).or_insert_with(&fresh)
            } else {
                self.other.get_or_insert_with(&fresh)
            };
            if slot.recorder != recorder {
                *slot = fresh();
            }
            slot
        }
    }

    impl Handles {
        fn register(recorder: RecorderId, side: &'static str, topic: &str) -> Self {
            let labels = [
                Label::new(SIDE_LABEL, side),
                Label::new(TOPIC_LABEL, topic.to_owned()),
            ];
            Self {
                recorder,
                processed: ::metrics::counter!(PROCESSED_TOTAL, labels.iter()),
                skipped: ::metrics::counter!(SKIPPED_TOTAL, labels.iter()),
                fallbacks: ::metrics::counter!(FALLBACKS_TOTAL, labels.iter()),
                held: ::metrics::counter!(HELD_TOTAL, labels.iter()),
                duration: ::metrics::histogram!(DECISION_DURATION_SECONDS, labels.iter()),
            }
        }

        fn answered(&self, answer: bool, fallback: bool, took: Duration) {
            if answer {
                self.processed.increment(1);
            } else {
                self.skipped.increment(1);
            }
            if fallback {
                self.fallbacks.increment(1);
            }
            self.duration.record(took);
        }
    }

    impl Recording {
        /// The decision starts waiting for a failing API.
        pub(crate) fn held(&self) {
            self.handles.held.increment(1);
        }

        /// The decision's answer, from the API or from the failure policy.
        pub(crate) fn answered(self, answer: bool, fallback: bool) {
            self.handles
                .answered(answer, fallback, self.started.elapsed());
        }
    }

    /// Units and help texts, for the recorder in force.
    fn describe() {
        use ::metrics::{describe_counter, describe_histogram};
        describe_counter!(
            PROCESSED_TOTAL,
            Unit::Count,
            "Decisions to process the message on this side, fallbacks included."
        );
        describe_counter!(
            SKIPPED_TOTAL,
            Unit::Count,
            "Decisions to leave the message to the other side, fallbacks included."
        );
        describe_counter!(
            FALLBACKS_TOTAL,
            Unit::Count,
            "Decisions taken by the failure policy instead of the Telepresence API."
        );
        describe_counter!(
            HELD_TOTAL,
            Unit::Count,
            "Decisions that waited for a failing Telepresence API."
        );
        describe_histogram!(
            DECISION_DURATION_SECONDS,
            Unit::Seconds,
            "Time a decision waited for the Telepresence API, retries and holds included; 0 for a cache hit."
        );
    }
}

/// Without the feature: nothing to record, at no cost.
#[cfg(not(feature = "metrics"))]
mod recording {
    use crate::message::KafkaMessage;

    pub(crate) struct DecisionMetrics;
    pub(crate) struct Recording;

    impl DecisionMetrics {
        pub(crate) fn new(_workstation: bool) -> Self {
            Self
        }

        #[inline(always)]
        pub(crate) fn known<M: KafkaMessage + ?Sized>(&self, _: &M, _: bool) {}

        #[inline(always)]
        pub(crate) fn asking<M: KafkaMessage + ?Sized>(&self, _: &M) -> Recording {
            Recording
        }
    }

    impl Recording {
        #[inline(always)]
        pub(crate) fn held(&self) {}

        #[inline(always)]
        pub(crate) fn answered(self, _: bool, _: bool) {}
    }
}

/// The promise of the hot path, checked where the recording is: once a
/// topic is known, a decision allocates nothing.
#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use ::metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString,
        Unit,
    };

    use super::DecisionMetrics;
    use crate::HeaderList;

    /// Tallies this thread's allocations, so that tests running in parallel
    /// do not count each other's.
    struct Counting;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Counting = Counting;

    fn allocations() -> u64 {
        ALLOCATIONS.with(Cell::get)
    }

    /// A recorder that adds up into atomics, and so allocates nothing to
    /// record: what is left is this module's own cost.
    #[derive(Default)]
    struct Atomic {
        counted: Arc<AtomicU64>,
        samples: Arc<Samples>,
    }

    #[derive(Default)]
    struct Samples(AtomicU64);

    impl HistogramFn for Samples {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Recorder for Atomic {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.counted.clone())
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.samples.clone())
        }
    }

    #[test]
    fn a_decision_about_a_known_topic_allocates_nothing() {
        let recorder = Atomic::default();
        let _local = ::metrics::set_default_local_recorder(&recorder);
        let metrics = DecisionMetrics::new(true);
        let (orders, payments) = (
            HeaderList::default().topic("orders"),
            HeaderList::default().topic("payments"),
        );
        let first = allocations();
        metrics.known(&orders, true);
        assert!(allocations() > first, "the first decision registers");

        let before = allocations();
        for _ in 0..1000 {
            metrics.known(&orders, true);
            let asking = metrics.asking(&orders);
            asking.held();
            asking.answered(false, true);
        }
        assert_eq!(allocations() - before, 0, "allocations per decision");
        // Each cached decision counts once, each asked one thrice
        // (skipped, fallback, held); every decision is timed.
        assert_eq!(recorder.counted.load(Ordering::Relaxed), 1 + 4000);
        assert_eq!(recorder.samples.0.load(Ordering::Relaxed), 1 + 2000);

        let before = allocations();
        metrics.known(&payments, false);
        assert!(allocations() > before, "a new topic registers");
    }
}
