//! `Admin`, the typed admin client: in-process and over HTTP it gives the
//! same answers, and says clearly why when it cannot.

use std::error::Error as _;

use telepresence_mock_server::{ActiveFault, Admin, Error, Fault, Intercept, MockServer};

const TOKEN: &str = "s3cret";

async fn server() -> MockServer {
    MockServer::builder()
        .admin_token(TOKEN)
        .intercept(Intercept::new("a").header("x", "1"))
        .start()
        .await
        .unwrap()
}

/// A fresh server for each client, in-process then over HTTP: its name,
/// the server and the client.
async fn each_client() -> Vec<(&'static str, MockServer, Admin)> {
    let (local, remote) = (server().await, server().await);
    let local_admin = local.admin();
    let remote_admin = Admin::connect(&remote.url(), Some(TOKEN)).await.unwrap();
    vec![
        ("in-process", local, local_admin),
        ("remote", remote, remote_admin),
    ]
}

async fn consume_here(server: &MockServer) -> u16 {
    reqwest::get(format!("{}/consume-here", server.url()))
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn both_clients_change_and_read_the_intercepts_alike() {
    for (how, _server, admin) in each_client().await {
        assert_eq!(
            admin.intercepts().await.unwrap(),
            [Intercept::new("a").header("x", "1")],
            "{how}"
        );
        // An ID with characters a URL path treats specially arrives whole.
        let odd = "b/../c:d e?f#g%";
        admin.add_intercept(Intercept::new(odd)).await.unwrap();
        let ids: Vec<String> = admin
            .intercepts()
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["a", odd], "{how}");
        assert!(admin.remove_intercept(odd).await.unwrap(), "{how}");
        assert!(
            !admin.remove_intercept(odd).await.unwrap(),
            "{how}: already gone"
        );

        admin
            .set_intercepts([Intercept::new("y"), Intercept::new("z")])
            .await
            .unwrap();
        assert_eq!(
            admin.intercepts().await.unwrap(),
            [Intercept::new("y"), Intercept::new("z")],
            "{how}"
        );
        admin.clear_intercepts().await.unwrap();
        assert!(admin.intercepts().await.unwrap().is_empty(), "{how}");
    }
}

#[tokio::test]
async fn both_clients_inject_faults_and_read_the_journal_alike() {
    for (how, server, admin) in each_client().await {
        let fault = Fault::status(503).times(2);
        admin.inject_fault(fault.clone()).await.unwrap();
        assert_eq!(
            admin.faults().await.unwrap(),
            [ActiveFault::new(fault)],
            "{how}"
        );
        assert_eq!(consume_here(&server).await, 503, "{how}");
        assert_eq!(admin.faults().await.unwrap()[0].remaining, Some(1), "{how}");
        admin.clear_faults().await.unwrap();
        assert!(admin.faults().await.unwrap().is_empty(), "{how}");
        assert_eq!(consume_here(&server).await, 200, "{how}");

        let journal = admin.journal().await.unwrap();
        let statuses: Vec<_> = journal.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [Some(503), Some(200)], "{how}");
        assert_eq!(journal[0].fault.as_deref(), Some("status 503"), "{how}");
        admin.clear_journal().await.unwrap();
        assert!(admin.journal().await.unwrap().is_empty(), "{how}");
    }
}

#[tokio::test]
async fn over_http_the_journal_is_read_page_by_page_to_the_end() {
    let server = server().await;
    let client = reqwest::Client::new();
    // Two full pages of 1000 and a part of a third.
    for _ in 0..2345 {
        client
            .get(format!("{}/healthz", server.url()))
            .send()
            .await
            .unwrap();
    }
    let remote = Admin::connect(&server.url(), Some(TOKEN)).await.unwrap();
    let journal = remote.journal().await.unwrap();
    assert_eq!(journal.len(), 2345);
    assert_eq!(journal, server.admin().journal().await.unwrap());
}

#[tokio::test]
async fn a_refusal_is_typed_in_process_and_carries_the_servers_word_over_http() {
    for (how, _server, admin) in each_client().await {
        let duplicate = admin.add_intercept(Intercept::new("a")).await.unwrap_err();
        let invalid = admin.inject_fault(Fault::status(42)).await.unwrap_err();
        match how {
            "in-process" => {
                assert!(matches!(duplicate, Error::Intercepts(_)), "{duplicate:?}");
                assert!(matches!(invalid, Error::Fault(_)), "{invalid:?}");
            }
            _ => {
                let Error::AdminRefused {
                    request,
                    status,
                    message,
                    ..
                } = &duplicate
                else {
                    panic!("{duplicate:?}")
                };
                assert_eq!((request.as_str(), *status), ("POST /_mock/intercepts", 409));
                assert!(message.contains("duplicate"), "{message}");
                assert!(
                    matches!(invalid, Error::AdminRefused { status: 400, .. }),
                    "{invalid:?}"
                );
            }
        }
        assert!(
            duplicate.to_string().contains("duplicate"),
            "{how}: {duplicate}"
        );
        assert!(
            invalid.to_string().contains("status: 42"),
            "{how}: {invalid}"
        );
    }
}

#[tokio::test]
async fn connecting_checks_the_address_the_token_and_the_admin_api() {
    let server = server().await;
    let wrong_token = Admin::connect(&server.url(), Some("guess"))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_token, Error::AdminRefused { status: 401, .. }),
        "{wrong_token:?}"
    );
    assert!(wrong_token.to_string().contains("Bearer"), "{wrong_token}");

    let without_admin = MockServer::builder().admin(false).start().await.unwrap();
    let off = Admin::connect(&without_admin.url(), None)
        .await
        .unwrap_err();
    assert_eq!(
        off.to_string(),
        "the admin API refused GET /_mock with status 404: 404 page not found"
    );
    // In-process, the admin API works whether or not it is served over HTTP;
    // without it, `/_mock` is an unknown path like any other, and journaled.
    let journal = without_admin.admin().journal().await.unwrap();
    assert_eq!(journal[0].endpoint, "/_mock");

    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = Admin::connect(&gone, None).await.unwrap_err();
    assert!(
        matches!(unreachable, Error::AdminUnreachable { .. }),
        "{unreachable:?}"
    );
    // The message says what failed; the cause is linked, not repeated.
    assert_eq!(
        unreachable.to_string(),
        format!("cannot reach the admin API at {gone}")
    );
    assert!(unreachable.source().is_some());
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output() {
    let server = server().await;
    let remote = Admin::connect(&format!("{}/", server.url()), Some(TOKEN))
        .await
        .unwrap();
    let debug = format!("{remote:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains(&server.url()), "{debug}");
}
