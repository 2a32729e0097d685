//! `tpk explain`, run as a user runs it: offline for every rule of the
//! decision, live against running mock servers.

use std::process::Output;

use serde_json::Value;
use telepresence_mock_server::{Intercept, MockServer, Side};

const ID: &str = "abc:orders";

fn tpk(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tpk"))
        .args(args)
        .env_remove(telepresence_api::env::MOCK_CONFIG)
        .env_remove(telepresence_api::env::MOCK_ADMIN_TOKEN)
        .output()
        .expect("tpk runs")
}

/// `tpk explain ARGS --json`: the exit code and the document.
fn explain(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["explain", "--json"];
    all.extend_from_slice(args);
    let output = tpk(&all);
    let json = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap(), json)
}

/// One side's answer in a document.
fn side<'j>(json: &'j Value, side: &str) -> &'j Value {
    json["sides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["side"] == side)
        .unwrap_or_else(|| panic!("no {side} in {json}"))
}

/// Offline, for the intercept `intercept` (flags) and the message `message`:
/// the exit code, whether the cluster and the workstation process it, and
/// the workstation's reason in words.
fn offline(intercept: &[&str], message: &[&str]) -> (i32, bool, bool, Value) {
    let mut args = vec!["--intercept-id", ID];
    args.extend_from_slice(intercept);
    args.extend_from_slice(message);
    let (code, json) = explain(&args);
    let cluster = side(&json, "agent")["consume_here"].as_bool().unwrap();
    let workstation = side(&json, "client")["consume_here"].as_bool().unwrap();
    (
        code,
        cluster,
        workstation,
        side(&json, "client")["reason"].clone(),
    )
}

/// The workstation gets it, the cluster leaves it.
fn to_workstation(intercept: &[&str], message: &[&str]) -> Value {
    let (code, cluster, workstation, reason) = offline(intercept, message);
    assert_eq!(
        (code, cluster, workstation),
        (0, false, true),
        "{intercept:?} {message:?}: {reason}"
    );
    reason
}

/// The cluster gets it, the workstation leaves it; the workstation's reason.
fn to_cluster(intercept: &[&str], message: &[&str]) -> Value {
    let (code, cluster, workstation, reason) = offline(intercept, message);
    assert_eq!(
        (code, cluster, workstation),
        (0, true, false),
        "{intercept:?} {message:?}: {reason}"
    );
    reason
}

fn header_miss(reason: &Value) -> (&str, &Value, &Value) {
    assert_eq!(reason["kind"], "no_match", "{reason}");
    let mismatch = &reason["candidates"][0]["mismatch"];
    assert_eq!(mismatch["filter"], "header", "{reason}");
    (
        mismatch["name"].as_str().unwrap(),
        &mismatch["expected"],
        &mismatch["got"],
    )
}

#[test]
fn a_header_filter_compares_exactly_and_names_what_it_saw() {
    let alice = ["--http-header", "x-dev=alice"];
    let reason = to_workstation(&alice, &["-H", "x-dev=alice"]);
    assert_eq!(reason["kind"], "matched");
    let reason = to_cluster(&alice, &["-H", "x-dev=Alice"]);
    let (name, expected, got) = header_miss(&reason);
    assert_eq!(
        (name, expected, got),
        (
            "x-dev",
            &serde_json::json!({"exactly": "alice"}),
            &Value::from("Alice")
        )
    );
    let reason = to_cluster(&alice, &[]);
    assert_eq!(header_miss(&reason).2, &Value::Null, "a missing header");
}

#[test]
fn baggage_members_count_when_the_consumer_reads_baggage() {
    let alice = ["--http-header", "x-dev=alice"];
    let baggage = ["-H", "baggage: x-dev=alice;ttl=60,tenant=acme"];
    let reason = to_cluster(&alice, &baggage);
    assert_eq!(header_miss(&reason).2, &Value::Null, "no x-dev header sent");
    for read in ["x-dev", "all", "tenant, x-dev"] {
        let message = [baggage[0], baggage[1], "--baggage", read];
        to_workstation(&alice, &message);
    }
    to_cluster(&alice, &[baggage[0], baggage[1], "--baggage", "tenant"]);
}

#[test]
fn the_record_key_counts_when_the_consumer_sends_it_as_a_header() {
    let tenant = ["--http-header", "x-kafka-key=tenant-42"];
    to_cluster(&tenant, &["--key", "tenant-42"]);
    to_workstation(
        &tenant,
        &["--key", "tenant-42", "--key-as-header", "x-kafka-key"],
    );
    to_cluster(
        &tenant,
        &["--key", "tenant-7", "--key-as-header", "x-kafka-key"],
    );
}

#[test]
fn headers_the_consumer_does_not_forward_do_not_count() {
    let alice = ["--http-header", "x-dev=alice"];
    to_workstation(&alice, &["-H", "x-dev=alice", "--allow-header", "X-Dev"]);
    let (code, json) = explain(&[
        "--intercept-id",
        ID,
        alice[0],
        alice[1],
        "-H",
        "x-dev=alice",
        "--allow-header",
        "traceparent",
    ]);
    assert_eq!(code, 0);
    assert_eq!(side(&json, "agent")["consume_here"], true, "{json}");
    assert_eq!(json["headers_not_forwarded"], 1, "{json}");
    to_cluster(&alice, &["-H", "x-dev=alice", "--deny-header", "x-dev"]);
}

#[test]
fn header_options_the_sdk_refuses_are_refused_by_name() {
    for (options, culprit) in [
        (
            &[
                "--key-as-header",
                "x-kafka-key",
                "--deny-header",
                "x-kafka-key",
            ][..],
            "x-kafka-key",
        ),
        (&["--baggage", "x-dev,,tenant"][..], "x-dev,,tenant"),
    ] {
        let mut args = vec!["explain", "--http-header", "x-dev=alice"];
        args.extend_from_slice(options);
        let output = tpk(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{options:?}: {stderr}");
        assert!(stderr.contains(culprit), "{options:?}: {stderr}");
    }
}

#[test]
fn header_names_compare_case_insensitively() {
    to_workstation(&["--http-header", "X-Dev=alice"], &["-H", "x-DEV: alice"]);
}

#[test]
fn only_a_headers_first_occurrence_counts() {
    let alice = ["--http-header", "x-dev=alice"];
    let reason = to_cluster(&alice, &["-H", "x-dev=bob", "-H", "x-dev=alice"]);
    assert_eq!(header_miss(&reason).2, "bob");
    to_workstation(&alice, &["-H", "x-dev=alice", "-H", "x-dev=bob"]);
}

#[test]
fn a_value_with_a_metacharacter_is_an_unanchored_regex_that_never_matches_empty() {
    let regex = ["--http-header", "x-ver=v1.0"];
    to_workstation(&regex, &["-H", "x-ver=xv1x0y"]);
    let reason = to_cluster(&["--http-header", "x-dev=.*"], &["-H", "x-dev="]);
    let (_, expected, got) = header_miss(&reason);
    assert_eq!(
        (expected, got),
        (&serde_json::json!({"match_of": ".*"}), &Value::from(""))
    );
}

#[test]
fn every_header_filter_must_match() {
    let both = ["--http-header", "a=1", "--http-header", "b=2"];
    to_workstation(&both, &["-H", "a=1", "-H", "b=2"]);
    let reason = to_cluster(&both, &["-H", "a=1", "-H", "b=3"]);
    assert_eq!(header_miss(&reason).0, "b");
}

#[test]
fn an_intercept_without_filters_takes_everything() {
    to_workstation(&["--http-header", "all"], &["-H", "x=y"]);
    to_workstation(&["--http-header", "all"], &[]);
}

#[test]
fn path_filters_any_of_which_may_match() {
    let paths = [
        "--http-path-prefix",
        "/api",
        "--http-path-equal",
        "/health",
        "--http-path-regex",
        "^/v[0-9]+/",
    ];
    for path in ["/api/x", "/health", "/v2/orders"] {
        to_workstation(&paths, &["--path", path]);
    }
    let reason = to_cluster(&paths, &["--path", "/healthz/no"]);
    let mismatch = &reason["candidates"][0]["mismatch"];
    assert_eq!(mismatch["filter"], "path");
    assert_eq!(mismatch["path"], "/healthz/no");
    assert_eq!(
        mismatch["filters"],
        serde_json::json!([{"equal": "/health"}, {"prefix": "/api"}, {"regex": "^/v[0-9]+/"}])
    );
    // A regex never matches an empty path.
    to_cluster(&["--http-path-regex", ".*"], &[]);
}

#[test]
fn before_2_25_an_intercept_has_one_path_filter_at_most() {
    let output = tpk(&[
        "explain",
        "--telepresence-version",
        "2.24",
        "--http-path-prefix",
        "/a",
        "--http-path-prefix",
        "/b",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("path"), "{stderr}");
}

#[test]
fn an_invalid_regex_is_a_literal_now_and_refused_before_2_25() {
    to_workstation(&["--http-header", "x-dev=(dev"], &["-H", "x-dev=(dev"]);
    to_cluster(&["--http-header", "x-dev=(dev"], &["-H", "x-dev=(devx"]);
    let output = tpk(&[
        "explain",
        "--telepresence-version",
        "2.24",
        "--http-header",
        "x-dev=(dev",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("(dev"), "names the value: {stderr}");
}

#[test]
fn the_workstation_decides_only_for_its_own_intercept() {
    let file = config(
        r#"
intercepts:
  - id: "abc:orders"
    headers: { x-dev: alice }
"#,
    );
    let (code, json) = explain(&[
        "--config",
        file.path(),
        "-H",
        "x-dev=alice",
        "--intercept-id",
        "other:orders",
    ]);
    assert_eq!(code, 1, "the message would be lost: {json}");
    assert_eq!(json["verdict"], "lost");
    assert_eq!(
        side(&json, "client")["reason"],
        serde_json::json!({"kind": "unknown_caller", "caller": "other:orders"})
    );
    assert_eq!(side(&json, "agent")["consume_here"], false);
}

#[test]
fn the_workstation_ignores_the_port_and_the_agent_routes_by_it() {
    let on_8080 = ["--http-header", "x-dev=alice", "--container-port", "8080"];
    to_workstation(&on_8080, &["-H", "x-dev=alice", "--port", "8080"]);
    // Asked about another port, the agent has no target there and consumes;
    // the workstation ignores the port: both process the message.
    let (code, json) = explain(&[
        "--intercept-id",
        ID,
        "--http-header",
        "x-dev=alice",
        "-H",
        "x-dev=alice",
        "--port",
        "9090",
    ]);
    assert_eq!((code, &json["verdict"]), (1, &Value::from("twice")));
    assert_eq!(
        side(&json, "agent")["reason"],
        serde_json::json!({"kind": "no_target", "container_port": 9090, "workload_ports": [8080]})
    );
}

/// A mock configuration file, removed when dropped.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn config(text: &str) -> ConfigFile {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "tpk-explain-{}-{}.yaml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).unwrap();
    ConfigFile(path)
}

const TWO_PORTS: &str = r#"
container_ports: [8080, 9090]
intercepts:
  - id: "b:orders"
    container_port: 8080
    headers: { x-dev: alice }
  - id: "a:orders"
    container_port: 8080
    headers: { x-dev: "^al" }
  - id: "c:orders"
    container_port: 9090
"#;

#[test]
fn the_agent_tries_the_targets_candidates_in_id_order() {
    let file = config(TWO_PORTS);
    let (code, json) = explain(&[
        "--config",
        file.path(),
        "--intercept-id",
        "b:orders",
        "-H",
        "x-dev=alice",
    ]);
    // a:orders sorts first and matches too: the cluster leaves the message
    // to a:orders, and b:orders' workstation processes it as well.
    assert_eq!(
        side(&json, "agent")["reason"],
        serde_json::json!({"kind": "matched", "intercept": "a:orders"})
    );
    assert_eq!(side(&json, "client")["reason"]["kind"], "matched");
    assert_eq!((code, &json["verdict"]), (0, &Value::from("once")));
    assert_eq!(side(&json, "agent")["consume_here"], false);

    let (_, json) = explain(&[
        "--config",
        file.path(),
        "--intercept-id",
        "b:orders",
        "-H",
        "x-dev=alfred",
    ]);
    assert_eq!(
        side(&json, "agent")["reason"],
        serde_json::json!({"kind": "matched", "intercept": "a:orders"}),
        "nothing tried before a:orders"
    );
    let (_, json) = explain(&[
        "--config",
        file.path(),
        "--intercept-id",
        "b:orders",
        "-H",
        "x-dev=bob",
    ]);
    let candidates: Vec<&str> = side(&json, "agent")["reason"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["intercept"].as_str().unwrap())
        .collect();
    assert_eq!(candidates, ["a:orders", "b:orders"]);
}

#[test]
fn without_a_port_the_agent_takes_the_first_target_now_and_none_before_2_25() {
    let file = config(TWO_PORTS);
    let (_, now) = explain(&["--config", file.path(), "--intercept-id", "c:orders"]);
    assert_eq!(side(&now, "agent")["reason"]["kind"], "no_match");
    assert_eq!(side(&now, "agent")["reason"]["container_port"], 8080);
    let (_, before) = explain(&[
        "--config",
        file.path(),
        "--intercept-id",
        "c:orders",
        "--telepresence-version",
        "2.24",
    ]);
    assert_eq!(
        side(&before, "agent")["reason"],
        serde_json::json!({"kind": "no_port_given", "workload_ports": [8080, 9090]})
    );
    // c:orders takes everything on 9090, but only when the port is given.
    let (code, json) = explain(&[
        "--config",
        file.path(),
        "--intercept-id",
        "c:orders",
        "--port",
        "9090",
    ]);
    assert_eq!((code, &json["verdict"]), (0, &Value::from("once")));
    assert_eq!(side(&json, "client")["consume_here"], true);
}

#[test]
fn an_intercept_on_another_port_than_the_first_needs_the_port() {
    let file = config(
        r#"
container_ports: [8080, 9090]
intercepts:
  - id: "abc:orders"
    container_port: 9090
    headers: { x-dev: alice }
"#,
    );
    let output = tpk(&["explain", "--config", file.path(), "-H", "x-dev=alice"]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("because    no intercept on port 8080"),
        "{text}"
    );
    assert!(
        text.contains("✗ processed twice") && text.contains("TELEPRESENCE_KAFKA_CONTAINER_PORT"),
        "{text}"
    );
    let told = tpk(&[
        "explain",
        "--config",
        file.path(),
        "-H",
        "x-dev=alice",
        "--port",
        "9090",
    ]);
    assert_eq!(told.status.code(), Some(0));
}

#[test]
fn several_intercepts_need_the_workstations_id() {
    let file = config(TWO_PORTS);
    let output = tpk(&["explain", "--config", file.path()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--intercept-id") && stderr.contains("a:orders"),
        "{stderr}"
    );
}

#[test]
fn the_text_says_what_each_side_does_and_why() {
    let output = tpk(&[
        "explain",
        "--intercept-id",
        ID,
        "--http-header",
        "x-dev=alice",
        "-H",
        "x-dev=bob",
    ]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("cluster: processes it"), "{text}");
    assert!(
        text.contains(&format!("workstation ({ID}): leaves it")),
        "{text}"
    );
    assert!(
        text.contains(r#"header x-dev: expected "alice", got "bob""#),
        "{text}"
    );
    assert!(text.contains("✓ processed once, by the cluster"), "{text}");
}

async fn mocks(cluster: Intercept, workstation: Intercept) -> (MockServer, MockServer) {
    let pod = MockServer::builder()
        .side(Side::Agent)
        .intercept(cluster)
        .start()
        .await
        .unwrap();
    let laptop = MockServer::builder()
        .side(Side::Client)
        .intercept(workstation)
        .start()
        .await
        .unwrap();
    (pod, laptop)
}

async fn live(pod: &MockServer, laptop: &MockServer, message: &[&str]) -> (i32, Value) {
    let mut args = vec![
        "--cluster-api".to_owned(),
        pod.url().to_string(),
        "--workstation-api".to_owned(),
        laptop.url().to_string(),
        "--intercept-id".to_owned(),
        ID.to_owned(),
    ];
    args.extend(message.iter().map(|s| (*s).to_owned()));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        explain(&args)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn live_the_servers_answer_and_their_journals_say_why() {
    let alice = Intercept::new(ID).header("x-dev", "alice");
    let (pod, laptop) = mocks(alice.clone(), alice).await;
    let (code, json) = live(&pod, &laptop, &["-H", "x-dev=bob"]).await;
    assert_eq!((code, &json["verdict"]), (0, &Value::from("once")));
    assert_eq!(side(&json, "agent")["consume_here"], true);
    let (_, expected, got) = header_miss(&side(&json, "agent")["reason"]);
    assert_eq!(
        (expected, got),
        (
            &serde_json::json!({"exactly": "alice"}),
            &Value::from("bob")
        )
    );
    assert_eq!(side(&json, "client")["consume_here"], false);

    let (code, json) = live(&pod, &laptop, &["-H", "x-dev=alice"]).await;
    assert_eq!(code, 0);
    assert_eq!(side(&json, "client")["intercept"], ID);
    assert_eq!(side(&json, "client")["reason"]["kind"], "matched");
}

#[tokio::test]
async fn live_the_consumers_header_options_shape_what_the_apis_are_asked() {
    let alice = Intercept::new(ID).header("x-dev", "alice");
    let (pod, laptop) = mocks(alice.clone(), alice).await;
    let baggage = ["-H", "baggage: x-dev=alice"];
    let (code, json) = live(&pod, &laptop, &baggage).await;
    assert_eq!(code, 0);
    assert_eq!(side(&json, "agent")["consume_here"], true, "{json}");
    let read = ["-H", "baggage: x-dev=alice", "--baggage", "x-dev"];
    let (code, json) = live(&pod, &laptop, &read).await;
    assert_eq!(code, 0);
    assert_eq!(side(&json, "client")["consume_here"], true, "{json}");
    // An allow-list leaves the routing header out, but not the marker by
    // which the journal's reason is found.
    let allow = ["-H", "x-dev=alice", "--allow-header", "traceparent"];
    let (code, json) = live(&pod, &laptop, &allow).await;
    assert_eq!(code, 0);
    assert_eq!(side(&json, "agent")["consume_here"], true, "{json}");
    assert_eq!(side(&json, "agent")["reason"]["kind"], "no_match", "{json}");
}

#[tokio::test]
async fn live_disagreeing_apis_process_a_message_twice() {
    let (pod, laptop) = mocks(
        Intercept::new(ID).header("x-dev", "bob"),
        Intercept::new(ID).header("x-dev", "alice"),
    )
    .await;
    let (code, json) = live(&pod, &laptop, &["-H", "x-dev=alice"]).await;
    assert_eq!((code, &json["verdict"]), (1, &Value::from("twice")));
    let (code, json) = live(&pod, &laptop, &["-H", "x-dev=bob"]).await;
    assert_eq!((code, &json["verdict"]), (1, &Value::from("lost")));
}

#[tokio::test]
async fn live_an_api_on_the_wrong_side_or_down_leaves_the_question_open() {
    let alice = Intercept::new(ID).header("x-dev", "alice");
    let (pod, laptop) = mocks(alice.clone(), alice).await;
    // The URLs swapped: the SDK's side check refuses both.
    let (code, json) = live(&laptop, &pod, &["-H", "x-dev=alice"]).await;
    assert_eq!((code, &json["verdict"]), (2, &Value::from("unknown")));
    let note = side(&json, "client")["note"].as_str().unwrap();
    assert!(
        note.contains("side") || note.contains("clientSide"),
        "{note}"
    );

    let down = "http://127.0.0.1:9";
    let output = tokio::task::spawn_blocking(move || {
        tpk(&[
            "explain",
            "--cluster-api",
            down,
            "--workstation-api",
            down,
            "--intercept-id",
            ID,
        ])
    })
    .await
    .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("127.0.0.1:9"), "names the API: {text}");
}

#[test]
fn without_an_intercept_there_is_nothing_to_explain() {
    let output = tpk(&["explain", "-H", "x-dev=alice", "--intercept-id", ID]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no intercept") && stderr.contains("--http-header"),
        "{stderr}"
    );

    let file = config(TWO_PORTS);
    let output = tpk(&[
        "explain",
        "--config",
        file.path(),
        "--container-port",
        "9090",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--port 9090"),
        "points to the flag meant: {stderr}"
    );
}

#[test]
fn live_and_offline_flags_do_not_mix() {
    let output = tpk(&[
        "explain",
        "--cluster-api",
        "http://127.0.0.1:9",
        "--workstation-api",
        "http://127.0.0.1:9",
        "--http-header",
        "x=y",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("drop --http-header"));
}
