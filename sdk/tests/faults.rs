//! The client against a misbehaving API: every fault the mock server can
//! inject, and a server that is absent or restarts, under every policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use telepresence_kafka::{Client, ErrorKind, FailurePolicy, HeaderList};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};
use tokio::io::AsyncWriteExt;

mod api;
mod logs;
use api::alice_api;
use logs::Logs;

const ID: &str = "abc:orders";

fn alice() -> HeaderList<'static> {
    HeaderList::new(&[("x-dev", Some(b"alice"))])
}

/// The two sides: the cluster (no intercept ID) and a workstation.
const SIDES: [(&str, &str); 2] = [("cluster", ""), ("workstation", ID)];

/// A client of either side against one server: these tests are about what
/// failures do, so the check that the API serves the client's side is off
/// (`tests/sides.rs` tests it).
fn client(url: &str, intercept_id: &str, policy: FailurePolicy) -> Client {
    Client::builder()
        .api_url(url)
        .intercept_id(intercept_id)
        .side_check(false)
        .failure_policy(policy)
        .timeout(Duration::from_millis(300))
        .retries(2)
        .retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap()
}

/// What each policy does on each side when the API fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expected {
    Error,
    Answer(bool),
    /// Waits for the API, then gives its answer.
    Hold,
}

fn expected(policy: FailurePolicy, workstation: bool) -> Expected {
    match policy {
        FailurePolicy::Fail => Expected::Error,
        FailurePolicy::Consume => Expected::Answer(true),
        FailurePolicy::Skip => Expected::Answer(false),
        FailurePolicy::Auto if workstation => Expected::Hold,
        FailurePolicy::Auto => Expected::Answer(true),
        FailurePolicy::Hold => Expected::Hold,
        other => unreachable!("a policy this test does not know: {other:?}"),
    }
}

const POLICIES: [FailurePolicy; 5] = [
    FailurePolicy::Fail,
    FailurePolicy::Consume,
    FailurePolicy::Skip,
    FailurePolicy::Hold,
    FailurePolicy::Auto,
];

/// An API that can be made to fail and to answer again.
#[allow(async_fn_in_trait)]
trait Breakable {
    fn url(&self) -> String;
    async fn break_it(&mut self);
    async fn heal(&mut self);
}

/// A mock server with a fault injected while broken.
struct Faulty {
    server: MockServer,
    fault: Fault,
}

impl Breakable for Faulty {
    fn url(&self) -> String {
        self.server.url()
    }
    async fn break_it(&mut self) {
        self.server
            .admin()
            .inject_fault(self.fault.clone())
            .await
            .unwrap();
    }
    async fn heal(&mut self) {
        self.server.admin().clear_faults().await.unwrap();
    }
}

/// Runs one decision against the broken API under every policy on both
/// sides and checks the answer, the error's kind, or that it holds until
/// the API is healed and then gives the API's answer.
async fn check_every_policy(api: &mut impl Breakable, kind: ErrorKind, what: &str) {
    let url = api.url();
    for policy in POLICIES {
        for (side, id) in SIDES {
            api.break_it().await;
            let tp = client(&url, id, policy);
            match expected(policy, !id.is_empty()) {
                Expected::Error => {
                    let err = tp.should_consume(&alice()).await.expect_err(what);
                    assert_eq!(err.kind(), kind, "{what}, {side}: {err}");
                    let stats = tp.stats();
                    assert_eq!((stats.errors, stats.fallbacks, stats.held), (1, 0, 0));
                }
                Expected::Answer(answer) => {
                    let result = tp.should_consume(&alice()).await;
                    assert_eq!(result.unwrap(), answer, "{what}, {policy:?}, {side}");
                    let stats = tp.stats();
                    assert_eq!((stats.errors, stats.fallbacks), (1, 1), "{what}");
                    assert_eq!(stats.consumed + stats.skipped, 1);
                }
                Expected::Hold => {
                    let decision = tokio::spawn({
                        let tp = tp.clone();
                        async move { tp.should_consume(&alice()).await }
                    });
                    // Held through several failed attempts...
                    until(|| tp.stats().errors >= 3).await;
                    assert!(!decision.is_finished(), "{what}, {policy:?}, {side}: held");
                    // ...and answered once the API is back.
                    api.heal().await;
                    let held = tokio::time::timeout(Duration::from_secs(30), decision)
                        .await
                        .expect("the held decision ends once the API answers")
                        .unwrap()
                        .unwrap();
                    let fresh = client(&url, id, FailurePolicy::Fail);
                    let real = fresh.should_consume(&alice()).await.unwrap();
                    assert_eq!(held, real, "{what}, {policy:?}, {side}: the API's answer");
                    let stats = tp.stats();
                    assert_eq!(
                        (stats.held, stats.fallbacks),
                        (1, 0),
                        "{what}, {policy:?}, {side}: {stats:?}"
                    );
                    assert_eq!(stats.consumed + stats.skipped, 1);
                }
            }
            api.heal().await;
        }
    }
}

/// Waits for `condition`, checking every few milliseconds; a generous bound
/// turns a hang into a failure.
async fn until(condition: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(60), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the condition becomes true");
}

#[tokio::test]
async fn an_error_status_under_each_policy() {
    let mut api = Faulty {
        server: alice_api(Side::Agent, ID).await,
        fault: Fault::status(500),
    };
    check_every_policy(&mut api, ErrorKind::Status, "500").await;

    let server = api.server;
    server
        .admin()
        .inject_fault(Fault::status(500))
        .await
        .unwrap();
    let tp = client(&server.url(), "", FailurePolicy::Fail);
    let err = tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(
        err.server_message(),
        Some("mock fault: injected status 500")
    );
    assert_eq!(tp.stats().retries, 0, "an answer is not retried");
}

#[tokio::test]
async fn a_delay_past_the_timeout_under_each_policy() {
    let mut api = Faulty {
        server: alice_api(Side::Agent, ID).await,
        fault: Fault::delay(Duration::from_secs(5)),
    };
    check_every_policy(&mut api, ErrorKind::Timeout, "delay").await;
}

#[tokio::test]
async fn a_dropped_connection_under_each_policy() {
    let mut api = Faulty {
        server: alice_api(Side::Agent, ID).await,
        fault: Fault::close(),
    };
    check_every_policy(&mut api, ErrorKind::Connect, "close").await;
    let server = api.server;
    server.admin().inject_fault(Fault::close()).await.unwrap();
    let tp = client(&server.url(), "", FailurePolicy::Fail);
    tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(tp.stats().retries, 2, "connection errors are retried");
    assert_eq!(tp.stats().requests, 3);
}

#[tokio::test]
async fn a_single_dropped_connection_is_retried_transparently() {
    let server = alice_api(Side::Client, ID).await;
    server
        .admin()
        .inject_fault(Fault::close().times(1))
        .await
        .unwrap();
    let tp = client(&server.url(), ID, FailurePolicy::Fail);
    assert!(tp.should_consume(&alice()).await.unwrap());
    let stats = tp.stats();
    assert_eq!((stats.retries, stats.errors, stats.fallbacks), (1, 0, 0));
}

/// No server on the port while broken; a workstation's mock there once healed.
struct Absent {
    port: u16,
    server: Option<MockServer>,
}

impl Breakable for Absent {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    async fn break_it(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
    async fn heal(&mut self) {
        if self.server.is_none() {
            self.server = Some(
                MockServer::builder()
                    .listen(format!("127.0.0.1:{}", self.port))
                    .intercept(Intercept::new(ID).header("x-dev", "alice"))
                    .start()
                    .await
                    .unwrap(),
            );
        }
    }
}

#[tokio::test]
async fn a_server_that_is_not_started_under_each_policy() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut api = Absent { port, server: None };
    check_every_policy(&mut api, ErrorKind::Connect, "no server").await;
    api.break_it().await;
    let tp = client(&api.url(), "", FailurePolicy::Fail);
    let err = tp.healthz().await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot reach the Telepresence API at http://127.0.0.1:{port}/healthz"
        )),
        "{err}"
    );
}

#[tokio::test]
async fn a_server_restarted_mid_stream_under_each_policy() {
    let first = alice_api(Side::Client, ID).await;
    let address = first.address();
    // Clients that have talked to the first server and hold its connections.
    let clients: Vec<(FailurePolicy, Client)> = POLICIES
        .iter()
        .map(|&policy| (policy, client(&first.url(), ID, policy)))
        .collect();
    for (policy, tp) in &clients {
        assert!(
            tp.should_consume(&alice()).await.unwrap(),
            "{policy:?}: before"
        );
    }
    first.shutdown().await;

    let mut held = Vec::new();
    for (policy, tp) in &clients {
        match expected(*policy, true) {
            Expected::Error => {
                let result = tp.should_consume(&alice()).await;
                assert!(result.unwrap_err().is_connect(), "{policy:?}: down");
            }
            Expected::Answer(answer) => {
                let result = tp.should_consume(&alice()).await;
                assert_eq!(result.unwrap(), answer, "{policy:?}: down");
            }
            Expected::Hold => {
                let tp = tp.clone();
                let policy = *policy;
                held.push(tokio::spawn(async move {
                    (policy, tp.should_consume(&alice()).await.unwrap())
                }));
            }
        }
    }
    until(|| clients.iter().all(|(_, tp)| tp.stats().errors >= 1)).await;

    let second = MockServer::builder()
        .listen(address.to_string())
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap();
    let held_count = held.len();
    for decision in held {
        let (policy, answer) = decision.await.unwrap();
        assert!(answer, "{policy:?}: held, then the real answer");
    }
    for (policy, tp) in &clients {
        assert!(
            tp.should_consume(&alice()).await.unwrap(),
            "{policy:?}: back, real answers again"
        );
        let stats = tp.stats();
        assert_eq!(
            stats.consumed + stats.skipped,
            2 + u64::from(*policy != FailurePolicy::Fail),
            "{policy:?}"
        );
        assert!(stats.errors >= 1, "{policy:?}");
    }
    assert_eq!(
        second.admin().journal().await.unwrap().len(),
        held_count + clients.len(),
        "each held decision asked the new server once"
    );
}

#[tokio::test]
async fn intercept_info_returns_errors_whatever_the_policy() {
    let server = alice_api(Side::Client, ID).await;
    server
        .admin()
        .inject_fault(Fault::status(503).times(1))
        .await
        .unwrap();
    let tp = client(&server.url(), ID, FailurePolicy::Consume);
    let err = tp.intercept_info(&alice()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(tp.intercept_info(&alice()).await.unwrap().intercepted);
}

/// A server that answers `200` with `maybe` while broken, `true` once healed,
/// one request per connection.
struct Raw {
    url: String,
    broken: Arc<AtomicBool>,
}

impl Raw {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let broken = Arc::new(AtomicBool::new(true));
        let answer = broken.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
                let body = if answer.load(Ordering::SeqCst) {
                    "maybe"
                } else {
                    "true"
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            }
        });
        Self { url, broken }
    }
}

impl Breakable for Raw {
    fn url(&self) -> String {
        self.url.clone()
    }
    async fn break_it(&mut self) {
        self.broken.store(true, Ordering::SeqCst);
    }
    async fn heal(&mut self) {
        self.broken.store(false, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_bad_answer_under_each_policy() {
    let mut api = Raw::start().await;
    check_every_policy(&mut api, ErrorKind::BadAnswer, "bad answer").await;
    api.break_it().await;
    let url = api.url();
    let tp = client(&url, "", FailurePolicy::Fail);
    let err = tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a JSON boolean from the Telepresence API, got \"maybe\""
    );
}

/// Every outage shows: a line when it starts and one when it ends, naming the
/// API and how many decisions it affected, however close two outages are.
#[tokio::test]
async fn every_outage_is_reported_when_it_starts_and_when_it_ends() {
    let (logs, _guard) = Logs::capture();

    let server = alice_api(Side::Client, ID).await;
    let workstation = client(&server.url(), ID, FailurePolicy::Auto);
    let pod = client(&server.url(), "", FailurePolicy::Auto);
    // An outage ends at the first answer a second or more after its last
    // failure, so that a flapping API makes one outage.
    let quiet = Duration::from_millis(1100);
    for outage in 1..=2 {
        server
            .admin()
            .inject_fault(Fault::status(503).times(3))
            .await
            .unwrap();
        assert!(
            workstation.should_consume(&alice()).await.unwrap(),
            "held, then answered"
        );
        tokio::time::sleep(quiet).await;
        assert!(
            workstation.should_consume(&alice()).await.unwrap(),
            "the first answer after the quiet second ends the outage"
        );
        server
            .admin()
            .inject_fault(Fault::status(503).times(1))
            .await
            .unwrap();
        assert!(
            pod.should_consume(&alice()).await.unwrap(),
            "the pod falls back"
        );
        tokio::time::sleep(quiet).await;
        assert!(
            !pod.should_consume(&alice()).await.unwrap(),
            "and ends its outage"
        );
        let started = logs.lines("Telepresence API failing");
        let ended = logs.lines("Telepresence API answers again");
        assert_eq!(
            (started.len(), ended.len()),
            (2 * outage, 2 * outage),
            "{started:?}\n{ended:?}"
        );
        let url = server.url();
        assert!(
            started.iter().all(|l| l.contains(&format!("api={url}/"))),
            "{started:?}"
        );
        assert!(started[2 * outage - 2].contains("holding the decisions until it answers"));
        assert!(started[2 * outage - 1].contains("processing the messages here meanwhile"));
        assert!(
            ended[2 * outage - 2].contains("the outage affected 1 decisions")
                && ended[2 * outage - 2].contains("failed_attempts=3"),
            "{}",
            ended[2 * outage - 2]
        );
    }
    let stats = workstation.stats();
    assert_eq!((stats.held, stats.outages, stats.errors), (2, 2, 6));
    assert_eq!(pod.stats().outages, 2);
}
