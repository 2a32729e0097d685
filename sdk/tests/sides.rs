//! Misconfigurations that would lose or repeat messages are refused before
//! any message is skipped: a workstation without its intercept ID, a pod
//! with one, a workstation reading in the pod's group; and the container
//! port of a multi-port workload can come from the environment.

mod api;
mod common;
mod logs;

use std::time::Duration;

use api::{alice_api, requests_to};
use common::{Broker, start_broker};
use futures_util::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use telepresence_api::endpoint;
use telepresence_kafka::stream::FilterContext;
use telepresence_kafka::{Client, ClientBuilder, ErrorKind, FailurePolicy, HeaderList};
use telepresence_mock_server::{Fault, Intercept, MockServer, Side, Wire};

const ID: &str = "sides:orders";
const TOPIC: &str = "orders";

fn alice() -> HeaderList<'static> {
    HeaderList::new(&[("x-dev", Some(b"alice"))])
}

#[tokio::test]
async fn a_workstation_without_its_intercept_id_is_refused_by_name() {
    let workstation_api = alice_api(Side::Client, ID).await;
    // What a workstation started without TELEPRESENCE_INTERCEPT_ID looks like.
    let tp = Client::builder()
        .api_url(workstation_api.url())
        .build()
        .unwrap();
    for _ in 0..3 {
        let err = tp.should_consume(&alice()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        let message = err.to_string();
        assert!(
            message.contains("is a workstation's (it answers clientSide: true)"),
            "{message}"
        );
        assert!(
            message.contains("Set TELEPRESENCE_INTERCEPT_ID"),
            "{message}"
        );
    }
    assert_eq!(
        requests_to(&workstation_api, endpoint::INTERCEPT_INFO).await,
        1,
        "checked once, refused every time"
    );
    assert_eq!(
        workstation_api.admin().journal().await.unwrap().len(),
        1,
        "no decision was asked, so none was skipped"
    );
    // Whatever the failure policy: this is no failure of the API.
    let lenient = Client::builder()
        .api_url(workstation_api.url())
        .failure_policy(FailurePolicy::Consume)
        .build()
        .unwrap();
    assert_eq!(
        lenient.should_consume(&alice()).await.unwrap_err().kind(),
        ErrorKind::Config
    );
}

#[tokio::test]
async fn a_pod_with_an_intercept_id_is_refused_by_name() {
    let pod_api = alice_api(Side::Agent, ID).await;
    let tp = Client::builder()
        .api_url(pod_api.url())
        .intercept_id(ID)
        .build()
        .unwrap();
    let err = tp.should_consume(&alice()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .contains("is the pod's traffic-agent (it answers clientSide: false)"),
        "{err}"
    );
    #[cfg(feature = "blocking")]
    {
        let blocking = ClientBuilder::default()
            .api_url(pod_api.url())
            .intercept_id(ID)
            .build_blocking();
        let blocking = blocking.unwrap();
        let err = tokio::task::spawn_blocking(move || blocking.should_consume(&alice()))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::Config,
            "the blocking client refuses too"
        );
    }
}

#[tokio::test]
async fn matching_sides_are_checked_once_and_then_decide() {
    for (side, id) in [(Side::Client, ID), (Side::Agent, "")] {
        let server = alice_api(side, ID).await;
        let tp = Client::builder()
            .api_url(server.url())
            .intercept_id(id)
            .build()
            .unwrap();
        for _ in 0..5 {
            assert_eq!(
                tp.should_consume(&alice()).await.unwrap(),
                side == Side::Client
            );
        }
        assert_eq!(
            requests_to(&server, endpoint::INTERCEPT_INFO).await,
            1,
            "{side}: one check"
        );
    }
}

#[tokio::test]
async fn a_check_that_cannot_tell_or_cannot_reach_lets_the_decision_go_on() {
    // Telepresence 2.4 has no /intercept-info: nothing to check.
    let old = MockServer::builder()
        .telepresence_version("2.4".parse().unwrap())
        .wire(Wire::V2_4)
        .intercept(Intercept::new(ID).header("x-dev", "alice"))
        .start()
        .await
        .unwrap();
    let tp = Client::builder()
        .api_url(old.url())
        .intercept_id(ID)
        .build()
        .unwrap();
    assert!(tp.should_consume(&alice()).await.unwrap());

    // The check fails with the API: the decision meets the failure itself
    // (here: held), and the check is done once the API answers.
    let flaky = alice_api(Side::Client, ID).await;
    flaky
        .admin()
        .inject_fault(Fault::status(503).endpoint("/intercept-info").times(1))
        .await
        .unwrap();
    let tp = Client::builder()
        .api_url(flaky.url())
        .intercept_id(ID)
        .build()
        .unwrap();
    assert!(tp.should_consume(&alice()).await.unwrap());
    assert!(tp.should_consume(&alice()).await.unwrap());
    assert_eq!(
        requests_to(&flaky, endpoint::INTERCEPT_INFO).await,
        2,
        "the failed check, then the one that answered"
    );
}

/// Called at start, the check reports what it found, API failures included,
/// so that a program can stop before it subscribes.
#[tokio::test]
async fn check_side_at_start_names_a_mismatch_and_reports_a_failing_api() {
    let workstation_api = alice_api(Side::Client, ID).await;
    let without_id = Client::builder()
        .api_url(workstation_api.url())
        .build()
        .unwrap();
    assert_eq!(
        without_id.check_side().await.unwrap_err().kind(),
        ErrorKind::Config
    );
    let with_id = Client::builder()
        .api_url(workstation_api.url())
        .intercept_id(ID)
        .build()
        .unwrap();
    with_id.check_side().await.unwrap();
    assert!(with_id.should_consume(&alice()).await.unwrap());
    assert_eq!(
        requests_to(&workstation_api, endpoint::INTERCEPT_INFO).await,
        2,
        "one check per client"
    );

    workstation_api
        .admin()
        .inject_fault(Fault::status(503).endpoint("/intercept-info").times(1))
        .await
        .unwrap();
    let tp = Client::builder()
        .api_url(workstation_api.url())
        .intercept_id(ID)
        .build()
        .unwrap();
    assert_eq!(tp.check_side().await.unwrap_err().kind(), ErrorKind::Status);
    tp.check_side().await.unwrap();

    // Nothing to check outside Telepresence.
    Client::builder()
        .build()
        .unwrap()
        .check_side()
        .await
        .unwrap();

    #[cfg(feature = "blocking")]
    {
        let blocking = ClientBuilder::default()
            .api_url(workstation_api.url())
            .build_blocking()
            .unwrap();
        let err = tokio::task::spawn_blocking(move || blocking.check_side())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "the blocking client too");
    }
}

/// An intercept's environment without the API's port is within the rules
/// (no port: not under Telepresence, every message processed) but seldom
/// meant: the log says so, and how to enable the API.
#[test]
fn an_intercept_id_without_an_api_port_is_warned_about() {
    let (logs, _guard) = logs::Logs::capture();
    let vars = [("TELEPRESENCE_INTERCEPT_ID", ID)];
    let tp = ClientBuilder::from_env_vars(|name| {
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
    })
    .unwrap()
    .build()
    .unwrap();
    assert!(!tp.is_enabled());
    let warnings = logs.lines("WARN");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("TELEPRESENCE_INTERCEPT_ID is set but TELEPRESENCE_API_PORT is not")
            && warnings[0].contains("telepresenceAPI.port"),
        "{}",
        warnings[0]
    );
    // The cluster's environment, and no environment at all, say nothing.
    for vars in [&[][..], &[("TELEPRESENCE_API_PORT", "9980")][..]] {
        let _ = ClientBuilder::from_env_vars(|name| {
            vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
        })
        .unwrap();
    }
    assert_eq!(logs.lines("WARN").len(), 1);
}

/// A consumer in `group`, not yet subscribed: a check of its group needs no
/// membership, and a consumer that never joined closes at once. (Dropping a
/// consumer caught joining a group can hang in librdkafka 2.12's close path
/// under `group.protocol=consumer`: its incremental unassign is never
/// answered.)
fn consumer(broker: &Broker, group: &str) -> StreamConsumer<FilterContext> {
    ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false")
        .create_with_context(FilterContext::default())
        .unwrap()
}

/// A workstation's consumer in the pod's group is refused before its first
/// message: nothing skipped, nothing stored.
#[tokio::test]
async fn a_workstation_in_the_pods_group_is_refused_before_any_message() {
    let broker = start_broker(TOPIC, 2);
    common::produce(
        &broker,
        TOPIC,
        0..10,
        10,
        |id| id as i32 % 2,
        |_| vec![("x-dev", "alice".to_owned())],
    )
    .await;
    let workstation_api = alice_api(Side::Client, ID).await;
    let tp = Client::builder()
        .api_url(workstation_api.url())
        .intercept_id(ID)
        .build()
        .unwrap();

    let shared = consumer(&broker, "orders");
    let mut messages = tp.filter_stream(&shared, 32);
    let err = messages.next().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(
        err.to_string()
            .contains("reads in group \"orders\", which is not its own"),
        "{err}"
    );
    assert!(
        err.to_string().contains("\"orders-sides-orders\""),
        "the fix names the group: {err}"
    );
    assert!(
        messages.next().await.is_none(),
        "and nothing after the refusal"
    );
    assert_eq!(messages.progress().total(), 0);
    assert!(
        workstation_api.admin().journal().await.unwrap().is_empty(),
        "no decision asked"
    );
    assert!(tp.check_group(&shared).is_err());

    let own = consumer(&broker, &tp.group_id("orders"));
    assert!(tp.check_group(&own).is_ok());
    own.subscribe(&[TOPIC]).unwrap();
    let mut messages = tp.filter_stream(&own, 32);
    tokio::time::timeout(Duration::from_secs(30), messages.next())
        .await
        .expect("its own group works")
        .unwrap()
        .unwrap_or_else(|e| panic!("{e}"));

    // Opted out on purpose, or in the cluster: no check.
    let allowed = Client::builder()
        .api_url(workstation_api.url())
        .intercept_id(ID)
        .allow_shared_group(true)
        .build()
        .unwrap();
    assert!(allowed.check_group(&shared).is_ok());
    let pod = Client::builder()
        .api_url(alice_api(Side::Agent, ID).await.url())
        .build()
        .unwrap();
    assert!(pod.check_group(&shared).is_ok());
}

#[tokio::test]
async fn the_container_port_can_come_from_the_environment() {
    let server = MockServer::builder()
        .side(Side::Agent)
        .workload_ports([8080, 9090])
        .intercept(
            Intercept::new(ID)
                .container_port(9090)
                .header("x-dev", "alice"),
        )
        .start()
        .await
        .unwrap();
    let vars = [
        ("TELEPRESENCE_API_PORT", server.port().to_string()),
        ("TELEPRESENCE_API_HOST", "127.0.0.1".to_owned()),
        ("TELEPRESENCE_KAFKA_CONTAINER_PORT", "9090".to_owned()),
    ];
    let tp = ClientBuilder::from_env_vars(|name| {
        vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into())
    })
    .unwrap()
    .build()
    .unwrap();
    assert!(
        !tp.should_consume(&alice()).await.unwrap(),
        "alice's belong to the workstation"
    );
    let journal = server.admin().journal().await.unwrap();
    let decision = journal
        .iter()
        .find(|e| e.endpoint == "/consume-here")
        .unwrap();
    assert_eq!(decision.container_port, "9090");
}
