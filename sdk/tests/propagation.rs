//! Routing context passed on across hops: what a message carries on to the
//! HTTP requests and records its handling produces, checked against the
//! next service's Telepresence API (a mock server over HTTP).

use std::time::Duration;

use telepresence_kafka::{Baggage, Client, ErrorKind, HeaderList, RoutingHeaders, WithRouting};
use telepresence_mock_server::{Intercept, MockServer, Side};

/// A Kafka header as `HeaderList` takes it.
type Header<'a> = (&'a str, Option<&'a [u8]>);

/// The next service's intercept: alice's, on `x-dev`.
const NEXT: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:billing";

async fn next_service_api() -> MockServer {
    MockServer::builder()
        .side(Side::Client)
        .intercept(Intercept::new(NEXT).header("x-dev", "alice"))
        .start()
        .await
        .unwrap()
}

/// The client every hop builds: `x-dev` may be a header or a baggage member.
fn client() -> Client {
    Client::builder()
        .routing_headers(["x-dev"])
        .baggage(Baggage::members(["x-dev"]))
        .build()
        .unwrap()
}

/// Whether the next service's workstation takes an HTTP request that
/// carries `routing` after the request's own `headers`, asked as its API is
/// asked: the request's own headers.
async fn workstation_takes(
    api: &MockServer,
    headers: &[(&str, &str)],
    routing: &RoutingHeaders<'_>,
) -> bool {
    let mut request = reqwest::Client::new()
        .get(format!("{}/consume-here", api.url()))
        .header("x-telepresence-caller-intercept-id", NEXT);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = request
        .with_routing(routing)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn an_http_request_made_for_a_message_is_routed_like_the_message() {
    let api = next_service_api().await;
    let tp = client();
    let cases: [(&[Header], bool); 4] = [
        (&[("x-dev", Some(b"alice")), ("trace", Some(b"1"))], true),
        (
            &[("baggage", Some(b"tenant=acme,x-dev=alice;ttl=60"))],
            true,
        ),
        (
            &[("x-dev", Some(b"bob")), ("baggage", Some(b"x-dev=alice"))],
            false,
        ),
        (&[("trace", Some(b"1"))], false),
    ];
    for (headers, alices) in cases {
        let message = HeaderList::new(headers);
        let routing = tp.routing_headers(&message);
        assert_eq!(
            workstation_takes(&api, &[], &routing).await,
            alices,
            "{headers:?}"
        );
    }
    // The request carried the routing headers only, as the message had them.
    let journal = api.admin().journal().await.unwrap();
    assert_eq!(
        journal[1].header("baggage"),
        Some("tenant=acme,x-dev=alice;ttl=60")
    );
    assert_eq!(journal[3].header("trace"), None, "not a routing header");
}

#[tokio::test]
async fn a_header_the_request_sets_itself_stays_first() {
    let api = next_service_api().await;
    let tp = client();
    let headers: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"alice"))];
    let message = HeaderList::new(headers);
    let routing = tp.routing_headers(&message);
    let answer = workstation_takes(&api, &[("x-dev", "bob")], &routing).await;
    assert!(
        !answer,
        "the server reads the first x-dev: the request's own"
    );
}

#[test]
fn production_passes_the_context_on_as_a_workstation_does() {
    let headers: &[(&str, Option<&[u8]>)] = &[
        ("x-dev", Some(b"alice")),
        ("x-tenant", Some(b"acme")),
        ("baggage", Some(b"x-dev=alice")),
    ];
    let message = HeaderList::new(headers);
    let production = client();
    assert!(!production.is_enabled());
    let carried: Vec<_> = production.routing_headers(&message).iter().collect();
    assert_eq!(
        carried,
        [("x-dev", &b"alice"[..]), ("baggage", &b"x-dev=alice"[..])]
    );

    let cached = Client::builder()
        .decision_cache(Duration::from_secs(1), ["x-tenant"])
        .build()
        .unwrap();
    let carried: Vec<_> = cached.routing_headers(&message).iter().collect();
    assert_eq!(
        carried,
        [("x-tenant", &b"acme"[..])],
        "the cache's routing headers are declared too"
    );
    assert!(Client::disabled().routing_headers(&message).is_empty());
}

#[test]
fn a_routing_header_that_is_no_http_header_name_is_refused() {
    let error = Client::builder()
        .routing_headers(["x dev"])
        .build()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Config);
    assert!(error.to_string().contains("`x dev`"), "{error}");
    assert!(error.to_string().contains("routing headers"), "{error}");
}
