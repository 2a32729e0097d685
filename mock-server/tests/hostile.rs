//! The mock server against hostile and careless clients: huge, slow,
//! half-closed and malformed requests, and large admin operations. Each test
//! asserts what a client sees (answers, status codes) or what the server
//! holds (its own accounting), never how long something took.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{CALLER, ask};
use serde_json::json;
use telepresence_mock_server::{Fault, Intercept, JOURNAL_VALUE_LIMIT, Limits, MockServer, Side};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(builder: telepresence_mock_server::MockServerBuilder) -> MockServer {
    builder.start().await.unwrap()
}

/// Sends `request`, optionally shuts the write side, and reads the answer
/// until the server closes (bounded, so that a hang fails the test).
async fn exchange(server: &MockServer, request: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    stream.write_all(request).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn body_of(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, body)| body)
}

/// A client that shuts down its write side once its request is sent still
/// gets its answer, every time, whatever the request.
#[tokio::test]
async fn half_closed_clients_get_their_answers() {
    let server =
        server(MockServer::builder().intercept(Intercept::new("i").header("x-dev", "alice"))).await;
    let requests: [&[u8]; 4] = [
        b"GET /consume-here HTTP/1.1\r\nHost: x\r\nx-telepresence-caller-intercept-id: i\r\nx-dev: alice\r\n\r\n",
        b"POST /consume-here HTTP/1.1\r\nHost: x\r\nx-telepresence-caller-intercept-id: i\r\nx-dev: alice\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\npath=/a",
        b"GET /consume-here HTTP/1.0\r\nx-telepresence-caller-intercept-id: i\r\nx-dev: alice\r\n\r\n",
        b"GET /intercept-info HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-telepresence-caller-intercept-id: i\r\nx-dev: alice\r\n\r\n",
    ];
    for request in requests {
        for round in 0..50 {
            // Every other round the answer is held back a little, so that the
            // end of the request reaches the server before the answer is made.
            if round % 2 == 1 {
                server
                    .admin()
                    .inject_fault(Fault::delay(Duration::from_millis(5)).times(1))
                    .await
                    .unwrap();
            }
            let answer = exchange(&server, request, true).await;
            assert!(
                answer.starts_with("HTTP/1.") && answer.contains(" 200 OK\r\n"),
                "round {round} of {:?}: {answer:?}",
                String::from_utf8_lossy(request)
            );
            assert!(
                body_of(&answer).starts_with("true")
                    || body_of(&answer).contains("\"intercepted\":true"),
                "{answer}"
            );
        }
    }
}

/// Megabytes of path and header per request: the journal keeps a bounded
/// share of each, cut with a marker, and its bytes within its budget; its
/// answer comes in pages.
#[tokio::test]
async fn the_journal_stays_within_its_byte_budget_whatever_the_requests() {
    let budget = 256 * 1024;
    let server = server(MockServer::builder().journal_bytes(budget)).await;
    let client = reqwest::Client::new();
    let path = "p".repeat(3 << 20);
    for _ in 0..5 {
        let answer = client
            .post(format!("{}/intercept-info", server.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-big", "v".repeat(60_000))
            .body(format!("path={path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let status = ask(&server.url(), "/_mock/").send().await.json();
    let bytes = status["journal"]["bytes"].as_u64().unwrap() as usize;
    assert!(bytes <= budget, "{bytes} bytes kept, budget {budget}");
    let entry = &server.admin().journal().await.unwrap()[0];
    let marker = format!("…[truncated: {} bytes]", 3 << 20);
    assert!(
        entry.path.ends_with(&marker),
        "the path is cut, its length told"
    );
    assert_eq!(entry.path.len(), JOURNAL_VALUE_LIMIT + marker.len());
    assert!(
        entry
            .header("x-big")
            .unwrap()
            .ends_with("…[truncated: 60000 bytes]")
    );

    for i in 0..30 {
        ask(&server.url(), &format!("/consume-here?path={i}"))
            .send()
            .await;
    }
    let client = reqwest::Client::new();
    let mut after = 0;
    let mut pages = 0;
    let mut read = 0;
    loop {
        let page = client
            .get(format!(
                "{}/_mock/journal?after={after}&limit=7",
                server.url()
            ))
            .send()
            .await
            .unwrap();
        let more = page.headers()["x-journal-more"] == "true";
        let entries: Vec<serde_json::Value> =
            serde_json::from_str(&page.text().await.unwrap()).unwrap();
        assert!(entries.len() <= 7);
        read += entries.len();
        pages += 1;
        match entries.last() {
            Some(last) => after = last["seq"].as_u64().unwrap(),
            None => break,
        }
        if !more {
            break;
        }
    }
    assert_eq!(
        read,
        server.admin().journal().await.unwrap().len(),
        "every entry, page by page"
    );
    assert!(pages >= 5, "{pages} pages");
}

/// An admin body that announces a megabyte and sends one byte is answered
/// `408` once the read timeout passes, and frees its connection: twenty of
/// them under a cap of twenty connections do not starve anyone for good.
#[tokio::test]
async fn stalled_admin_bodies_time_out_and_free_their_connections() {
    let server = server(MockServer::builder().limits(Limits {
        read_timeout: Duration::from_millis(300),
        max_connections: 20,
        ..Limits::default()
    }))
    .await;
    let stalled = b"POST /_mock/faults HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{";
    let answers =
        futures_util::future::join_all((0..20).map(|_| exchange(&server, stalled, false))).await;
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(
            body_of(answer).contains("\"error\":\"http: request body read timeout"),
            "{answer}"
        );
    }
    let health = ask(&server.url(), "/healthz").send().await;
    assert_eq!(health.status, 200);
}

/// Bodies that are no valid HTTP get a `400` that says so, not `413`.
#[tokio::test]
async fn malformed_bodies_get_a_400_that_says_what_is_wrong() {
    let server = server(MockServer::builder()).await;
    let bad_chunk = b"POST /consume-here HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\npath=/a\r\n0\r\n\r\n";
    let answer = exchange(&server, bad_chunk, false).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        body_of(&answer).starts_with("http: malformed request body: "),
        "{answer}"
    );

    let truncated = b"POST /consume-here HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\npath=/a";
    let answer = exchange(&server, truncated, true).await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        body_of(&answer).starts_with("http: malformed request body: "),
        "{answer}"
    );
}

/// Every admin answer is `{"error": ...}` JSON, a JSON body must be one
/// value and nothing after it, and faults that could never apply are refused.
#[tokio::test]
async fn admin_errors_are_json_and_name_the_problem() {
    let server = server(MockServer::builder().limits(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    }))
    .await;
    let url = server.url();
    let cases = [
        ask(&url, "/_mock/journal").method("PATCH"),
        ask(&url, "/_mock/faults").body(
            "application/json",
            &format!("{{\"status\": 500, \"x\": \"{}\"}}", "y".repeat(2000)),
        ),
        ask(&url, "/_mock/faults").body("application/json", r#"{"status": 500} {"close": true}"#),
        ask(&url, "/_mock/faults").body("application/json", r#"{"status": 500, "times": 0}"#),
        ask(&url, "/_mock/faults").body(
            "application/json",
            r#"{"status": 500, "endpoints": ["/_mock/intercepts"]}"#,
        ),
        ask(&url, "/_mock/journal?limit=0"),
    ];
    let expected = [
        (405, "does not take that method"),
        (413, "http: request body too large"),
        (400, "trailing characters"),
        (400, "times: 0 would fault no request"),
        (400, "is the admin API, which faults never touch"),
        (400, "limit: 0 is not in 1..=10000"),
    ];
    for (request, (status, message)) in cases.into_iter().zip(expected) {
        let answer = request.send().await;
        assert_eq!(answer.status, status, "{}", answer.body);
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        let error = answer.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message), "{error}");
    }
}

/// The bearer scheme is compared without regard to case, the token exactly.
#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let server = server(MockServer::builder().admin_token("s3cret")).await;
    for (authorization, status) in [
        ("Bearer s3cret", 200),
        ("bearer s3cret", 200),
        ("BEARER s3cret", 200),
        ("Bearer S3CRET", 401),
        ("Basic s3cret", 401),
        ("Bearers3cret", 401),
    ] {
        let answer = ask(&server.url(), "/_mock/")
            .header("authorization", authorization)
            .send()
            .await;
        assert_eq!(answer.status, status, "{authorization}");
    }
}

/// Replacing the set with 40 000 intercepts, then editing it: every edit
/// works, deleting an unknown ID rebuilds nothing, and health checks are
/// answered while the admin operations run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_intercept_sets_are_edited_while_health_checks_answer() {
    let server = Arc::new(server(MockServer::builder().side(Side::Agent)).await);
    let url = server.url();
    let busy = Arc::new(AtomicBool::new(true));
    let (answered, answered_during) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let health = tokio::spawn({
        let (url, busy, answered, answered_during) = (
            url.clone(),
            busy.clone(),
            answered.clone(),
            answered_during.clone(),
        );
        async move {
            let client = reqwest::Client::new();
            while busy.load(Ordering::SeqCst) {
                let ok = client
                    .get(format!("{url}/healthz"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                assert!(ok, "health checks answer during admin operations");
                answered.fetch_add(1, Ordering::SeqCst);
                if busy.load(Ordering::SeqCst) {
                    answered_during.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    let intercepts: Vec<serde_json::Value> = (0..40_000)
        .map(|n| json!({"id": format!("i{n:05}"), "headers": {"x-dev": format!("dev-{n}")}}))
        .collect();
    let body = serde_json::to_string(&intercepts).unwrap();
    let limits_ok = reqwest::Client::new()
        .put(format!("{url}/_mock/intercepts"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(limits_ok.status(), 200);
    assert_eq!(server.admin().intercepts().await.unwrap().len(), 40_000);
    for round in 0..20 {
        let unknown = ask(&url, &format!("/_mock/intercepts/nobody-{round}"))
            .method("DELETE")
            .send()
            .await;
        assert_eq!(unknown.status, 404);
        let added = ask(&url, "/_mock/intercepts")
            .body(
                "application/json",
                &format!(r#"{{"id": "extra-{round}", "headers": {{"x-dev": "extra"}}}}"#),
            )
            .send()
            .await;
        assert_eq!(added.status, 201, "{}", added.body);
        let removed = ask(&url, &format!("/_mock/intercepts/i{round:05}"))
            .method("DELETE")
            .send()
            .await;
        assert_eq!(removed.status, 204);
    }
    assert_eq!(server.admin().intercepts().await.unwrap().len(), 40_000);
    let decided = ask(&url, "/intercept-info")
        .header("x-dev", "dev-39999")
        .send()
        .await;
    assert_eq!(decided.json()["intercepted"], true);
    busy.store(false, Ordering::SeqCst);
    health.await.unwrap();
    assert!(answered.load(Ordering::SeqCst) > 0);
    assert!(answered_during.load(Ordering::SeqCst) > 0);
}

/// A slow regular expression over a large path is evaluated off the request
/// workers: health checks are answered while it runs, and its own answer is
/// right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_match_over_a_large_input_does_not_hold_the_server() {
    let server =
        server(MockServer::builder().intercept(Intercept::new("i").path_regex(r"\pL{200}z"))).await;
    let url = server.url();
    // Letters of many scripts and no `z`: the automaton works hard, and the
    // answer is "no match". Past the size matched off the workers (64 KiB),
    // and slow enough in a debug build for health checks to overlap it many
    // times.
    let path: String = "aé中бxλ".chars().cycle().take(96 * 1024).collect();
    // As many as the runtime has workers: were they matched on the workers,
    // nothing else could be answered until one of them is done.
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let (url, path) = (url.clone(), path.clone());
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{url}/consume-here"))
                    .header(CALLER, "i")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(format!("path={path}"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut answered_meanwhile = 0;
    while !slow.iter().any(tokio::task::JoinHandle::is_finished) {
        assert_eq!(ask(&url, "/healthz").send().await.status, 200);
        answered_meanwhile += 1;
    }
    for answer in slow {
        assert_eq!(answer.await.unwrap(), "false");
    }
    eprintln!("{answered_meanwhile} health checks answered during the match");
    // Thousands when the matches run off the workers; one or two otherwise.
    assert!(answered_meanwhile >= 20, "{answered_meanwhile}");
}

/// The resident memory of the server process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").parse().ok())
        .unwrap();
    kib * 1024
}

/// Thirty form bodies of 9 MiB: the process stays below 128 MiB (about
/// 75 MiB here, what the allocator keeps of the freed buffers), since the
/// journal keeps only a few KiB of each; it used to keep them whole.
#[tokio::test]
async fn huge_form_bodies_leave_the_process_small() {
    let server = common::process::start(&["--intercept-id", "i"]).await;
    let pid = server.child.id().unwrap();
    let before = rss(pid);
    let client = reqwest::Client::new();
    let body = format!("path={}", "p".repeat(9 << 20));
    for _ in 0..30 {
        let answer = client
            .post(format!("{}/intercept-info", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let after = rss(pid);
    eprintln!("rss {} MiB before, {} MiB after", before >> 20, after >> 20);
    assert!(after < 128 << 20, "{} MiB", after >> 20);
}

/// A hundred thousand intercepts in a configuration file: the server starts
/// and answers from them.
#[tokio::test]
async fn a_hundred_thousand_intercepts_in_a_config_file() {
    let dir = common::process::tempdir();
    let file = dir.join("many.yaml");
    let mut yaml = String::from("side: agent\nintercepts:\n");
    for n in 0..100_000 {
        yaml.push_str(&format!(
            "  - {{id: i{n:06}, headers: {{x-dev: dev-{n}}}}}\n"
        ));
    }
    std::fs::write(&file, yaml).unwrap();
    let server = common::process::start(&["--config", file.to_str().unwrap()]).await;
    let answer = ask(&server.url, "/intercept-info")
        .header("x-dev", "dev-99999")
        .send()
        .await;
    assert_eq!(answer.json()["intercepted"], true);
}

/// Go's server refuses an HTTP/1.1 request without exactly one `Host`
/// header before Telepresence's handlers see it (`400`, the reason in the
/// status line and the body) and closes the connection; the journal has no
/// entry for it. A client that forgets `Host` learns it here, not against
/// the real API.
#[tokio::test]
async fn an_http_1_1_request_needs_one_host_header_as_go_wants() {
    let server =
        server(MockServer::builder().intercept(Intercept::new("i").header("x-dev", "alice"))).await;
    let cases: [(&[u8], &str); 3] = [
        (
            b"GET /consume-here HTTP/1.1\r\nx-telepresence-caller-intercept-id: i\r\nx-dev: alice\r\n\r\n",
            "missing required Host header",
        ),
        (b"GET /healthz HTTP/1.1\r\n\r\n", "missing required Host header"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "too many Host headers",
        ),
    ];
    for (request, reason) in cases {
        let mut stream = TcpStream::connect(server.address()).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        // The server closes the connection: reading to its end finishes.
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer))
            .await
            .expect("the connection is closed after the refusal")
            .unwrap();
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 400 Bad Request: {reason}\r\n")),
            "{answer:?}"
        );
        assert!(
            answer.contains("content-type: text/plain; charset=utf-8\r\n"),
            "{answer:?}"
        );
        assert_eq!(body_of(&answer), format!("400 Bad Request: {reason}"));
    }
    assert!(server.admin().journal().await.unwrap().is_empty());
    // HTTP/1.0 needs no `Host`.
    let answer = exchange(&server, b"GET /healthz HTTP/1.0\r\n\r\n", false).await;
    assert!(answer.starts_with("HTTP/1.0 200 OK\r\n"), "{answer:?}");
}
