//! `tpk doctor`, end to end: the binary against the mock API and an
//! in-process Kafka, with the environment under the test's control.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use telepresence_api::{Intercept, Side};
use telepresence_kafka_examples::EmbeddedKafka;
use telepresence_mock_server::MockServer;

const ID: &str = "abc:orders";

/// What one run of `tpk` gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The line of check `name`: its mark and what follows the name.
    fn line(&self, name: &str) -> (char, &str) {
        self.find(name)
            .unwrap_or_else(|| panic!("no `{name}` line in:\n{}", self.stdout))
    }

    fn find(&self, name: &str) -> Option<(char, &str)> {
        self.stdout.lines().find_map(|line| check_line(line, name))
    }

    /// The fix printed under check `name`.
    fn fix(&self, name: &str) -> &str {
        let mut lines = self.stdout.lines();
        lines
            .find(|line| check_line(line, name).is_some())
            .and_then(|_| lines.next())
            .and_then(|next| next.trim_start().strip_prefix("fix: "))
            .unwrap_or_else(|| panic!("no fix under `{name}` in:\n{}", self.stdout))
    }

    /// The names of the checks, in order.
    fn names(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter(|line| line.starts_with(['✓', '✗', '·']))
            .map(|line| line.split_whitespace().nth(1).unwrap_or_default())
            .collect()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// `line`'s mark and what follows the name, when it is the line of check `name`.
fn check_line<'a>(line: &'a str, name: &str) -> Option<(char, &'a str)> {
    let mut chars = line.chars();
    let mark = chars.next().filter(|c| ['✓', '✗', '·'].contains(c))?;
    let rest = chars.as_str().strip_prefix(' ')?.strip_prefix(name)?;
    // `api` must not find `api-side`.
    rest.starts_with("  ").then(|| (mark, rest.trim_start()))
}

/// Runs `tpk` with exactly `env` for an environment: nothing of the test's
/// own (a developer's KAFKA_BROKERS, say) leaks in.
fn tpk(env: &[(&str, String)], args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_tpk"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .output()
        .expect("tpk runs");
    Run {
        code: output.status.code().expect("tpk exits, not killed"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8"),
    }
}

/// The mock API of `side`, with the intercept `abc:orders` on `x-dev: alice`.
fn api(side: Side) -> MockServer {
    MockServer::builder()
        .side(side)
        .intercept(
            Intercept::new(ID)
                .header("x-dev", "alice")
                .metadata("owner", "alice"),
        )
        .start_blocking()
        .expect("the mock API starts")
}

/// The workstation's environment for `server`, whatever side it mocks.
fn workstation_env(server: &MockServer) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = server.env().vars().into();
    env.retain(|(name, _)| *name != "TELEPRESENCE_INTERCEPT_ID");
    env.push(("TELEPRESENCE_INTERCEPT_ID", ID.to_owned()));
    env
}

/// The pod's environment for `server`: no intercept ID.
fn pod_env(server: &MockServer) -> Vec<(&'static str, String)> {
    let mut env: Vec<_> = server.env().vars().into();
    env.retain(|(name, _)| *name != "TELEPRESENCE_INTERCEPT_ID");
    env
}

/// A loopback port nothing listens on (it was free a moment ago).
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `orders`, 3 partitions, with 4, 3 and 2 messages; the workstation's
/// group has committed 1 on partition 0 and 3 on partition 1, nothing on 2.
fn kafka_with_commits() -> EmbeddedKafka {
    let kafka = EmbeddedKafka::start("orders", 3).expect("Kafka starts");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .create()
        .expect("a producer");
    for (partition, count) in [(0, 4), (1, 3), (2, 2)] {
        for _ in 0..count {
            producer
                .send(
                    BaseRecord::<(), str>::to("orders")
                        .payload("x")
                        .partition(partition),
                )
                .expect("queued");
        }
    }
    producer.flush(Duration::from_secs(10)).expect("produced");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("orders", 0, Offset::Offset(1))
        .unwrap();
    offsets
        .add_partition_offset("orders", 1, Offset::Offset(3))
        .unwrap();
    committer(&kafka, "orders-abc-orders")
        .commit(&offsets, CommitMode::Sync)
        .expect("committed");
    kafka
}

/// A consumer of `group` that only commits or reads commits (never joins).
fn committer(kafka: &EmbeddedKafka, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", &kafka.bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer")
}

fn committed(kafka: &EmbeddedKafka, group: &str) -> Vec<Offset> {
    let mut partitions = TopicPartitionList::new();
    for p in 0..3 {
        partitions.add_partition("orders", p);
    }
    committer(kafka, group)
        .committed_offsets(partitions, Duration::from_secs(10))
        .expect("the committed offsets")
        .elements()
        .iter()
        .map(|e| e.offset())
        .collect()
}

fn healthy_args(kafka: &EmbeddedKafka) -> Vec<String> {
    [
        "doctor",
        "-H",
        "x-dev=alice",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        "orders",
        "--group",
        "orders",
        "--group-id",
        "orders-abc-orders",
    ]
    .map(str::to_owned)
    .to_vec()
}

const ALL_CHECKS: [&str; 10] = [
    "environment",
    "side",
    "api",
    "api-side",
    "intercept",
    "broker",
    "topic",
    "group",
    "members",
    "lag",
];

#[test]
fn a_healthy_workstation_passes_every_check_and_commits_nothing() {
    let server = api(Side::Client);
    let kafka = kafka_with_commits();
    let before = committed(&kafka, "orders-abc-orders");
    let args = healthy_args(&kafka);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tpk(&workstation_env(&server), &args);

    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.names(), ALL_CHECKS);
    assert!(!run.stdout.contains('✗'), "{}", run.stdout);
    let port = server.port();
    assert_eq!(
        run.line("environment"),
        (
            '✓',
            &*format!(
                "TELEPRESENCE_API_PORT={port}, TELEPRESENCE_API_HOST=127.0.0.1, \
                 TELEPRESENCE_INTERCEPT_ID=abc:orders: the API is at http://127.0.0.1:{port}/"
            )
        )
    );
    assert_eq!(
        run.line("side"),
        (
            '·',
            "the workstation of intercept abc:orders: it processes the messages the intercept takes"
        )
    );
    assert_eq!(
        run.line("api"),
        ('✓', &*format!("GET http://127.0.0.1:{port}/healthz: up"))
    );
    assert_eq!(run.line("api-side").0, '✓');
    assert_eq!(
        run.line("intercept"),
        (
            '✓',
            "x-dev=alice: intercepted by abc:orders, metadata owner=alice: processed here"
        )
    );
    assert_eq!(run.line("broker").0, '✓');
    assert!(run.line("broker").1.starts_with(&kafka.bootstrap));
    assert_eq!(run.line("topic"), ('✓', "orders: 3 partition(s)"));
    assert_eq!(
        run.line("group"),
        (
            '✓',
            "orders-abc-orders: this workstation's own group; the pod reads in orders"
        )
    );
    // librdkafka's mock cluster does not describe groups: information, not a failure.
    assert_eq!(run.line("members").0, '·');
    assert_eq!(
        run.line("lag"),
        (
            '·',
            "orders-abc-orders on orders: 3 message(s) behind on the 2 partition(s) with a \
             commit: p0 3 (at 1 of 4), p1 0 (at 3 of 3), p2 no commit (2 in the log)"
        )
    );
    assert!(
        run.stdout
            .ends_with("\n7 passed, 0 failed, 3 for information\n"),
        "{}",
        run.stdout
    );
    assert_eq!(committed(&kafka, "orders-abc-orders"), before);
    assert_eq!(before[..2], [Offset::Offset(1), Offset::Offset(3)]);
}

#[test]
fn the_json_report_holds_the_same_checks() {
    let server = api(Side::Client);
    let kafka = kafka_with_commits();
    let mut args = vec!["--json".to_owned()];
    args.extend(healthy_args(&kafka));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = tpk(&workstation_env(&server), &args);

    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["passed"], true);
    let checks = report["checks"].as_array().expect("a list of checks");
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ALL_CHECKS);
    for check in checks {
        let status = check["status"].as_str().unwrap();
        let expected = match check["name"].as_str().unwrap() {
            "side" | "members" | "lag" => "info",
            _ => "pass",
        };
        assert_eq!(status, expected, "{check}");
        assert!(check["fix"].is_null(), "{check}");
        assert!(!check["seen"].as_str().unwrap().is_empty(), "{check}");
    }
    assert_eq!(
        checks[7]["seen"],
        "orders-abc-orders: this workstation's own group; the pod reads in orders"
    );
}

#[test]
fn an_api_that_is_down_fails_naming_its_url() {
    let port = dead_port();
    let env = [
        ("TELEPRESENCE_API_PORT", port.to_string()),
        ("TELEPRESENCE_API_HOST", "127.0.0.1".to_owned()),
        ("TELEPRESENCE_INTERCEPT_ID", ID.to_owned()),
    ];
    let run = tpk(&env, &["doctor", "-H", "x-dev=alice", "--timeout", "2s"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let (mark, seen) = run.line("api");
    assert_eq!(mark, '✗');
    assert!(
        seen.starts_with(&format!(
            "cannot reach the Telepresence API at http://127.0.0.1:{port}/healthz"
        )),
        "{seen}"
    );
    let fix = run.fix("api");
    assert!(fix.contains("`telepresence status`"), "{fix}");
    assert!(
        fix.contains("TELEPRESENCE_API_PORT and TELEPRESENCE_API_HOST"),
        "{fix}"
    );
    // Nothing more can be asked of an API that is down.
    assert!(run.find("api-side").is_none() && run.find("intercept").is_none());

    let run = tpk(&env, &["--json", "doctor"]);
    assert_eq!(run.code, 1);
    let report = run.json();
    assert_eq!(report["passed"], false);
    let api = &report["checks"][2];
    assert_eq!(
        (&api["name"], &api["status"]),
        (&"api".into(), &"fail".into())
    );
    assert!(api["fix"].as_str().unwrap().contains("telepresence status"));
}

#[test]
fn a_workstation_pointed_at_the_pods_api_fails_with_the_fix() {
    let server = api(Side::Agent);
    let run = tpk(&workstation_env(&server), &["doctor", "-H", "x-dev=alice"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let (mark, seen) = run.line("api-side");
    assert_eq!(mark, '✗');
    assert!(
        seen.contains("is the pod's traffic-agent (clientSide: false), but this process has the intercept ID abc:orders"),
        "{seen}"
    );
    assert_eq!(
        run.fix("api-side"),
        "point TELEPRESENCE_API_PORT and TELEPRESENCE_API_HOST at the workstation's API, from \
         the intercept's environment (`telepresence intercept ... --env-file FILE`); in the pod, \
         unset TELEPRESENCE_INTERCEPT_ID"
    );
    // The answer of the wrong side says nothing about the intercept.
    assert!(run.find("intercept").is_none(), "{}", run.stdout);
}

#[test]
fn a_pod_pointed_at_a_workstations_api_fails_with_the_fix() {
    let server = api(Side::Client);
    let run = tpk(&pod_env(&server), &["doctor"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("side").1,
        "the cluster (TELEPRESENCE_INTERCEPT_ID unset): the pod processes every message no \
         intercept takes"
    );
    let (mark, seen) = run.line("api-side");
    assert_eq!(mark, '✗');
    assert!(
        seen.contains(
            "is a workstation's API (clientSide: true), but TELEPRESENCE_INTERCEPT_ID is unset"
        ),
        "{seen}"
    );
    assert!(
        run.fix("api-side")
            .starts_with("set TELEPRESENCE_INTERCEPT_ID to the intercept's ID"),
        "{}",
        run.fix("api-side")
    );
}

#[test]
fn the_pod_with_its_own_api_passes_and_says_what_it_leaves() {
    let server = api(Side::Agent);
    let env = pod_env(&server);
    let run = tpk(&env, &["doctor", "-H", "x-dev=alice", "--group", "orders"]);

    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("api-side"),
        (
            '✓',
            "the pod's traffic-agent (clientSide: false), as the pod needs"
        )
    );
    assert_eq!(
        run.line("intercept"),
        (
            '·',
            "x-dev=alice: intercepted, metadata owner=alice: the pod leaves it to the workstation"
        )
    );
    assert_eq!(
        run.line("group"),
        (
            '·',
            "orders: the pod's group; a workstation reads in orders-<intercept ID> \
             (tp.group_id(\"orders\") there)"
        )
    );
    let run = tpk(&env, &["doctor", "-H", "x-dev: bob"]);
    assert_eq!(run.code, 0);
    assert_eq!(
        run.line("intercept"),
        ('·', "x-dev=bob: not intercepted: the pod processes it")
    );
}

#[test]
fn the_sample_is_asked_about_with_the_consumers_header_options() {
    let server = api(Side::Agent);
    let env = pod_env(&server);
    let baggage = ["doctor", "-H", "baggage: x-dev=alice"];
    let run = tpk(&env, &baggage);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("intercept"),
        (
            '·',
            "baggage=x-dev=alice: not intercepted: the pod processes it"
        )
    );
    let run = tpk(
        &env,
        &[baggage[0], baggage[1], baggage[2], "--baggage", "x-dev"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("intercept"),
        (
            '·',
            "baggage=x-dev=alice: intercepted, metadata owner=alice: the pod leaves it to the \
             workstation"
        )
    );
    let run = tpk(
        &env,
        &["doctor", "--key", "alice", "--key-as-header", "x-dev"],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.line("intercept").1.contains(": intercepted"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_pod_asks_with_the_container_port_given() {
    // The intercept is on the workload's second port: without the port the
    // agent looks at the first one and finds no intercept there.
    let server = MockServer::builder()
        .side(Side::Agent)
        .workload_ports([8080, 9090])
        .intercept(
            Intercept::new(ID)
                .container_port(9090)
                .header("x-dev", "alice"),
        )
        .start_blocking()
        .expect("the mock API starts");
    let env = pod_env(&server);
    let unported = tpk(&env, &["doctor", "-H", "x-dev=alice"]);
    assert_eq!(
        unported.line("intercept"),
        ('·', "x-dev=alice: not intercepted: the pod processes it")
    );
    for flag in ["--container-port", "--port"] {
        let run = tpk(&env, &["doctor", "-H", "x-dev=alice", flag, "9090"]);
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        assert_eq!(
            run.line("intercept"),
            (
                '·',
                "x-dev=alice, container port 9090: intercepted, no metadata: the pod leaves it to the workstation"
            ),
            "{flag}"
        );
    }
}

#[test]
fn a_workstation_in_the_pods_group_fails_and_is_told_its_own() {
    let server = api(Side::Client);
    let env = workstation_env(&server);
    let run = tpk(
        &env,
        &[
            "doctor",
            "-H",
            "x-dev=alice",
            "--group",
            "orders",
            "--group-id",
            "orders",
        ],
    );

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let (mark, seen) = run.line("group");
    assert_eq!(mark, '✗');
    assert!(
        seen.starts_with("orders: not this workstation's own group but the pod's:"),
        "{seen}"
    );
    assert_eq!(
        run.fix("group"),
        "set the consumer's group.id to orders-abc-orders (tp.group_id(\"orders\")), this \
         workstation's own group"
    );
    // Only the group fails.
    assert_eq!(run.stdout.matches('✗').count(), 1, "{}", run.stdout);
}

#[test]
fn the_pods_group_copied_to_the_workstation_is_no_mistake() {
    // Telepresence copies the pod's environment: KAFKA_GROUP is the pod's
    // group on the workstation too, and a consumer that appends the
    // intercept ID to it is right.
    let server = api(Side::Client);
    let mut env = workstation_env(&server);
    env.push(("KAFKA_GROUP", "orders".to_owned()));
    let run = tpk(&env, &["doctor", "-H", "x-dev=alice"]);

    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("group"),
        (
            '·',
            "this workstation must read in orders-abc-orders (tp.group_id), the pod in orders; \
             give --group-id to check the group.id the consumer sets"
        )
    );
}

#[test]
fn headers_the_intercept_does_not_take_fail_on_the_workstation() {
    let server = api(Side::Client);
    let env = workstation_env(&server);
    let run = tpk(&env, &["doctor", "-H", "x-dev: bob"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("intercept"),
        (
            '✗',
            "x-dev=bob: not intercepted by abc:orders: the workstation skips it, the pod \
             processes it"
        )
    );
    assert_eq!(
        run.fix("intercept"),
        "the intercept's filters do not match these headers; compare with `tpk explain`"
    );

    // Without -H there is no sample to expect anything of.
    let run = tpk(&env, &["doctor"]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    let (mark, seen) = run.line("intercept");
    assert_eq!(mark, '·');
    assert!(
        seen.starts_with("a message without headers: not intercepted"),
        "{seen}"
    );
}

#[test]
fn unreachable_brokers_fail_and_nothing_more_is_asked_of_them() {
    let brokers = format!("127.0.0.1:{}", dead_port());
    let run = tpk(
        &[],
        &[
            "doctor",
            "--brokers",
            &brokers,
            "--topic",
            "orders",
            "--group",
            "orders",
            "--timeout",
            "1s",
        ],
    );

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let (mark, seen) = run.line("broker");
    assert_eq!(mark, '✗');
    assert!(
        seen.starts_with(&format!("{brokers}: no metadata within 1s")),
        "{seen}"
    );
    assert!(
        run.fix("broker")
            .starts_with("check --brokers (or KAFKA_BROKERS)")
    );
    assert_eq!(
        run.names(),
        ["environment", "side", "broker", "group"],
        "{}",
        run.stdout
    );
}

#[test]
fn a_missing_topic_fails_and_is_not_created() {
    let kafka = EmbeddedKafka::start("orders", 3).expect("Kafka starts");
    let env = [
        ("KAFKA_BROKERS", kafka.bootstrap.clone()),
        ("KAFKA_TOPIC", "ordres".to_owned()),
    ];
    let run = tpk(&env, &["doctor"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("topic"),
        (
            '✗',
            &*format!("ordres: no such topic at {}", kafka.bootstrap)
        )
    );
    assert!(
        run.fix("topic")
            .starts_with("check --topic (or KAFKA_TOPIC)")
    );
    let run = tpk(&env, &["doctor"]);
    assert_eq!(run.line("topic").0, '✗', "the first run created nothing");
}

#[test]
fn not_under_telepresence_is_information_not_a_failure() {
    let run = tpk(&[], &["doctor", "-H", "x-dev=alice", "--group", "orders"]);

    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("environment"),
        (
            '✓',
            "TELEPRESENCE_API_PORT unset, TELEPRESENCE_API_HOST unset, TELEPRESENCE_INTERCEPT_ID unset"
        )
    );
    assert_eq!(
        run.line("side"),
        (
            '·',
            "not under Telepresence (TELEPRESENCE_API_PORT unset, empty or 0): every message is \
             processed here, as without Telepresence"
        )
    );
    assert_eq!(run.names(), ["environment", "side", "group", "kafka"]);

    // Empty is unset, for Kafka's variables too.
    let env = [
        ("KAFKA_BROKERS", String::new()),
        ("KAFKA_GROUP", String::new()),
    ];
    let run = tpk(&env, &["doctor", "--topic="]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.names(), ["environment", "side", "kafka"]);
}

#[test]
fn an_invalid_variable_fails_by_name_with_its_fix() {
    let env = [("TELEPRESENCE_API_PORT", "99999".to_owned())];
    let run = tpk(&env, &["doctor"]);

    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.line("environment"),
        (
            '✗',
            "TELEPRESENCE_API_PORT=\"99999\": out of range (1 to 65535)"
        )
    );
    assert!(
        run.fix("environment")
            .starts_with("set TELEPRESENCE_API_PORT to the API's port (1 to 65535)")
    );

    let env = [("TELEPRESENCE_INTERCEPT_ID", ID.to_owned())];
    let run = tpk(&env, &["doctor"]);
    assert_eq!(run.code, 1);
    assert_eq!(run.line("side").0, '✗');
    assert!(run.fix("side").starts_with("enable Telepresence's API"));
}

#[test]
fn bad_usage_exits_2_naming_the_value() {
    for (args, quoted) in [
        (&["doctor", "-H", "x-dev"][..], "x-dev"),
        (&["doctor", "-H", "x dev=alice"][..], "x dev"),
        (&["doctor", "--timeout", "5 minutes"][..], "5 minutes"),
        (&["doctor", "-X", "debug"][..], "debug"),
    ] {
        let run = tpk(&[], args);
        assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stdout.is_empty(), "{args:?}: {}", run.stdout);
        assert!(
            run.stderr.contains(&format!("`{quoted}`")),
            "{args:?}: {}",
            run.stderr
        );
    }
    // A setting librdkafka refuses is bad input too: nothing is checked.
    let run = tpk(
        &[],
        &[
            "doctor",
            "--brokers",
            "127.0.0.1:1",
            "-X",
            "no.such.setting=1",
        ],
    );
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("no.such.setting"), "{}", run.stderr);
}
