//! The client's connections to the API: kept alive and reused (with the
//! mock server and with Python's HTTP server), replaced when the server
//! closed them, and never made to buffer an answer without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use telepresence_kafka::{Client, ErrorKind, HeaderList};
use telepresence_mock_server::{Intercept, MockServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ID: &str = "abc:orders";

fn alice() -> HeaderList<'static> {
    HeaderList::new(&[("x-dev", Some(b"alice"))])
}

/// A workstation's API that sends alice's messages to the workstation.
async fn alice_api() -> MockServer {
    MockServer::builder()
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

fn client(url: &str) -> Client {
    Client::builder()
        .api_url(url)
        .intercept_id(ID)
        .side_check(false)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn decisions_one_after_another_share_one_connection() {
    let server = alice_api().await;
    let tp = client(&server.url());
    for _ in 0..5 {
        assert!(tp.should_consume(&alice()).await.unwrap());
    }
    let journal = server.admin().journal().await.unwrap();
    let connections: Vec<u64> = journal.iter().map(|entry| entry.connection).collect();
    assert_eq!(connections.len(), 5);
    assert!(
        connections.iter().all(|c| *c == connections[0]),
        "one kept-alive connection, got {connections:?}"
    );
}

#[tokio::test]
async fn decisions_in_flight_together_each_have_a_connection_and_keep_it() {
    let server = alice_api().await;
    let tp = client(&server.url());
    for _ in 0..3 {
        let answers =
            futures_util::future::join_all((0..8).map(|_| tp.should_consume(&alice()))).await;
        assert!(answers.into_iter().all(|answer| answer.unwrap()));
    }
    let journal = server.admin().journal().await.unwrap();
    let mut connections: Vec<u64> = journal.iter().map(|entry| entry.connection).collect();
    connections.sort_unstable();
    connections.dedup();
    assert_eq!(journal.len(), 24);
    assert!(
        connections.len() <= 8,
        "at most one connection per decision in flight, reused: {connections:?}"
    );
}

/// Answers one request per connection, then closes it without saying so
/// (no `Connection: close`), as a server whose idle timeout just struck;
/// counts the connections.
async fn answer_once_per_connection(answer: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            read_request(&mut stream).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            // After the client has its answer and has put the connection
            // back in its pool.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let _ = stream.shutdown().await;
        }
    });
    (url, accepted)
}

async fn read_request(stream: &mut TcpStream) {
    let mut request = Vec::new();
    let mut chunk = [0; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_is_replaced_without_a_retry_or_an_error() {
    let (url, accepted) = answer_once_per_connection("true").await;
    let tp = client(&url);
    for decision in 1..=4 {
        assert!(
            tp.should_consume(&alice()).await.unwrap(),
            "decision {decision}"
        );
        // The server's close reaches the idle connection before the next query.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = tp.stats();
    assert_eq!((stats.errors, stats.retries), (0, 0), "{stats:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        4,
        "a new connection each time"
    );
}

#[tokio::test]
async fn an_oversized_answer_is_refused_as_a_bad_answer() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            read_request(&mut stream).await;
            // Says 64 MiB and sends as much as the client reads.
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 67108864\r\n\r\n";
            let _ = stream.write_all(head.as_bytes()).await;
            let chunk = vec![b' '; 64 * 1024];
            while stream.write_all(&chunk).await.is_ok() {}
        }
    });
    let tp = Client::builder()
        .api_url(&url)
        .intercept_id(ID)
        .side_check(false)
        .failure_policy(telepresence_kafka::FailurePolicy::Fail)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let error = tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadAnswer, "{error}");
    assert!(
        error
            .to_string()
            .contains("answered more than 1048576 bytes"),
        "{error}"
    );
}

/// An HTTP/1.1 server the project did not write: Python's, answering `true`
/// and printing the client's port for each request.
const PYTHON_API: &str = r#"
import http.server, sys

class Api(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"true"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        print(self.client_address[1], self.path, flush=True)

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[tokio::test]
async fn pythons_http_server_is_asked_over_one_kept_alive_connection() {
    use std::io::BufRead;

    /// Stops the server however the test ends.
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut python = Stopped(
        std::process::Command::new("python3")
            .args(["-c", PYTHON_API])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs"),
    );
    let mut lines = std::io::BufReader::new(python.0.stdout.take().unwrap()).lines();
    let port = lines.next().unwrap().unwrap();
    let tp = Client::builder()
        .api_url(format!("http://127.0.0.1:{port}"))
        .intercept_id(ID)
        .side_check(false)
        .fixed_path("/orders/1")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..5 {
        assert!(tp.should_consume(&alice()).await.unwrap());
    }
    let asked: Vec<String> = (0..5).map(|_| lines.next().unwrap().unwrap()).collect();
    let first_port = asked[0].split(' ').next().unwrap();
    for line in &asked {
        let (client_port, path) = line.split_once(' ').unwrap();
        assert_eq!(client_port, first_port, "one connection: {asked:?}");
        assert_eq!(path, "/consume-here?path=%2Forders%2F1");
    }
}
