//! The `metrics` feature: what an enabled client reports, by side and topic,
//! against the in-process mock server over HTTP.
//!
//! Each test records into a recorder of its own, set for its thread: tokio's
//! test runtime runs the decisions on that thread, so that tests running in
//! parallel never see each other's metrics. One test installs a global
//! recorder; it looks only at its own topic.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metrics::Unit;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use telepresence_kafka::metrics::{
    DECISION_DURATION_SECONDS, FALLBACKS_TOTAL, HELD_TOTAL, MAX_TOPICS, OTHER_TOPIC,
    PROCESSED_TOTAL, SKIPPED_TOTAL,
};
use telepresence_kafka::{Client, ClientBuilder, FailurePolicy, HeaderList};
use telepresence_mock_server::{Fault, MockServer, Side};

mod api;
use api::{alice_api, requests_to};

const ID: &str = "4b1658c3:orders";

/// A message from `dev` (none: no `x-dev` header) on `topic`.
fn message<'a>(dev: &str, topic: &'a str) -> HeaderList<'a> {
    let headers: &'static [(&'static str, Option<&'static [u8]>)] = match dev {
        "alice" => &[("x-dev", Some(b"alice"))],
        "bob" => &[("x-dev", Some(b"bob"))],
        _ => &[],
    };
    HeaderList::new(headers).topic(topic)
}

/// A client of `server`'s side: with its intercept ID on a workstation.
fn client(server: &MockServer) -> ClientBuilder {
    Client::builder()
        .api_url(server.url())
        .intercept_id(server.env().intercept_id)
}

/// The four counters of one side and topic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    processed: u64,
    skipped: u64,
    fallbacks: u64,
    held: u64,
}

fn counts(processed: u64, skipped: u64, fallbacks: u64, held: u64) -> Counts {
    Counts {
        processed,
        skipped,
        fallbacks,
        held,
    }
}

/// What a recorder was given since the last snapshot, by side and topic.
#[derive(Debug, Default)]
struct Recorded {
    counts: BTreeMap<(String, String), Counts>,
    durations: BTreeMap<(String, String), Vec<f64>>,
    units: BTreeMap<String, Option<Unit>>,
}

impl Recorded {
    /// Takes a snapshot (which resets the recorder's values), checking
    /// that every metric is one of ours, labelled by side and topic.
    fn take(snapshotter: &Snapshotter) -> Self {
        let mut recorded = Self::default();
        for (key, unit, description, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            let [("side", side), ("topic", topic)] = labels[..] else {
                panic!("{}: labels {labels:?}", key.name());
            };
            assert!(
                side == "cluster" || side == "workstation",
                "{}: side {side}",
                key.name()
            );
            assert!(description.is_some(), "{} is described", key.name());
            recorded.units.insert(key.name().to_owned(), unit);
            let at = (side.to_owned(), topic.to_owned());
            let counts = recorded.counts.entry(at.clone()).or_default();
            match (key.name(), value) {
                (PROCESSED_TOTAL, DebugValue::Counter(n)) => counts.processed = n,
                (SKIPPED_TOTAL, DebugValue::Counter(n)) => counts.skipped = n,
                (FALLBACKS_TOTAL, DebugValue::Counter(n)) => counts.fallbacks = n,
                (HELD_TOTAL, DebugValue::Counter(n)) => counts.held = n,
                (DECISION_DURATION_SECONDS, DebugValue::Histogram(samples)) => {
                    let samples = samples.into_iter().map(|s| s.into_inner()).collect();
                    recorded.durations.insert(at, samples);
                }
                (name, value) => panic!("unexpected metric {name}: {value:?}"),
            }
        }
        recorded
    }

    fn counts(&self, side: &str, topic: &str) -> Counts {
        self.counts
            .get(&(side.to_owned(), topic.to_owned()))
            .copied()
            .unwrap_or_default()
    }

    fn durations(&self, side: &str, topic: &str) -> &[f64] {
        self.durations
            .get(&(side.to_owned(), topic.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The topic labels of one side.
    fn topics(&self, side: &str) -> BTreeSet<&str> {
        self.counts
            .keys()
            .filter(|(s, _)| s == side)
            .map(|(_, topic)| topic.as_str())
            .collect()
    }
}

/// Each side counts its own decisions under its own label, per topic, and
/// times each one.
#[tokio::test]
async fn decisions_are_counted_by_side_and_topic() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let pod_api = alice_api(Side::Agent, ID).await;
    let workstation_api = alice_api(Side::Client, ID).await;
    let pod = client(&pod_api).build().unwrap();
    let workstation = client(&workstation_api).build().unwrap();
    for tp in [&pod, &workstation] {
        for dev in ["alice", "bob", "none"] {
            tp.should_consume(&message(dev, "orders")).await.unwrap();
        }
        tp.should_consume(&message("alice", "payments"))
            .await
            .unwrap();
        tp.should_consume(&HeaderList::default()).await.unwrap();
    }

    let recorded = Recorded::take(&snapshotter);
    assert_eq!(recorded.counts("workstation", "orders"), counts(1, 2, 0, 0));
    assert_eq!(
        recorded.counts("workstation", "payments"),
        counts(1, 0, 0, 0)
    );
    assert_eq!(recorded.counts("workstation", ""), counts(0, 1, 0, 0));
    assert_eq!(recorded.counts("cluster", "orders"), counts(2, 1, 0, 0));
    assert_eq!(recorded.counts("cluster", "payments"), counts(0, 1, 0, 0));
    assert_eq!(recorded.counts("cluster", ""), counts(1, 0, 0, 0));
    for side in ["cluster", "workstation"] {
        assert_eq!(
            recorded.topics(side),
            BTreeSet::from(["", "orders", "payments"])
        );
        for (topic, decisions) in [("orders", 3), ("payments", 1), ("", 1)] {
            let durations = recorded.durations(side, topic);
            assert_eq!(durations.len(), decisions, "{side} {topic}: {durations:?}");
            assert!(durations.iter().all(|d| d.is_finite() && *d >= 0.0));
        }
    }
    for counter in [PROCESSED_TOTAL, SKIPPED_TOTAL, FALLBACKS_TOTAL, HELD_TOTAL] {
        assert_eq!(recorded.units[counter], Some(Unit::Count), "{counter}");
    }
    assert_eq!(
        recorded.units[DECISION_DURATION_SECONDS],
        Some(Unit::Seconds)
    );
    // The metrics agree with the client's own counters.
    let stats = workstation.stats();
    assert_eq!((stats.consumed, stats.skipped), (2, 3));
}

/// Answers from the decision cache are decisions like the others: counted,
/// and recorded as taking no time.
#[tokio::test]
async fn cache_hits_are_counted_as_taking_no_time() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = alice_api(Side::Client, ID).await;
    let tp = client(&server)
        .decision_cache(Duration::from_secs(3600), ["x-dev"])
        .build()
        .unwrap();
    for _ in 0..3 {
        assert!(
            tp.should_consume(&message("alice", "orders"))
                .await
                .unwrap()
        );
    }
    assert!(!tp.should_consume(&message("bob", "orders")).await.unwrap());
    assert_eq!(requests_to(&server, "/consume-here").await, 2);
    assert_eq!(tp.stats().cache_hits, 2);

    let recorded = Recorded::take(&snapshotter);
    assert_eq!(recorded.counts("workstation", "orders"), counts(3, 1, 0, 0));
    let durations = recorded.durations("workstation", "orders");
    assert_eq!(durations.len(), 4);
    assert_eq!(
        durations.iter().filter(|d| **d == 0.0).count(),
        2,
        "{durations:?}"
    );
}

/// In the cluster, a failing API leaves the decision to the failure policy:
/// counted as a fallback and as what the policy answered. An error returned
/// is no decision.
#[tokio::test]
async fn the_cluster_falls_back_when_the_api_fails() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = alice_api(Side::Agent, ID).await;
    let client = |policy| {
        client(&server)
            .failure_policy(policy)
            .retries(0)
            .build()
            .unwrap()
    };
    let (auto, skip, fail) = (
        client(FailurePolicy::Auto),
        client(FailurePolicy::Skip),
        client(FailurePolicy::Fail),
    );
    for tp in [&auto, &skip, &fail] {
        tp.check_side().await.unwrap();
    }
    server
        .admin()
        .inject_fault(Fault::status(503))
        .await
        .unwrap();
    assert!(
        auto.should_consume(&message("alice", "auto"))
            .await
            .unwrap()
    );
    assert!(!skip.should_consume(&message("bob", "skip")).await.unwrap());
    fail.should_consume(&message("bob", "fail"))
        .await
        .expect_err("the policy returns the error");
    server.admin().clear_faults().await.unwrap();
    // Answered by the API again: no fallback.
    assert!(
        !auto
            .should_consume(&message("alice", "auto"))
            .await
            .unwrap()
    );

    let recorded = Recorded::take(&snapshotter);
    assert_eq!(recorded.counts("cluster", "auto"), counts(1, 1, 1, 0));
    assert_eq!(recorded.counts("cluster", "skip"), counts(0, 1, 1, 0));
    assert_eq!(recorded.counts("cluster", "fail"), counts(0, 0, 0, 0));
    assert_eq!(recorded.durations("cluster", "auto").len(), 2);
    assert_eq!(recorded.durations("cluster", "fail"), &[] as &[f64]);
    assert_eq!(auto.stats().fallbacks, 1);
}

/// On a workstation a failing API holds the decision until it answers: one
/// held decision, answered by the API (no fallback), timed with its wait.
#[tokio::test]
async fn a_held_decision_is_counted_once_and_timed_with_its_wait() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = alice_api(Side::Client, ID).await;
    let tp = client(&server)
        .retries(0)
        .hold_backoff_max(Duration::from_millis(1))
        .build()
        .unwrap();
    tp.check_side().await.unwrap();
    // Three failed attempts, then the API answers: no timing involved.
    server
        .admin()
        .inject_fault(Fault::status(503).times(3))
        .await
        .unwrap();
    assert!(
        tp.should_consume(&message("alice", "orders"))
            .await
            .unwrap()
    );
    assert!(!tp.should_consume(&message("bob", "orders")).await.unwrap());

    let stats = tp.stats();
    assert_eq!((stats.held, stats.errors, stats.fallbacks), (1, 3, 0));
    let recorded = Recorded::take(&snapshotter);
    assert_eq!(recorded.counts("workstation", "orders"), counts(1, 1, 0, 1));
    let durations = recorded.durations("workstation", "orders");
    assert_eq!(durations.len(), 2);
    // The held decision slept 50 ms before its second attempt, at least.
    assert!(
        durations.iter().any(|d| *d >= 0.050),
        "the wait is in the latency: {durations:?}"
    );
}

/// A client labels its first `MAX_TOPICS` topics by name and the rest, with
/// names longer than Kafka allows, as `(other)`.
#[tokio::test]
async fn topics_past_the_cap_are_reported_as_other() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let server = alice_api(Side::Client, ID).await;
    // Cached, so that a thousand topics cost two requests.
    let tp = client(&server)
        .decision_cache(Duration::from_secs(3600), ["x-dev"])
        .build()
        .unwrap();
    let topics: Vec<String> = (0..MAX_TOPICS + 2).map(|n| format!("t{n}")).collect();
    for topic in &topics {
        assert!(tp.should_consume(&message("alice", topic)).await.unwrap());
    }
    // Past the cap, known topics keep their label and new ones, asked or
    // not, share the other one.
    assert!(tp.should_consume(&message("alice", "t0")).await.unwrap());
    assert!(!tp.should_consume(&message("bob", "new")).await.unwrap());
    assert_eq!(requests_to(&server, "/consume-here").await, 2);

    let recorded = Recorded::take(&snapshotter);
    let labelled = recorded.topics("workstation");
    assert_eq!(labelled.len(), MAX_TOPICS + 1, "the cap, and (other)");
    assert!(labelled.contains(OTHER_TOPIC));
    assert!(
        topics[..MAX_TOPICS]
            .iter()
            .all(|t| labelled.contains(t.as_str()))
    );
    assert_eq!(recorded.counts("workstation", "t0"), counts(2, 0, 0, 0));
    assert_eq!(
        recorded.counts("workstation", OTHER_TOPIC),
        counts(2, 1, 0, 0)
    );
    assert_eq!(recorded.durations("workstation", OTHER_TOPIC).len(), 3);

    // A name no Kafka topic can have (more than 249 characters) is not a
    // label either, even under the cap.
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);
    let tp = client(&server).build().unwrap();
    let (longest, too_long) = ("k".repeat(249), "k".repeat(250));
    for topic in [&longest, &too_long] {
        tp.should_consume(&message("alice", topic)).await.unwrap();
    }
    let recorded = Recorded::take(&snapshotter);
    assert_eq!(
        recorded.topics("workstation"),
        BTreeSet::from([longest.as_str(), OTHER_TOPIC])
    );
}

/// A disabled client is production without Telepresence: it records
/// nothing.
#[tokio::test]
async fn a_disabled_client_records_nothing() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = metrics::set_default_local_recorder(&recorder);

    let without_api = Client::builder().intercept_id(ID).build().unwrap();
    for tp in [Client::disabled(), without_api] {
        assert!(!tp.is_enabled());
        assert!(
            tp.should_consume(&message("alice", "orders"))
                .await
                .unwrap()
        );
        assert_eq!(tp.stats().consumed, 1);
    }
    assert!(snapshotter.snapshot().into_vec().is_empty());
}

/// Metrics go to the recorder in force when a decision is made: a topic
/// first decided before a recorder was set reports to it from then on, and
/// to the next one in turn.
#[tokio::test]
async fn a_recorder_set_after_the_first_decisions_gets_the_next_ones() {
    let server = alice_api(Side::Client, ID).await;
    let tp = client(&server).build().unwrap();
    // No recorder of this test's yet (another test's global one, maybe).
    tp.should_consume(&message("alice", "late")).await.unwrap();

    let first = DebuggingRecorder::new();
    let first_snapshotter = first.snapshotter();
    {
        let _local = metrics::set_default_local_recorder(&first);
        tp.should_consume(&message("alice", "late")).await.unwrap();
        tp.should_consume(&message("bob", "late")).await.unwrap();
    }
    let second = DebuggingRecorder::new();
    let second_snapshotter = second.snapshotter();
    {
        let _local = metrics::set_default_local_recorder(&second);
        tp.should_consume(&message("alice", "late")).await.unwrap();
    }

    let recorded = Recorded::take(&first_snapshotter);
    assert_eq!(recorded.counts("workstation", "late"), counts(1, 1, 0, 0));
    let recorded = Recorded::take(&second_snapshotter);
    assert_eq!(recorded.counts("workstation", "late"), counts(1, 0, 0, 0));
    assert_eq!(
        recorded.units[PROCESSED_TOTAL],
        Some(Unit::Count),
        "described to each recorder"
    );
}

/// The way a program installs its exporter: globally, after the client is
/// built and maybe after its first decisions.
#[tokio::test]
async fn a_global_recorder_installed_after_the_client_was_built_gets_its_decisions() {
    let server = alice_api(Side::Agent, ID).await;
    let tp = client(&server).build().unwrap();
    tp.should_consume(&message("bob", "global")).await.unwrap();

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only global recorder of this binary");
    tp.should_consume(&message("bob", "global")).await.unwrap();
    tp.should_consume(&message("alice", "global"))
        .await
        .unwrap();

    // Other tests' decisions go to their own local recorders.
    let recorded = Recorded::take(&snapshotter);
    assert_eq!(recorded.counts("cluster", "global"), counts(1, 1, 0, 0));
    assert_eq!(recorded.durations("cluster", "global").len(), 2);
}
