//! The client against a misbehaving API: every fault the mock server can
//! inject, and a server that is absent or restarts, under every policy.

use std::time::Duration;

use telepresence_kafka::{Client, ErrorKind, FailurePolicy, HeaderList};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side};
use tokio::io::AsyncWriteExt;

const ID: &str = "abc:orders";

fn alice() -> HeaderList<'static> {
    HeaderList::new(&[("x-dev", Some(b"alice"))])
}

/// The two sides: the cluster (no intercept ID) and a workstation.
const SIDES: [(&str, &str); 2] = [("cluster", ""), ("workstation", ID)];

fn client(url: &str, intercept_id: &str, policy: FailurePolicy) -> Client {
    Client::builder()
        .api_url(url)
        .intercept_id(intercept_id)
        .failure_policy(policy)
        .timeout(Duration::from_millis(300))
        .retries(2)
        .retry_backoff(Duration::from_millis(5))
        .build()
        .unwrap()
}

async fn mock(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

/// What each policy answers on each side when the API fails: `None` is the error.
fn expected(policy: FailurePolicy, workstation: bool) -> Option<bool> {
    match policy {
        FailurePolicy::Fail => None,
        FailurePolicy::Consume => Some(true),
        FailurePolicy::Skip => Some(false),
        FailurePolicy::Auto => Some(!workstation),
    }
}

const POLICIES: [FailurePolicy; 4] = [
    FailurePolicy::Fail,
    FailurePolicy::Consume,
    FailurePolicy::Skip,
    FailurePolicy::Auto,
];

/// Runs one decision against `url` under every policy on both sides and
/// checks the answer, or the error's kind.
async fn check_every_policy(url: &str, kind: ErrorKind, what: &str) {
    for policy in POLICIES {
        for (side, id) in SIDES {
            let tp = client(url, id, policy);
            let result = tp.should_consume(&alice()).await;
            let stats = tp.stats();
            match expected(policy, !id.is_empty()) {
                None => {
                    let err = result.expect_err(what);
                    assert_eq!(err.kind(), kind, "{what}, {side}: {err}");
                    assert_eq!((stats.errors, stats.fallbacks), (1, 0));
                }
                Some(answer) => {
                    assert_eq!(result.unwrap(), answer, "{what}, {policy:?}, {side}");
                    assert_eq!((stats.errors, stats.fallbacks), (1, 1), "{what}");
                    assert_eq!(stats.consumed + stats.skipped, 1);
                }
            }
        }
    }
}

#[tokio::test]
async fn an_error_status_under_each_policy() {
    let server = mock(Side::Agent).await;
    server.inject(Fault::status(500)).unwrap();
    check_every_policy(&server.url(), ErrorKind::Status, "500").await;

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
    let server = mock(Side::Agent).await;
    server.inject(Fault::delay(Duration::from_secs(5))).unwrap();
    let started = std::time::Instant::now();
    check_every_policy(&server.url(), ErrorKind::Timeout, "delay").await;
    // 8 calls, each bounded by the 300 ms timeout, retries included.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_dropped_connection_under_each_policy() {
    let server = mock(Side::Agent).await;
    server.inject(Fault::close()).unwrap();
    check_every_policy(&server.url(), ErrorKind::Connect, "close").await;
    let tp = client(&server.url(), "", FailurePolicy::Fail);
    tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(tp.stats().retries, 2, "connection errors are retried");
    assert_eq!(tp.stats().requests, 3);
}

#[tokio::test]
async fn a_single_dropped_connection_is_retried_transparently() {
    let server = mock(Side::Client).await;
    server.inject(Fault::close().times(1)).unwrap();
    let tp = client(&server.url(), ID, FailurePolicy::Fail);
    assert!(tp.should_consume(&alice()).await.unwrap());
    let stats = tp.stats();
    assert_eq!((stats.retries, stats.errors, stats.fallbacks), (1, 0, 0));
}

#[tokio::test]
async fn a_server_that_is_not_started_under_each_policy() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    check_every_policy(
        &format!("http://127.0.0.1:{port}"),
        ErrorKind::Connect,
        "no server",
    )
    .await;
    let tp = client(&format!("http://127.0.0.1:{port}"), "", FailurePolicy::Fail);
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
    let first = mock(Side::Client).await;
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

    for (policy, tp) in &clients {
        let result = tp.should_consume(&alice()).await;
        match expected(*policy, true) {
            None => assert!(result.unwrap_err().is_connect(), "{policy:?}: down"),
            Some(answer) => assert_eq!(result.unwrap(), answer, "{policy:?}: down"),
        }
    }

    let second = MockServer::builder()
        .listen(address.to_string())
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap();
    for (policy, tp) in &clients {
        assert!(
            tp.should_consume(&alice()).await.unwrap(),
            "{policy:?}: back, real answers again"
        );
        let stats = tp.stats();
        assert_eq!(
            (stats.errors, stats.consumed + stats.skipped),
            (1, 2 + u64::from(*policy != FailurePolicy::Fail))
        );
    }
    assert_eq!(second.journal().len(), clients.len());
}

#[tokio::test]
async fn intercept_info_returns_errors_whatever_the_policy() {
    let server = mock(Side::Client).await;
    server.inject(Fault::status(503).times(1)).unwrap();
    let tp = client(&server.url(), ID, FailurePolicy::Consume);
    let err = tp.intercept_info(&alice()).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(tp.intercept_info(&alice()).await.unwrap().intercepted);
}

/// A server that answers `200` with whatever body it is given, once.
async fn raw_server(body: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    url
}

#[tokio::test]
async fn a_bad_answer_under_each_policy() {
    let url = raw_server("maybe").await;
    check_every_policy(&url, ErrorKind::BadAnswer, "bad answer").await;
    let tp = client(&url, "", FailurePolicy::Fail);
    let err = tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "expected a JSON boolean from the Telepresence API, got \"maybe\""
    );
}
