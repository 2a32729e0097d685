//! Routing keys that are not plain headers, against the in-process mock
//! server over HTTP: tracing baggage members and the record key, derived
//! into headers the same way on both sides, so that the split stays exact.

use std::time::Duration;

use telepresence_kafka::{Baggage, Client, ClientBuilder, ErrorKind, HeaderList};
use telepresence_mock_server::{Intercept, JournalEntry, MockServer, Side};

const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:orders";
const KEY_HEADER: &str = "x-kafka-key";

type Headers = &'static [(&'static str, Option<&'static [u8]>)];

fn alice() -> Intercept {
    Intercept::new(ID).header("x-dev", "alice")
}

/// Telepresence takes a value with a regex metacharacter as a regex.
fn tenant_42() -> Intercept {
    Intercept::new(ID).header(KEY_HEADER, "^tenant-42")
}

async fn api(side: Side, intercept: Intercept) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(intercept)
        .start()
        .await
        .unwrap()
}

/// A client of `server`'s side, configured by `options`: the same options on
/// both sides, as a consumer built by one function in both places would be.
fn client(server: &MockServer, options: fn(ClientBuilder) -> ClientBuilder) -> Client {
    let builder = Client::builder()
        .api_url(server.url())
        .intercept_id(server.env().intercept_id);
    options(builder).build().unwrap()
}

fn with_baggage(builder: ClientBuilder) -> ClientBuilder {
    builder.baggage(Baggage::members(["x-dev"]))
}

fn with_key(builder: ClientBuilder) -> ClientBuilder {
    builder.key_as_header(KEY_HEADER)
}

/// The decisions the server answered, without the client's side check.
async fn decisions(server: &MockServer) -> Vec<JournalEntry> {
    let journal = server.admin().journal().await.unwrap();
    journal
        .into_iter()
        .filter(|e| e.endpoint == "/consume-here")
        .collect()
}

/// The headers a request carried, without those HTTP itself adds.
fn sent(entry: &JournalEntry) -> Vec<(&str, &str)> {
    entry
        .headers
        .iter()
        .filter(|(name, _)| {
            !["host", "accept", "x-telepresence-caller-intercept-id"].contains(&name.as_str())
        })
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

#[tokio::test]
async fn a_baggage_member_routes_like_a_header() {
    let workstation = api(Side::Client, alice()).await;
    let tp = client(&workstation, |b| b.baggage(Baggage::all()));
    let alices: Headers = &[("baggage", Some(b"x-dev=alice,other=1"))];
    let bobs: Headers = &[("baggage", Some(b"x-dev=bob"))];
    assert!(tp.should_consume(&HeaderList::new(alices)).await.unwrap());
    assert!(!tp.should_consume(&HeaderList::new(bobs)).await.unwrap());
    let info = tp.intercept_info(&HeaderList::new(alices)).await.unwrap();
    assert!(info.intercepted, "intercept-info sees the members too");

    let journal = decisions(&workstation).await;
    assert_eq!(
        sent(&journal[0]),
        [
            ("baggage", "x-dev=alice,other=1"),
            ("x-dev", "alice"),
            ("other", "1")
        ],
        "the members come after the message's own headers"
    );
    assert_eq!(tp.stats().malformed_baggage, 0);
}

/// Which side must take each message of the mixed batch: `true` for the
/// workstation (the intercept matches `x-dev: alice` as Telepresence reads
/// it, the first occurrence).
const BATCH: &[(Headers, bool)] = &[
    (&[("x-dev", Some(b"alice"))], true),
    (&[("x-dev", Some(b"bob"))], false),
    (&[("baggage", Some(b"x-dev=alice"))], true),
    (&[("baggage", Some(b" x-dev = alice ;ttl=60 , a=b"))], true),
    (&[("baggage", Some(b"x-dev=%61lice"))], true),
    (&[("baggage", Some(b"x-dev=bob"))], false),
    (&[("baggage", Some(b"x-dev=alicex"))], false),
    (&[("uberctx-x-dev", Some(b"alice"))], true),
    (&[("ot-baggage-x-dev", Some(b"alice"))], true),
    (&[("ot-baggage-x-dev", Some(b"bob"))], false),
    // Several baggage headers combine.
    (
        &[("baggage", Some(b"a=1")), ("baggage", Some(b"x-dev=alice"))],
        true,
    ),
    // The first member of a name wins, as for headers.
    (&[("baggage", Some(b"x-dev=bob,x-dev=alice"))], false),
    (&[("baggage", Some(b"x-dev=alice,x-dev=bob"))], true),
    (
        &[
            ("baggage", Some(b"x-dev=bob")),
            ("uberctx-x-dev", Some(b"alice")),
        ],
        false,
    ),
    // A real header wins over any member.
    (
        &[("baggage", Some(b"x-dev=alice")), ("x-dev", Some(b"bob"))],
        false,
    ),
    (
        &[("baggage", Some(b"x-dev=bob")), ("x-dev", Some(b"alice"))],
        true,
    ),
    // A malformed member is skipped, the others read.
    (&[("baggage", Some(b"x-dev alice,x-dev=alice"))], true),
    (&[("baggage", Some(b"x-dev=%zz"))], false),
    (&[("baggage", None)], false),
    (&[], false),
];

#[tokio::test]
async fn each_message_of_a_mixed_batch_is_taken_by_exactly_one_side() {
    let (pod, workstation) = (
        api(Side::Agent, alice()).await,
        api(Side::Client, alice()).await,
    );
    let (pod_tp, workstation_tp) = (
        client(&pod, with_baggage),
        client(&workstation, with_baggage),
    );
    for (i, &(headers, for_workstation)) in BATCH.iter().enumerate() {
        let message = HeaderList::new(headers);
        let (in_pod, on_workstation) = (
            pod_tp.should_consume(&message).await.unwrap(),
            workstation_tp.should_consume(&message).await.unwrap(),
        );
        assert_ne!(
            in_pod, on_workstation,
            "message {i} {headers:?}: one side only"
        );
        assert_eq!(on_workstation, for_workstation, "message {i} {headers:?}");
    }
    assert_eq!(pod_tp.stats().malformed_baggage, 2);
    assert_eq!(workstation_tp.stats().malformed_baggage, 2);
}

/// Why both sides need the same options: otherwise a message goes to both,
/// or to neither.
#[tokio::test]
async fn options_that_differ_between_the_sides_duplicate_or_lose() {
    let (pod, workstation) = (
        api(Side::Agent, alice()).await,
        api(Side::Client, alice()).await,
    );
    let headers: Headers = &[("baggage", Some(b"x-dev=alice"))];
    let message = HeaderList::new(headers);
    let plain = |b| b;
    // Only the workstation reads baggage: both process the message.
    assert!(client(&pod, plain).should_consume(&message).await.unwrap());
    assert!(
        client(&workstation, with_baggage)
            .should_consume(&message)
            .await
            .unwrap()
    );
    // Only the pod reads it: neither does.
    assert!(
        !client(&pod, with_baggage)
            .should_consume(&message)
            .await
            .unwrap()
    );
    assert!(
        !client(&workstation, plain)
            .should_consume(&message)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_real_header_beats_a_baggage_member() {
    let (pod, workstation) = (
        api(Side::Agent, alice()).await,
        api(Side::Client, alice()).await,
    );
    let (pod_tp, workstation_tp) = (
        client(&pod, with_baggage),
        client(&workstation, with_baggage),
    );
    let headers: Headers = &[("baggage", Some(b"x-dev=alice")), ("x-dev", Some(b"bob"))];
    let message = HeaderList::new(headers);
    assert!(!workstation_tp.should_consume(&message).await.unwrap());
    assert!(pod_tp.should_consume(&message).await.unwrap());
    let journal = decisions(&workstation).await;
    assert_eq!(
        sent(&journal[0]),
        [
            ("baggage", "x-dev=alice"),
            ("x-dev", "bob"),
            ("x-dev", "alice")
        ]
    );
    assert_eq!(journal[0].header("x-dev"), Some("bob"));
}

#[tokio::test]
async fn the_record_key_splits_by_prefix() {
    let (pod, workstation) = (
        api(Side::Agent, tenant_42()).await,
        api(Side::Client, tenant_42()).await,
    );
    let (pod_tp, workstation_tp) = (client(&pod, with_key), client(&workstation, with_key));
    let keyed: &[(Option<&[u8]>, bool)] = &[
        (Some(b"tenant-42:order-1"), true),
        (Some(b"tenant-42"), true),
        (Some(b"tenant-7:order-2"), false),
        (Some(b"x-tenant-42"), false),
        (Some("tenant-42:café".as_bytes()), true),
        (Some(b""), false),
        (None, false),
    ];
    for &(key, for_workstation) in keyed {
        let mut message = HeaderList::default();
        if let Some(key) = key {
            message = message.key(key);
        }
        let (in_pod, on_workstation) = (
            pod_tp.should_consume(&message).await.unwrap(),
            workstation_tp.should_consume(&message).await.unwrap(),
        );
        assert_ne!(in_pod, on_workstation, "{key:?}");
        assert_eq!(on_workstation, for_workstation, "{key:?}");
    }
    let journal = decisions(&workstation).await;
    assert_eq!(sent(&journal[0]), [(KEY_HEADER, "tenant-42:order-1")]);
    assert_eq!(sent(&journal[6]), [], "no key, no header");
    assert_eq!(workstation_tp.stats().non_utf8_keys, 0);
}

#[tokio::test]
async fn a_key_that_is_not_utf8_is_skipped_and_counted() {
    let (pod, workstation) = (
        api(Side::Agent, tenant_42()).await,
        api(Side::Client, tenant_42()).await,
    );
    let (pod_tp, workstation_tp) = (client(&pod, with_key), client(&workstation, with_key));
    // A binary key that a lossy reading would turn into `tenant-42\u{FFFD}`.
    let message = HeaderList::default().key(b"tenant-42\xff\xfe");
    assert!(!workstation_tp.should_consume(&message).await.unwrap());
    assert!(pod_tp.should_consume(&message).await.unwrap());
    for tp in [&pod_tp, &workstation_tp] {
        assert_eq!(tp.stats().non_utf8_keys, 1);
        assert_eq!(tp.stats().dropped_headers, 0, "not a header left out");
    }
    assert_eq!(sent(&decisions(&workstation).await[0]), []);

    // A real header of the key header's name wins over the key.
    let headers: Headers = &[(KEY_HEADER, Some(b"tenant-42"))];
    let message = HeaderList::new(headers).key(b"tenant-7");
    assert!(workstation_tp.should_consume(&message).await.unwrap());
}

#[tokio::test]
async fn with_the_options_off_nothing_is_derived() {
    let workstation = api(Side::Client, alice()).await;
    let tp = client(&workstation, |b| b);
    let headers: Headers = &[
        ("baggage", Some(b"x-dev=alice,broken")),
        ("uberctx-x-dev", Some(b"alice")),
    ];
    let message = HeaderList::new(headers).key(b"tenant-42");
    assert!(!tp.should_consume(&message).await.unwrap());
    assert_eq!(
        sent(&decisions(&workstation).await[0]),
        [
            ("baggage", "x-dev=alice,broken"),
            ("uberctx-x-dev", "alice")
        ],
        "only the message's own headers"
    );
    let stats = tp.stats();
    assert_eq!((stats.malformed_baggage, stats.non_utf8_keys), (0, 0));
}

#[tokio::test]
async fn the_forwarding_rules_apply_to_derived_headers() {
    let workstation = api(Side::Client, alice()).await;
    // Denied: the member is not sent, and counted as a header left out.
    let denied = client(&workstation, |b| {
        b.baggage(Baggage::all()).deny_headers(["x-dev", "baggage"])
    });
    let headers: Headers = &[("baggage", Some(b"x-dev=alice,other=1"))];
    assert!(
        !denied
            .should_consume(&HeaderList::new(headers))
            .await
            .unwrap()
    );
    assert_eq!(sent(&decisions(&workstation).await[0]), [("other", "1")]);
    assert_eq!(denied.stats().dropped_headers, 2);

    // The byte limit counts derived headers; the message's own come first.
    let limited = client(&workstation, |b| {
        b.baggage(Baggage::all()).max_header_bytes(40)
    });
    let headers: Headers = &[
        ("baggage", Some(b"x-dev=alice,a=1")),
        ("x-note", Some(b"0123456789")),
    ];
    limited
        .should_consume(&HeaderList::new(headers))
        .await
        .unwrap();
    assert_eq!(
        sent(&decisions(&workstation).await[1]),
        [
            ("baggage", "x-dev=alice,a=1"),
            ("x-note", "0123456789"),
            ("a", "1")
        ],
        "x-dev=alice would have passed the budget"
    );
    assert_eq!(limited.stats().dropped_headers, 1);

    // A value a header cannot carry is left out, as for a real header.
    let all = client(&workstation, |b| b.baggage(Baggage::all()));
    let headers: Headers = &[("baggage", Some(b"x-dev=ali%0Ace"))];
    assert!(!all.should_consume(&HeaderList::new(headers)).await.unwrap());
    assert_eq!(all.stats().dropped_headers, 1);
}

#[tokio::test]
async fn named_derived_headers_that_could_never_be_sent_are_refused() {
    let base = || Client::builder().api_url("http://127.0.0.1:1");
    let refusals = [
        (
            base().key_as_header("bad name"),
            "record key header `bad name`",
        ),
        (
            base().baggage(Baggage::members(["x-dev", "a:b"])),
            "baggage member `a:b`",
        ),
        (
            base()
                .baggage(Baggage::members(["x-dev"]))
                .deny_headers(["X-Dev"]),
            "baggage member `x-dev` would never be sent: it is on the deny-list",
        ),
        (
            base().key_as_header(KEY_HEADER).allow_headers(["x-dev"]),
            "record key header `x-kafka-key` would never be sent: it is not on the allow-list",
        ),
        (
            base().key_as_header("Host"),
            "record key header `host` would never be sent",
        ),
        (
            base()
                .key_as_header(KEY_HEADER)
                .decision_cache(Duration::from_secs(1), ["x-dev"]),
            "not on the allow-list (with a decision cache, only its routing headers are sent)",
        ),
    ];
    for (builder, expected) in refusals {
        let error = builder.build().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Config);
        assert!(error.to_string().contains(expected), "{error}");
    }
    // All members, under an allow-list, are what the list allows.
    base()
        .baggage(Baggage::all())
        .allow_headers(["x-dev"])
        .build()
        .unwrap();
}

#[tokio::test]
async fn the_decision_cache_keys_on_derived_routing_headers() {
    let workstation = api(Side::Client, alice()).await;
    let tp = client(&workstation, |b| {
        b.baggage(Baggage::all())
            .key_as_header(KEY_HEADER)
            .decision_cache(Duration::from_secs(60), ["x-dev", KEY_HEADER])
    });
    let asks = [
        (&[("baggage", Some(&b"x-dev=alice"[..]))][..], true, true),
        (&[("baggage", Some(b"x-dev=bob"))], false, true),
        (&[("baggage", Some(b"x-dev=alice,other=1"))], true, false),
        (&[("uberctx-x-dev", Some(b"alice"))], true, false),
        (
            &[("x-dev", Some(b"bob")), ("baggage", Some(b"x-dev=alice"))],
            false,
            false,
        ),
        // The real header cannot be sent: the server sees the member, and so
        // must the cache's key.
        (
            &[("x-dev", Some(b"a\nb")), ("baggage", Some(b"x-dev=alice"))],
            true,
            false,
        ),
        (
            &[("x-dev", Some(b"a\nb")), ("baggage", Some(b"x-dev=bob"))],
            false,
            false,
        ),
    ];
    let mut expected_requests = 0;
    for (i, (headers, answer, asked)) in asks.into_iter().enumerate() {
        assert_eq!(
            tp.should_consume(&HeaderList::new(headers)).await.unwrap(),
            answer,
            "message {i}"
        );
        expected_requests += usize::from(asked);
        assert_eq!(
            decisions(&workstation).await.len(),
            expected_requests,
            "message {i}"
        );
    }

    // The key is part of the cache's key too: a key that differs asks.
    let keyed = client(&workstation, |b| {
        b.key_as_header(KEY_HEADER)
            .decision_cache(Duration::from_secs(60), [KEY_HEADER])
    });
    workstation.admin().clear_journal().await.unwrap();
    for key in [&b"tenant-42"[..], b"tenant-7", b"tenant-42", b"\xff", b""] {
        keyed
            .should_consume(&HeaderList::default().key(key))
            .await
            .unwrap();
    }
    assert_eq!(
        decisions(&workstation).await.len(),
        3,
        "tenant-42, tenant-7, and no key (a non-UTF-8 key is no key)"
    );
    assert_eq!(keyed.stats().cache_hits, 2);
}
