//! Decisions against the in-process mock server, over real HTTP.

use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use telepresence_kafka::{ClientBuilder, HeaderList, InterceptInfo, KafkaMessage};
use telepresence_mock_server::{Intercept, MockServer, Side, Wire};

const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";

fn alice_intercept() -> Intercept {
    Intercept::new(ID)
        .header("x-dev", "alice")
        .metadata("owner", "alice")
}

async fn server(side: Side, wire: Wire, intercepts: Vec<Intercept>) -> MockServer {
    MockServer::builder()
        .side(side)
        .wire(wire)
        .intercepts(intercepts)
        .start()
        .await
        .unwrap()
}

/// A client built from the environment the server's side would give a consumer.
fn client_from_env(server: &MockServer) -> ClientBuilder {
    let vars = server.env().vars();
    ClientBuilder::from_env_vars(|name| {
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
    })
    .unwrap()
}

/// The journal's decisions: every request but the client's one-time side
/// check (an `/intercept-info` before its first decision).
async fn decisions(server: &MockServer) -> Vec<telepresence_mock_server::JournalEntry> {
    server
        .admin()
        .journal()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.endpoint == "/consume-here")
        .collect()
}

fn dev(name: &'static str) -> HeaderList<'static> {
    let headers: &'static [(&'static str, Option<&'static [u8]>)] = match name {
        "alice" => &[("x-dev", Some(b"alice"))],
        "bob" => &[("x-dev", Some(b"bob"))],
        _ => &[],
    };
    HeaderList::new(headers)
}

#[tokio::test]
async fn the_workstation_consumes_exactly_what_its_intercept_matches_in_every_wire_format() {
    for wire in Wire::ALL {
        let server = server(Side::Client, wire, vec![alice_intercept()]).await;
        let tp = client_from_env(&server).build().unwrap();
        assert_eq!(tp.intercept_id(), ID);
        assert!(
            tp.should_consume(&dev("alice")).await.unwrap(),
            "wire {wire}"
        );
        assert!(
            !tp.should_consume(&dev("bob")).await.unwrap(),
            "wire {wire}"
        );
        assert!(
            !tp.should_consume(&dev("none")).await.unwrap(),
            "wire {wire}"
        );
        let stats = tp.stats();
        assert_eq!((stats.consumed, stats.skipped, stats.errors), (1, 2, 0));
    }
}

#[tokio::test]
async fn the_pod_consumes_everything_else_in_every_wire_format() {
    for wire in Wire::ALL {
        let server = server(Side::Agent, wire, vec![alice_intercept()]).await;
        let tp = client_from_env(&server).build().unwrap();
        assert_eq!(tp.intercept_id(), "", "no intercept ID in the pod");
        assert!(
            !tp.should_consume(&dev("alice")).await.unwrap(),
            "wire {wire}"
        );
        assert!(tp.should_consume(&dev("bob")).await.unwrap(), "wire {wire}");
        assert!(
            tp.should_consume(&dev("none")).await.unwrap(),
            "wire {wire}"
        );
    }
}

#[tokio::test]
async fn intercept_info_reports_the_side_and_the_metadata() {
    for (side, client_side) in [(Side::Client, true), (Side::Agent, false)] {
        for wire in Wire::ALL {
            let server = server(side, wire, vec![alice_intercept()]).await;
            let tp = client_from_env(&server).build().unwrap();
            let info = tp.intercept_info(&dev("alice")).await.unwrap();
            assert_eq!(
                info,
                InterceptInfo::new(true, client_side)
                    .with_metadata([("owner".to_owned(), "alice".to_owned())].into()),
                "{side} {wire}"
            );
            let info = tp.intercept_info(&dev("bob")).await.unwrap();
            assert_eq!((info.intercepted, info.metadata.len()), (false, 0));
        }
    }
}

/// The SDK reads every release's answers: the booleans, the intercept-info
/// object with metadata that one family escapes and another does not, and
/// 2.4's missing `/intercept-info` as a clear error.
#[tokio::test]
async fn every_telepresence_release_is_read() {
    let note = "<b> & \u{2028} é";
    let intercept = alice_intercept().metadata("note", note);
    for release in ["2.4", "2.4.8", "2.5", "2.24.1", "2.25", "2.27.4", "2.30"] {
        for (side, client_side) in [(Side::Client, true), (Side::Agent, false)] {
            let server = MockServer::builder()
                .telepresence_version(release.parse().unwrap())
                .side(side)
                .intercept(intercept.clone())
                .start()
                .await
                .unwrap();
            let tp = client_from_env(&server).build().unwrap();
            let label = format!("{side} side of {release}");
            assert_eq!(
                tp.should_consume(&dev("alice")).await.unwrap(),
                client_side,
                "{label}"
            );
            assert_eq!(
                tp.should_consume(&dev("bob")).await.unwrap(),
                !client_side,
                "{label}"
            );
            tp.healthz().await.unwrap();
            let info = tp.intercept_info(&dev("alice")).await;
            if server.rules().serves_intercept_info {
                let info = info.unwrap_or_else(|e| panic!("{label}: {e}"));
                assert!(
                    info.intercepted && info.client_side == client_side,
                    "{label}"
                );
                assert_eq!(info.metadata["note"], note, "{label}");
            } else {
                let err = info.expect_err(&label);
                assert_eq!(err.status(), Some(404), "{label}");
                assert!(
                    err.to_string().contains("no /intercept-info"),
                    "{label}: {err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn healthz_succeeds_against_a_live_server() {
    let server = server(Side::Client, Wire::V2_25, vec![]).await;
    client_from_env(&server)
        .build()
        .unwrap()
        .healthz()
        .await
        .unwrap();
    assert_eq!(
        server.admin().journal().await.unwrap()[0].endpoint,
        "/healthz"
    );
}

#[tokio::test]
async fn the_path_is_url_encoded_and_taken_from_the_configured_source() {
    let path = "/orders/a b+c%26d/é?x=1";
    let server = server(
        Side::Client,
        Wire::V2_25,
        vec![Intercept::new(ID).path_equal(path)],
    )
    .await;
    let headers: &[(&str, Option<&[u8]>)] = &[("x-path", Some(path.as_bytes()))];
    let message = HeaderList::new(headers).topic("orders");

    let from_header = client_from_env(&server)
        .path_from_header("x-path")
        .build()
        .unwrap();
    assert!(from_header.should_consume(&message).await.unwrap());
    let fixed = client_from_env(&server).fixed_path(path).build().unwrap();
    assert!(fixed.should_consume(&message).await.unwrap());
    let custom = client_from_env(&server)
        .path_with(|m| {
            m.header("x-path")
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
        .build()
        .unwrap();
    assert!(custom.should_consume(&message).await.unwrap());
    let explicit = client_from_env(&server).build().unwrap();
    assert!(explicit.should_consume(&message.path(path)).await.unwrap());
    let topic = client_from_env(&server).path_from_topic().build().unwrap();
    assert!(
        !topic.should_consume(&message).await.unwrap(),
        "the path is `orders` here"
    );

    let journal = decisions(&server).await;
    assert!(journal[..4].iter().all(|e| e.path == path), "{journal:?}");
    assert_eq!(journal[4].path, "orders");
}

#[tokio::test]
async fn the_container_port_is_sent_when_configured() {
    let server = server(
        Side::Agent,
        Wire::V2_25,
        vec![
            Intercept::new("web")
                .container_port(8080)
                .header("x-dev", "alice"),
            Intercept::new("admin")
                .container_port(9090)
                .header("x-dev", "bob"),
        ],
    )
    .await;
    let web = client_from_env(&server)
        .container_port(8080)
        .build()
        .unwrap();
    assert!(
        !web.should_consume(&dev("alice")).await.unwrap(),
        "alice's messages go to her workstation"
    );
    assert!(
        web.should_consume(&dev("bob")).await.unwrap(),
        "bob's intercept is on another port"
    );
    assert_eq!(decisions(&server).await[0].container_port, "8080");

    // Without containerPort, Telepresence 2.25 and later take the workload's
    // first port: bob's intercept on the second port is never seen, so the
    // pod would consume bob's messages too. Multi-port consumers must send it.
    let portless = client_from_env(&server).build().unwrap();
    assert!(portless.should_consume(&dev("bob")).await.unwrap());
    assert!(!portless.should_consume(&dev("alice")).await.unwrap());
    assert_eq!(decisions(&server).await[2].container_port, "");
}

#[tokio::test]
async fn headers_travel_as_http_headers_by_the_forwarding_rules() {
    let server = server(Side::Client, Wire::V2_25, vec![alice_intercept()]).await;
    let tp = client_from_env(&server)
        .deny_headers(["secret"])
        .build()
        .unwrap();
    let headers: &[(&str, Option<&[u8]>)] = &[
        ("X-Dev", Some(b"alice")),
        ("x-dev", Some(b"mallory")),
        (
            "traceparent",
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ),
        ("x-telepresence-caller-intercept-id", Some(b"someone-else")),
        ("secret", Some(b"hunter2")),
        ("binary", Some(&[0, 1, 2])),
        ("bad key", Some(b"v")),
        ("connection", Some(b"close")),
        ("null", None),
    ];
    assert!(tp.should_consume(&HeaderList::new(headers)).await.unwrap());
    let entry = &decisions(&server).await[0];
    assert_eq!(
        entry.caller_id, ID,
        "the caller ID comes from the environment"
    );
    let seen: Vec<(&str, &str)> = entry
        .headers
        .iter()
        .filter(|(name, _)| !["host", "accept"].contains(&name.as_str()))
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("x-telepresence-caller-intercept-id", ID),
            ("x-dev", "alice"),
            ("x-dev", "mallory"),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            ),
            ("null", ""),
        ]
    );
    assert_eq!(tp.stats().dropped_headers, 5);
}

#[tokio::test]
async fn rdkafka_messages_are_read_directly() {
    let server = server(
        Side::Client,
        Wire::V2_25,
        vec![alice_intercept().path_prefix("orders")],
    )
    .await;
    let tp = client_from_env(&server).path_from_topic().build().unwrap();
    let message = |dev: &str| {
        OwnedMessage::new(
            Some(b"payload".to_vec()),
            None,
            "orders".to_owned(),
            Timestamp::NotAvailable,
            0,
            42,
            Some(OwnedHeaders::new().insert(Header {
                key: "x-dev",
                value: Some(dev),
            })),
        )
    };
    assert!(tp.should_consume(&message("alice")).await.unwrap());
    assert!(!tp.should_consume(&message("bob")).await.unwrap());
    assert_eq!(KafkaMessage::topic(&message("x")), Some("orders"));
    let headerless = OwnedMessage::new(
        None,
        None,
        "orders".into(),
        Timestamp::NotAvailable,
        0,
        0,
        None,
    );
    assert!(!tp.should_consume(&headerless).await.unwrap());
}

#[tokio::test]
async fn a_disabled_client_consumes_everything_without_asking() {
    let server = server(Side::Client, Wire::V2_25, vec![alice_intercept()]).await;
    let tp =
        ClientBuilder::from_env_vars(|name| (name == "TELEPRESENCE_API_PORT").then(|| "0".into()))
            .unwrap()
            .build()
            .unwrap();
    assert!(!tp.is_enabled());
    for who in ["alice", "bob", "none"] {
        assert!(tp.should_consume(&dev(who)).await.unwrap());
    }
    assert_eq!(tp.stats().consumed, 3);
    assert_eq!(tp.stats().requests, 0);
    assert!(server.admin().journal().await.unwrap().is_empty());
    let err = tp.intercept_info(&dev("alice")).await.unwrap_err();
    assert_eq!(err.kind(), telepresence_kafka::ErrorKind::NotConfigured);
    assert_eq!(
        tp.healthz().await.unwrap_err().kind(),
        telepresence_kafka::ErrorKind::NotConfigured
    );
    assert_eq!(tp.group_id("orders"), "orders");
}

#[tokio::test]
async fn the_cache_answers_repeated_routing_values_without_asking() {
    let server = server(Side::Client, Wire::V2_25, vec![alice_intercept()]).await;
    let tp = client_from_env(&server)
        .decision_cache(Duration::from_millis(500), ["x-dev"])
        .build()
        .unwrap();
    let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice")), ("x-trace", Some(b"1"))];
    let other_trace: &[(&str, Option<&[u8]>)] =
        &[("x-dev", Some(b"alice")), ("x-trace", Some(b"2"))];
    assert!(tp.should_consume(&HeaderList::new(headers)).await.unwrap());
    assert!(
        tp.should_consume(&HeaderList::new(other_trace))
            .await
            .unwrap()
    );
    assert!(!tp.should_consume(&dev("bob")).await.unwrap());
    let journal = decisions(&server).await;
    assert_eq!(
        journal.len(),
        2,
        "the second alice message was answered from the cache"
    );
    assert_eq!(
        journal[0].header("x-trace"),
        None,
        "only routing headers are forwarded"
    );
    assert_eq!(tp.stats().cache_hits, 1);

    // The intercept ends; once the TTL has passed (and a tick of the coarse
    // clock the cache reads) the client sees it.
    server.admin().clear_intercepts().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!tp.should_consume(&HeaderList::new(headers)).await.unwrap());
    assert_eq!(decisions(&server).await.len(), 3);
}

#[tokio::test]
async fn connections_are_reused_across_decisions() {
    let server = server(Side::Client, Wire::V2_25, vec![alice_intercept()]).await;
    let tp = client_from_env(&server).build().unwrap();
    for _ in 0..50 {
        tp.should_consume(&dev("alice")).await.unwrap();
    }
    let stats = tp.stats();
    assert_eq!(
        (stats.requests, stats.retries),
        (51, 0),
        "fifty decisions and the side check"
    );
    let connections: std::collections::BTreeSet<u64> = server
        .admin()
        .journal()
        .await
        .unwrap()
        .iter()
        .map(|e| e.connection)
        .collect();
    assert_eq!(
        connections.len(),
        1,
        "one keep-alive connection: {connections:?}"
    );
}

#[tokio::test]
async fn clones_share_counters() {
    let server = server(Side::Client, Wire::V2_25, vec![alice_intercept()]).await;
    let tp = client_from_env(&server).build().unwrap();
    let clone = tp.clone();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let tp = tp.clone();
            tokio::spawn(async move { tp.should_consume(&dev("alice")).await.unwrap() })
        })
        .collect();
    for handle in handles {
        assert!(handle.await.unwrap());
    }
    assert_eq!(clone.stats().consumed, 8);
}

/// A client kept for the life of a program outlives runtimes: each
/// `#[tokio::test]` starts its own, and so does the blocking client. A
/// kept-alive connection opened on a runtime that has ended is dropped and
/// the query goes on a new one, without an error, a retry or a fallback.
#[test]
fn a_client_outlives_the_runtime_that_opened_its_connections() {
    let server_runtime = tokio::runtime::Runtime::new().unwrap();
    let server =
        server_runtime.block_on(server(Side::Client, Wire::V2_25, vec![alice_intercept()]));
    let tp = client_from_env(&server).build().unwrap();
    for (round, dev_name) in ["alice", "bob", "alice"].into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let decided = runtime.block_on(tp.should_consume(&dev(dev_name)));
        assert_eq!(decided.unwrap(), dev_name == "alice", "round {round}");
        drop(runtime);
    }
    let stats = tp.stats();
    assert_eq!((stats.errors, stats.retries, stats.fallbacks), (0, 0, 0));
    assert_eq!(
        server_runtime.block_on(decisions(&server)).len(),
        3,
        "one query per decision"
    );
}
