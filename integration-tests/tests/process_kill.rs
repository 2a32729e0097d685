//! Consumer processes killed with SIGKILL in mid-stream, twice on each side,
//! and started again: offsets are committed only as the stream adapter
//! stores them, so a restarted process resumes at or before every message
//! its predecessor had not finished. Nothing is lost; what is repeated is
//! only what a killed process had processed since its last commit.
//!
//! The broker is librdkafka's mock cluster, in this process; the consumers
//! take their partitions themselves (`TPK_ASSIGN`), so that no group
//! protocol (and no broker's handling of a dead member) stands between a
//! restart and its partitions. Rebalances are tested in
//! `sdk/tests/consumer_group.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use telepresence_kafka_examples::EmbeddedKafka;
use telepresence_kafka_integration_tests::scenario::{
    ConsumerProcess, PATIENCE, TOPIC, TestMessage, alices_intercept, ids, mixed_messages, produce,
};
use telepresence_mock_server::{ConsumerEnv, MockServer, Side};

const CONSUMER: &str = env!("CARGO_BIN_EXE_split-consumer");
const COUNT: usize = 6_000;

async fn api(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .journal_capacity(0)
        .intercept(alices_intercept())
        .start()
        .await
        .unwrap()
}

/// Runs one side through two kills and a last, clean run; returns every
/// run's processed ids, the killed ones first.
async fn kill_twice(bootstrap: &str, api: &ConsumerEnv, share: usize) -> Vec<Vec<usize>> {
    let assign = [("TPK_ASSIGN", "1")];
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = ConsumerProcess::spawn(CONSUMER, bootstrap, Some(api), &assign);
        // Killed once it has processed a third of its share (counting from
        // its own start): always in mid-stream.
        run.wait_for_processed(share / 3).await;
        let killed = run.kill().await;
        assert!(!killed.status.success(), "killed, not exited");
        runs.push(killed.processed);
    }
    let last = ConsumerProcess::spawn(CONSUMER, bootstrap, Some(api), &assign);
    // Done when every message of the share was processed by some run (the
    // last one also repeats what the killed ones had not committed).
    let done: BTreeSet<usize> = runs.iter().flatten().copied().collect();
    let finished_share = async {
        loop {
            let seen = &done | &last.processed().into_iter().collect();
            if seen.len() >= share {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, finished_share)
        .await
        .expect("the last run finishes the share");
    let finished = last.stop().await;
    assert!(finished.status.success(), "{}", finished.stderr);
    runs.push(finished.processed);
    runs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_killed_mid_stream_lose_nothing() {
    let kafka = EmbeddedKafka::start(TOPIC, 4).unwrap();
    let messages = mixed_messages(0..COUNT);
    produce(&kafka.bootstrap, &messages).await;
    let (pod_api, workstation_api) = (api(Side::Agent).await, api(Side::Client).await);

    let workstation_share = ids(&messages, TestMessage::matches_alice);
    let pod_share = ids(&messages, |m| !m.matches_alice());
    let (pod_env, workstation_env) = (pod_api.env(), workstation_api.env());
    let (pod_runs, workstation_runs) = tokio::join!(
        kill_twice(&kafka.bootstrap, &pod_env, pod_share.len()),
        kill_twice(&kafka.bootstrap, &workstation_env, workstation_share.len()),
    );

    for (side, runs, share) in [
        ("pod", &pod_runs, &pod_share),
        ("workstation", &workstation_runs, &workstation_share),
    ] {
        let all: Vec<usize> = runs.iter().flatten().copied().collect();
        let processed: BTreeSet<usize> = all.iter().copied().collect();
        assert_eq!(
            &processed, share,
            "{side}: nothing lost, nothing of the other side's"
        );
        for (index, run) in runs.iter().enumerate() {
            let unique: BTreeSet<usize> = run.iter().copied().collect();
            assert_eq!(
                unique.len(),
                run.len(),
                "{side}: run {index} repeats nothing itself"
            );
        }
        // A repeat is a message a killed run processed but had not committed,
        // processed again by the next run: at-least-once across a SIGKILL.
        let repeated = all.len() - processed.len();
        eprintln!(
            "{side}: {} processed across 3 runs, {repeated} repeated after the kills (processed but not yet committed)",
            processed.len()
        );
    }
}
