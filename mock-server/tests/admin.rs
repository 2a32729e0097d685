//! The `/_mock/` admin API, the journal and fault injection, over real HTTP.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{CALLER, answer, ask, json_answer};
use serde_json::json;
use telepresence_mock_server::{Fault, Intercept, MockServer, Reason, Side, Wire};

async fn server() -> MockServer {
    MockServer::builder()
        .intercept(Intercept::new("a").header("x", "1"))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn intercepts_can_be_listed_added_replaced_and_deleted() {
    let server = server().await;
    let url = server.url();
    let consume = async |caller: &str| {
        ask(&url, "/consume-here")
            .caller(caller)
            .header("x", "1")
            .send()
            .await
            .body
    };

    let list = ask(&url, "/_mock/intercepts").send().await;
    assert_eq!(
        list.json(),
        json!([{"id": "a", "container_port": 8080, "headers": {"x": "1"}}])
    );

    let added = ask(&url, "/_mock/intercepts")
        .body(
            "application/json",
            r#"{"id": "b/c:d", "metadata": {"k": "v"}}"#,
        )
        .send()
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(
        consume("b/c:d").await,
        "true",
        "the next request sees the new intercept"
    );
    let one = ask(&url, "/_mock/intercepts/b/c:d").send().await;
    assert_eq!(one.json()["metadata"], json!({"k": "v"}));

    let replaced = ask(&url, "/_mock/intercepts")
        .method("PUT")
        .body(
            "application/json",
            r#"[{"id": "z", "headers": {"x": "2"}}]"#,
        )
        .send()
        .await;
    assert_eq!(replaced.status, 200);
    assert_eq!(replaced.json().as_array().unwrap().len(), 1);
    assert_eq!(consume("a").await, "false", "replaced away");
    assert_eq!(
        server.admin().intercepts().await.unwrap(),
        [Intercept::new("z").header("x", "2")]
    );

    let deleted = ask(&url, "/_mock/intercepts/z")
        .method("DELETE")
        .send()
        .await;
    assert_eq!(deleted.status, 204);
    let again = ask(&url, "/_mock/intercepts/z")
        .method("DELETE")
        .send()
        .await;
    assert_eq!(again.status, 404);
    assert!(
        again.body.contains(r#"no intercept with id \"z\""#),
        "{}",
        again.body
    );

    server
        .admin()
        .add_intercept(Intercept::new("q"))
        .await
        .unwrap();
    let cleared = ask(&url, "/_mock/intercepts").method("DELETE").send().await;
    assert_eq!(cleared.status, 204);
    assert!(server.admin().intercepts().await.unwrap().is_empty());
}

/// A server mocking a release before 2.25, which refuses more than today's.
async fn legacy_server() -> MockServer {
    MockServer::builder()
        .telepresence_version("2.24".parse().unwrap())
        .intercept(Intercept::new("a").header("x", "1"))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn bad_intercepts_are_refused_naming_the_key() {
    let server = legacy_server().await;
    let post = async |body: &str| {
        ask(&server.url(), "/_mock/intercepts")
            .body("application/json", body)
            .send()
            .await
    };
    let cases = [
        (
            r#"{"id": "n", "path_regex": "("}"#,
            400,
            "path_regex: invalid regular expression",
        ),
        (
            r#"{"id": "n", "path_equal": "/a", "path_regex": "b"}"#,
            400,
            "path_regex: at most one path filter is allowed before Telepresence 2.25",
        ),
        (
            r#"{"id": "n", "path_equal": ["/a", "/b"]}"#,
            400,
            "path_equal: at most one path filter is allowed before Telepresence 2.25, but path_equal has 2 values",
        ),
        (
            r#"{"id": "n", "container_port": 70000}"#,
            400,
            "container_port: invalid value: integer `70000`",
        ),
        (
            r#"{"id": "n", "headers": {"x": ["1"]}}"#,
            400,
            "headers.x: invalid type",
        ),
        (
            r#"{"id": "n", "colour": "red"}"#,
            400,
            "unknown field `colour`",
        ),
        (r#"{"id": "a"}"#, 409, r#"id: duplicate intercept ID"#),
        ("not json", 400, "invalid JSON body"),
    ];
    for (body, status, message) in cases {
        let got = post(body).await;
        assert_eq!(got.status, status, "{body}: {}", got.body);
        assert_eq!(got.content_type.as_deref(), Some("application/json"));
        let error = got.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains(message), "{body}: {error}");
    }
    let got = ask(&server.url(), "/_mock/intercepts")
        .method("PUT")
        .body(
            "application/json",
            r#"[{"id": "a"}, {"id": "b", "path_regex": "["}]"#,
        )
        .send()
        .await;
    assert_eq!(got.status, 400);
    assert!(
        got.body.contains(r#"intercepts[1] (\"b\"): path_regex"#),
        "{}",
        got.body
    );
    assert_eq!(
        server.admin().intercepts().await.unwrap().len(),
        1,
        "a refused replacement changes nothing"
    );
}

#[tokio::test]
async fn current_releases_accept_path_lists_and_literal_regexes_over_the_admin_api() {
    let server = MockServer::builder()
        .side(Side::Agent)
        .workload_ports([8080, 9090])
        .start()
        .await
        .unwrap();
    let url = server.url();
    let added = ask(&url, "/_mock/intercepts")
        .body(
            "application/json",
            r#"{"id": "n", "path_equal": ["/a", "/b"], "path_regex": "(x", "headers": {"x-dev": "[dev"}}"#,
        )
        .send()
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(
        added.json()["path_equal"],
        json!(["/a", "/b"]),
        "lists are kept as lists"
    );
    let decide = async |path: &str, dev: &str| {
        ask(&url, &format!("/intercept-info?path={path}"))
            .header("x-dev", dev)
            .send()
            .await
            .json()["intercepted"]
            .as_bool()
            .unwrap()
    };
    assert!(
        decide("/b", "[dev").await,
        "a path of the list, the literal header"
    );
    assert!(decide("(x", "[dev").await, "the literal path regex");
    assert!(!decide("/c", "[dev").await);
    assert!(!decide("/a", "dev").await);
    let elsewhere = ask(&url, "/_mock/intercepts")
        .body("application/json", r#"{"id": "p", "container_port": 7070}"#)
        .send()
        .await;
    assert_eq!(elsewhere.status, 400);
    assert_eq!(
        elsewhere.json()["error"],
        r#"intercepts[1] ("p"): container_port: 7070 is not a port of the workload (container_ports: 8080, 9090)"#
    );
}

#[tokio::test]
async fn the_journal_records_each_request_and_its_answer() {
    let server = server().await;
    let url = server.url();
    ask(&url, "/consume-here?path=%2Fapi&containerPort=8080")
        .caller("a")
        .header("x", "1")
        .header("x", "2")
        .send()
        .await;
    ask(&url, "/intercept-info")
        .method("POST")
        .form("path=/f")
        .send()
        .await;
    ask(&url, "/healthz").send().await;
    ask(&url, "/nowhere").send().await;
    ask(&url, "/_mock/").send().await;

    let journal = server.admin().journal().await.unwrap();
    let summary: Vec<(&str, &str, &str, Option<u16>)> = journal
        .iter()
        .map(|e| {
            (
                e.method.as_str(),
                e.endpoint.as_str(),
                e.path.as_str(),
                e.status,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("GET", "/consume-here", "/api", Some(200)),
            ("POST", "/intercept-info", "/f", Some(200)),
            ("GET", "/healthz", "", Some(200)),
            ("GET", "/nowhere", "", Some(404)),
        ],
        "admin requests are not journaled"
    );
    let first = &journal[0];
    assert_eq!(
        (first.container_port.as_str(), first.caller_id.as_str()),
        ("8080", "a")
    );
    assert_eq!(first.answer, "true");
    assert_eq!(
        first.intercept.as_deref(),
        Some("a"),
        "the intercept matched"
    );
    assert_eq!(journal[1].intercept, None, "no caller, nothing matched");
    assert_eq!(journal[2].intercept, None, "no decision");
    // Each decision carries its reason; requests without one carry none.
    assert_eq!(
        first.reason,
        Some(Reason::Matched {
            intercept: "a".into(),
            passed_over: vec![]
        })
    );
    assert_eq!(journal[1].reason, Some(Reason::NoCallerId));
    assert_eq!(journal[2].reason, None, "/healthz decides nothing");
    assert_eq!(journal[3].reason, None, "neither does a 404");
    let xs: Vec<&str> = first
        .headers
        .iter()
        .filter(|(n, _)| n == "x")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(xs, ["1", "2"], "repeated headers are kept in order");
    assert_eq!(
        journal[1].answer,
        r#"{"intercepted":false,"clientSide":true}"#
    );
    assert!(
        journal
            .windows(2)
            .all(|w| w[0].seq < w[1].seq && w[0].unix_ms <= w[1].unix_ms)
    );

    let over_http = ask(&url, "/_mock/journal?endpoint=/consume-here")
        .send()
        .await
        .json();
    assert_eq!(over_http.as_array().unwrap().len(), 1);
    assert_eq!(over_http[0]["caller_id"], "a");
    assert_eq!(over_http[0]["intercept"], "a");
    assert_eq!(
        over_http[0]["reason"],
        json!({ "kind": "matched", "intercept": "a" })
    );
    let after = ask(&url, &format!("/_mock/journal?after={}", journal[2].seq))
        .send()
        .await
        .json();
    assert_eq!(after.as_array().unwrap().len(), 1);
    assert_eq!(after[0]["endpoint"], "/nowhere");
    let bad = ask(&url, "/_mock/journal?after=x").send().await;
    assert_eq!(bad.status, 400);

    let cleared = ask(&url, "/_mock/journal").method("DELETE").send().await;
    assert_eq!(cleared.status, 204);
    assert!(server.admin().journal().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_journal_says_which_filter_failed_and_what_it_saw() {
    let server = MockServer::builder()
        .side(Side::Agent)
        .intercept(Intercept::new("a").header("x-dev", "alice"))
        .intercept(Intercept::new("b").path_prefix("/api"))
        .start()
        .await
        .unwrap();
    ask(&server.url(), "/consume-here?path=/web")
        .header("x-dev", "bob")
        .send()
        .await;
    // The intercepts change; the entry keeps the reason of its own time.
    server.admin().clear_intercepts().await.unwrap();
    // A request the journal keeps only in part has no reason.
    ask(&server.url(), "/consume-here")
        .header("x-dev", &"v".repeat(10_000))
        .send()
        .await;
    let journal = server.admin().journal().await.unwrap();
    let Some(Reason::NoMatch {
        container_port,
        candidates,
        unlisted,
        ..
    }) = &journal[0].reason
    else {
        panic!("{:?}", journal[0].reason);
    };
    assert_eq!((*container_port, *unlisted), (Some(8080), 0));
    let text: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            r#"a: header x-dev: expected "alice", got "bob""#,
            r#"b: path "/web" matches none of: starting with "/api""#
        ]
    );
    assert_eq!(journal[1].status, Some(200));
    assert_eq!(
        journal[1].reason, None,
        "the value was cut: {:?}",
        journal[1].reason
    );
}

#[tokio::test]
async fn the_journal_is_bounded() {
    let server = MockServer::builder()
        .journal_capacity(5)
        .start()
        .await
        .unwrap();
    for i in 0..20 {
        ask(&server.url(), &format!("/consume-here?path={i}"))
            .send()
            .await;
    }
    let paths: Vec<String> = server
        .admin()
        .journal()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(paths, ["15", "16", "17", "18", "19"]);
    let status = ask(&server.url(), "/_mock/").send().await.json();
    assert_eq!(status["journal"]["capacity"], 5);
    assert_eq!(status["journal"]["entries"], 5);
    assert_eq!(status["journal"]["budget_bytes"], 32 << 20);
    assert!(status["journal"]["bytes"].as_u64().unwrap() < 5 * 1024);
}

#[tokio::test]
async fn a_status_fault_answers_the_next_n_requests_then_goes() {
    let server = server().await;
    let url = server.url();
    let added = ask(&url, "/_mock/faults")
        .body("application/json", r#"{"status": 503, "times": 2}"#)
        .send()
        .await;
    assert_eq!(added.status, 201);
    assert_eq!(
        added.json(),
        json!([{"status": 503, "times": 2, "remaining": 2}])
    );
    let faulted = answer(
        503,
        Some("application/json"),
        r#"{"error":"mock fault: injected status 503"}"#,
    );
    assert_eq!(ask(&url, "/consume-here").send().await, faulted);
    assert_eq!(ask(&url, "/healthz").send().await, faulted);
    assert_eq!(
        ask(&url, "/consume-here").send().await,
        json_answer("false")
    );
    assert!(
        ask(&url, "/_mock/faults")
            .send()
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
    );
    let journal = server.admin().journal().await.unwrap();
    assert_eq!(journal[0].fault.as_deref(), Some("status 503"));
    assert_eq!(journal[2].fault, None);
}

#[tokio::test]
async fn status_faults_follow_the_wire_format() {
    let server = MockServer::builder()
        .wire(Wire::V2_4)
        .start()
        .await
        .unwrap();
    server
        .admin()
        .inject_fault(Fault::status(500))
        .await
        .unwrap();
    let got = ask(&server.url(), "/consume-here").send().await;
    assert_eq!(
        got,
        answer(
            500,
            Some("text/plain; charset=utf-8"),
            "mock fault: injected status 500\n"
        )
    );
}

#[tokio::test]
async fn a_fault_can_target_one_endpoint_and_be_cleared() {
    let server = server().await;
    let url = server.url();
    server
        .admin()
        .inject_fault(Fault::status(500).endpoint("/intercept-info"))
        .await
        .unwrap();
    assert_eq!(ask(&url, "/consume-here").send().await.status, 200);
    assert_eq!(ask(&url, "/intercept-info").send().await.status, 500);
    let cleared = ask(&url, "/_mock/faults").method("DELETE").send().await;
    assert_eq!(cleared.status, 204);
    assert_eq!(ask(&url, "/intercept-info").send().await.status, 200);
}

#[tokio::test]
async fn a_fractional_fault_hits_some_requests() {
    let server = server().await;
    server
        .admin()
        .inject_fault(Fault::status(500).fraction(0.5))
        .await
        .unwrap();
    let mut failed = 0;
    for _ in 0..200 {
        if ask(&server.url(), "/consume-here").send().await.status == 500 {
            failed += 1;
        }
    }
    assert!((50..150).contains(&failed), "{failed} of 200 failed");
}

#[tokio::test]
async fn a_delay_fault_holds_the_answer() {
    let server = server().await;
    server
        .admin()
        .inject_fault(Fault::delay(Duration::from_millis(300)).times(1))
        .await
        .unwrap();
    let started = Instant::now();
    let got = ask(&server.url(), "/consume-here")
        .caller("a")
        .header("x", "1")
        .send()
        .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(got, json_answer("true"), "after the delay, the real answer");
    assert_eq!(
        server.admin().journal().await.unwrap()[0].fault.as_deref(),
        Some("delay 300ms")
    );
}

#[tokio::test]
async fn a_client_with_a_short_timeout_gives_up_on_a_delay() {
    let server = server().await;
    server
        .admin()
        .inject_fault(Fault::delay(Duration::from_secs(5)))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = client
        .get(format!("{}/consume-here", server.url()))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
}

#[tokio::test]
async fn a_close_fault_drops_the_connection_without_an_answer() {
    let server = server().await;
    let added = ask(&server.url(), "/_mock/faults")
        .body("application/json", r#"{"close": true, "times": 1}"#)
        .send()
        .await;
    assert_eq!(added.status, 201);
    let err = ask(&server.url(), "/consume-here")
        .try_send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout() && !err.is_status(), "{err:?}");
    assert_eq!(
        ask(&server.url(), "/consume-here").send().await.status,
        200,
        "once only"
    );
    let journal = server.admin().journal().await.unwrap();
    assert_eq!(
        (journal[0].status, journal[0].fault.as_deref()),
        (None, Some("close"))
    );
}

/// A garbage fault answers 200 with a body that is no answer, in the
/// server's content type, and is journaled as such.
#[tokio::test]
async fn a_body_fault_answers_garbage_with_success() {
    let server = server().await;
    let added = ask(&server.url(), "/_mock/faults")
        .body(
            "application/json",
            r#"{"body": "<html>maintenance</html>", "times": 1}"#,
        )
        .send()
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    let got = ask(&server.url(), "/consume-here").send().await;
    assert_eq!(
        got,
        json_answer("<html>maintenance</html>"),
        "a success status, the usual content type, a body that is no boolean"
    );
    let next = ask(&server.url(), "/consume-here").send().await;
    assert_eq!(next, json_answer("false"), "once only");
    let journal = server.admin().journal().await.unwrap();
    assert_eq!(
        journal[0].fault.as_deref(),
        Some(r#"body "<html>maintenance</html>""#)
    );
}

#[tokio::test]
async fn bad_faults_are_refused() {
    let server = server().await;
    for (body, message) in [
        ("{}", "a fault needs delay_ms, status, body or close"),
        (r#"{"status": 500, "close": true}"#, "exclude each other"),
        (r#"{"status": 500, "body": "x"}"#, "exclude each other"),
        (r#"{"status": 42}"#, "status: 42"),
        (r#"{"status": 500, "fraction": 2}"#, "fraction: 2"),
        (r#"{"status": 500, "when": "now"}"#, "unknown field `when`"),
    ] {
        let got = ask(&server.url(), "/_mock/faults")
            .body("application/json", body)
            .send()
            .await;
        assert_eq!(got.status, 400, "{body}");
        assert!(
            got.json()["error"].as_str().unwrap().contains(message),
            "{body}: {}",
            got.body
        );
    }
}

#[tokio::test]
async fn without_admin_the_mock_paths_are_404s_but_the_api_works() {
    let server = MockServer::builder().admin(false).start().await.unwrap();
    let got = ask(&server.url(), "/_mock/intercepts").send().await;
    assert_eq!(
        got,
        answer(
            404,
            Some("text/plain; charset=utf-8"),
            "404 page not found\n"
        )
    );
    assert_eq!(ask(&server.url(), "/healthz").send().await.status, 200);
    server
        .admin()
        .add_intercept(Intercept::new("i"))
        .await
        .unwrap();
    assert_eq!(
        ask(&server.url(), "/consume-here")
            .caller("i")
            .send()
            .await
            .body,
        "true"
    );
}

#[tokio::test]
async fn status_reports_the_server_state() {
    let server = MockServer::builder()
        .side(Side::Agent)
        .wire(Wire::V2_5)
        .intercept(Intercept::new("a").container_port(9090))
        .start()
        .await
        .unwrap();
    let status = ask(&server.url(), "/_mock").send().await.json();
    assert_eq!(status["side"], "agent");
    assert_eq!(status["telepresence_version"], "2.27.4");
    assert_eq!(status["wire"], "2.5");
    assert_eq!(status["workload_ports"], json!([9090]));
    assert_eq!(status["workload_ports_declared"], false);
    let unknown = ask(&server.url(), "/_mock/nothing").send().await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no such admin endpoint");
}

#[test]
fn a_blocking_test_can_start_a_server_on_its_own_thread() {
    let server = MockServer::builder()
        .intercept(Intercept::new("i"))
        .start_blocking()
        .unwrap();
    let mut stream = std::net::TcpStream::connect(server.address()).unwrap();
    write!(
        stream,
        "GET /consume-here HTTP/1.1\r\nHost: x\r\n{CALLER}: i\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.ends_with("\r\n\r\ntrue"), "{response}");
}

#[tokio::test]
async fn the_env_names_the_server_for_a_consumer() {
    let client = MockServer::builder()
        .intercept(Intercept::new("abc:orders"))
        .start()
        .await
        .unwrap();
    let env = client.env();
    assert_eq!(
        (
            env.api_port,
            env.api_host.as_str(),
            env.intercept_id.as_str()
        ),
        (client.port(), "127.0.0.1", "abc:orders")
    );
    assert_eq!(
        env.to_string(),
        format!(
            "export TELEPRESENCE_API_PORT='{}'\nexport TELEPRESENCE_API_HOST='127.0.0.1'\nexport TELEPRESENCE_INTERCEPT_ID='abc:orders'\n",
            client.port()
        )
    );
    let agent = MockServer::builder()
        .side(Side::Agent)
        .intercept(Intercept::new("abc:orders"))
        .start()
        .await
        .unwrap();
    assert_eq!(agent.env().intercept_id, "", "a pod has no intercept ID");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_edits_are_never_lost() {
    let server = MockServer::builder().start().await.unwrap();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let admin = server.admin();
            tokio::spawn(async move {
                admin
                    .add_intercept(Intercept::new(format!("i{i}")))
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(server.admin().intercepts().await.unwrap().len(), 50);
}

#[tokio::test]
async fn a_token_protects_the_admin_api_but_not_the_telepresence_endpoints() {
    let server = MockServer::builder()
        .admin_token("s3cret")
        .intercept(Intercept::new("i"))
        .start()
        .await
        .unwrap();
    assert_eq!(server.admin_token(), Some("s3cret"));
    for path in [
        "/_mock/",
        "/_mock",
        "/_mock/intercepts",
        "/_mock/journal",
        "/_mock/nothing",
    ] {
        let refused = ask(&server.url(), path).send().await;
        assert_eq!(refused.status, 401, "{path}");
        assert!(refused.json()["error"].as_str().unwrap().contains("Bearer"));
        let wrong = ask(&server.url(), path)
            .header("authorization", "Bearer s3cre")
            .send()
            .await;
        assert_eq!(wrong.status, 401, "{path}");
    }
    let allowed = ask(&server.url(), "/_mock/intercepts")
        .header("authorization", "Bearer s3cret")
        .send()
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(
        ask(&server.url(), "/consume-here")
            .caller("i")
            .send()
            .await
            .body,
        "true"
    );
    assert_eq!(ask(&server.url(), "/healthz").send().await.status, 200);
}
