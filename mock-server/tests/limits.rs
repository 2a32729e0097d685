//! Limits on what one client may ask: sizes, counts, time, connections.

mod common;

use std::time::{Duration, Instant};

use common::ask;
use telepresence_mock_server::{DEFAULT_MAX_HEADERS, Limits, MockServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn server(limits: Limits) -> MockServer {
    MockServer::builder().limits(limits).start().await.unwrap()
}

/// Sends raw bytes and reads until the server closes or answers fully.
async fn raw(server: &MockServer, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Go's server has no header count limit, so neither has the mock by
/// default, up to [`DEFAULT_MAX_HEADERS`]; a lower count can be set.
#[tokio::test]
async fn many_headers_are_accepted_unless_a_lower_count_is_set() {
    let mut request =
        String::from("GET /consume-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for n in 0..150 {
        request.push_str(&format!("x-h{n}: v\r\n"));
    }
    request.push_str("\r\n");
    let server = server(Limits::default()).await;
    let answer = raw(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let strict = self::server(Limits {
        max_headers: 100,
        ..Limits::default()
    })
    .await;
    let answer = raw(&strict, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

    let mut thousands =
        String::from("GET /consume-here HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for n in 0..DEFAULT_MAX_HEADERS - 10 {
        thousands.push_str(&format!("x-h{n}: v\r\n"));
    }
    thousands.push_str("\r\n");
    let answer = raw(&server, thousands.as_bytes()).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "{}",
        &answer[..answer.len().min(200)]
    );
}

#[tokio::test]
async fn an_oversized_head_gets_431() {
    let server = server(Limits {
        max_header_bytes: 16 * 1024,
        ..Limits::default()
    })
    .await;
    let big = "v".repeat(20 * 1024);
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {big}\r\nConnection: close\r\n\r\n");
    let answer = raw(&server, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: {}\r\nConnection: close\r\n\r\n",
        "v".repeat(8 * 1024)
    );
    assert!(
        raw(&server, fits.as_bytes())
            .await
            .starts_with("HTTP/1.1 200 ")
    );
}

#[tokio::test]
async fn an_oversized_form_body_gets_413() {
    let server = server(Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    })
    .await;
    let body = format!("path=/a&pad={}", "x".repeat(2048));
    let answer = ask(&server.url(), "/consume-here").form(&body).send().await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.body, "http: request body too large\n");
    let small = ask(&server.url(), "/consume-here")
        .form("path=/a")
        .send()
        .await;
    assert_eq!(small.status, 200);
}

#[tokio::test]
async fn a_client_too_slow_with_its_headers_is_disconnected() {
    let server = server(Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server closes the connection");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains(" 200 "),
        "no answer to half a request"
    );
}

#[tokio::test]
async fn a_client_too_slow_with_its_form_body_gets_408() {
    let server = server(Limits {
        read_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut stream = TcpStream::connect(server.address()).await.unwrap();
    stream
        .write_all(
            b"POST /consume-here HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\npath=",
        )
        .await
        .unwrap();
    let mut answer = vec![0; 1024];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_one() {
    let server = server(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.address()).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = [0; 256];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200 "));
        held.push(stream);
    }
    // The third is accepted by the kernel but not served while two are held.
    let mut third = TcpStream::connect(server.address()).await.unwrap();
    third.write_all(request).await.unwrap();
    let mut answer = [0; 256];
    let waited = tokio::time::timeout(Duration::from_millis(300), third.read(&mut answer)).await;
    assert!(waited.is_err(), "not served while the cap is reached");
    drop(held.pop());
    let n = tokio::time::timeout(Duration::from_secs(10), third.read(&mut answer))
        .await
        .expect("served once a connection is free")
        .unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200 "));
}
