//! `tpk preview`, end to end: the binary against librdkafka's mock cluster
//! (in this process) and, live, against in-process mock servers.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::Value;
use telepresence_mock_server::{Intercept, MockServer, Side};

const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const MESSAGES: usize = 300;
/// Timestamps of the test's messages start here, one millisecond apart, so
/// that "the newest" is known.
const EPOCH_MS: i64 = 1_700_000_000_000;
/// Generous: builds and tests share two cores.
const PATIENCE: Duration = Duration::from_secs(90);

/// Who a message is for: every third alice's, every third bob's, the others
/// without the header.
fn developer(i: usize) -> Option<&'static str> {
    match i % 3 {
        0 => Some("alice"),
        1 => Some("bob"),
        _ => None,
    }
}

/// Blocks of ten messages go round the partitions, so that each partition
/// holds a third of each developer's messages.
fn partition(i: usize) -> i32 {
    ((i / 10) % PARTITIONS as usize) as i32
}

/// One produced message, as the test knows it.
#[derive(Clone, Debug)]
struct Sent {
    i: usize,
    partition: i32,
    offset: i64,
}

/// librdkafka's mock cluster, hosted by the test's producer: the handle
/// gives access to the cluster's request log, which tells what the preview
/// asked of the brokers.
struct Kafka {
    producer: FutureProducer,
    bootstrap: String,
    sent: Vec<Sent>,
}

impl Kafka {
    fn start() -> Self {
        let producer: FutureProducer = ClientConfig::new()
            .set("test.mock.num.brokers", "1")
            .set("linger.ms", "0")
            .create()
            .expect("a producer with a mock cluster");
        let cluster = producer
            .client()
            .mock_cluster()
            .expect("the producer's mock cluster");
        cluster
            .create_topic(TOPIC, PARTITIONS, 1)
            .expect("creating the topic");
        let bootstrap = cluster.bootstrap_servers();
        drop(cluster);
        let kafka = Self {
            producer,
            bootstrap,
            sent: Vec::new(),
        };
        // SAFETY: the handle is alive (owned by `kafka`) and hosts a mock
        // cluster, which lives as long as it.
        unsafe { rdkafka::bindings::rd_kafka_mock_start_request_tracking(kafka.cluster()) };
        kafka
    }

    fn cluster(&self) -> *mut rdkafka::bindings::rd_kafka_mock_cluster_t {
        // SAFETY: the producer's handle is valid while `self` is.
        let cluster = unsafe {
            rdkafka::bindings::rd_kafka_handle_mock_cluster(self.producer.client().native_ptr())
        };
        assert!(!cluster.is_null(), "the producer hosts a mock cluster");
        cluster
    }

    /// The API keys of every request the cluster has received so far.
    fn requests(&self) -> Vec<i16> {
        let cluster = self.cluster();
        let mut count = 0usize;
        // SAFETY: the array and its requests are ours until destroyed, which
        // happens once, after they are read.
        unsafe {
            let requests = rdkafka::bindings::rd_kafka_mock_get_requests(cluster, &mut count);
            let keys = (0..count)
                .map(|n| rdkafka::bindings::rd_kafka_mock_request_api_key(*requests.add(n)))
                .collect();
            rdkafka::bindings::rd_kafka_mock_request_destroy_array(requests, count);
            keys
        }
    }

    /// Produces messages `from..to`, one at a time so that offsets follow
    /// the numbering.
    async fn produce(&mut self, range: std::ops::Range<usize>) {
        for i in range {
            let seq = i.to_string();
            let mut headers = OwnedHeaders::new().insert(Header {
                key: "seq",
                value: Some(&seq),
            });
            if let Some(dev) = developer(i) {
                headers = headers.insert(Header {
                    key: "x-dev",
                    value: Some(dev),
                });
            }
            // The key is the number too, for consumers that route by key.
            let record = FutureRecord::to(TOPIC)
                .partition(partition(i))
                .key(&seq)
                .payload(&seq)
                .timestamp(EPOCH_MS + i as i64)
                .headers(headers);
            let (p, offset) = self
                .producer
                .send(record, Duration::from_secs(30))
                .await
                .map(|delivery| (delivery.partition, delivery.offset))
                .expect("producing");
            assert_eq!(p, partition(i));
            self.sent.push(Sent {
                i,
                partition: p,
                offset,
            });
        }
        self.producer
            .flush(Duration::from_secs(30))
            .expect("flushing");
    }

    /// The messages a window of the `last` of each partition holds.
    fn last(&self, last: usize) -> Vec<Sent> {
        let mut kept = Vec::new();
        for p in 0..PARTITIONS {
            let of_p: Vec<&Sent> = self.sent.iter().filter(|s| s.partition == p).collect();
            kept.extend(
                of_p[of_p.len().saturating_sub(last)..]
                    .iter()
                    .copied()
                    .cloned(),
            );
        }
        kept
    }
}

/// The binary, with an environment that says nothing of Kafka or mocks.
fn tpk(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tpk"));
    command
        .args(args)
        .env_remove("KAFKA_BROKERS")
        .env_remove("KAFKA_TOPIC")
        .env_remove("TELEPRESENCE_MOCK_CONFIG");
    command
}

/// Runs the binary off the runtime's threads (the mock servers answer on
/// them meanwhile).
async fn run(args: &[&str]) -> Output {
    let mut command = tpk(args);
    tokio::task::spawn_blocking(move || command.output().expect("running tpk"))
        .await
        .expect("the blocking task")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Whether a line of `out` has exactly these words (tables align with
/// spaces that do not matter here).
fn has_row(out: &str, words: &str) -> bool {
    let words: Vec<&str> = words.split_whitespace().collect();
    out.lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == words)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The counts a report gives, as (messages, workstation, cluster, overlap,
/// missing).
fn counts(report: &Value) -> (u64, u64, u64, u64, u64) {
    let c = &report["counts"];
    let n = |key: &str| {
        c[key]
            .as_u64()
            .unwrap_or_else(|| panic!("counts.{key} in {c}"))
    };
    (
        n("messages"),
        n("workstation"),
        n("cluster"),
        n("overlap"),
        n("missing"),
    )
}

/// The rows of the histogram of `header`: (value, messages, workstation, cluster).
fn histogram(report: &Value, header: &str) -> Vec<(Option<String>, u64, u64, u64)> {
    let histograms = report["histograms"].as_array().expect("histograms");
    let h = histograms
        .iter()
        .find(|h| h["header"] == header)
        .unwrap_or_else(|| panic!("no histogram of {header} in {histograms:?}"));
    h["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|row| {
            (
                row["value"].as_str().map(str::to_owned),
                row["messages"].as_u64().unwrap(),
                row["workstation"].as_u64().unwrap(),
                row["cluster"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The samples of one kind: (partition, offset, seq header).
fn samples(report: &Value, kind: &str) -> Vec<(i64, i64, String)> {
    report["samples"][kind]
        .as_array()
        .unwrap_or_else(|| panic!("samples.{kind}"))
        .iter()
        .map(|s| {
            let seq = s["headers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["name"] == "seq")
                .and_then(|h| h["value"].as_str())
                .unwrap()
                .to_owned();
            (
                s["partition"].as_i64().unwrap(),
                s["offset"].as_i64().unwrap(),
                seq,
            )
        })
        .collect()
}

/// What the test expects of `kept` when the workstation takes alice's.
fn expected_for_alice(kept: &[Sent]) -> (u64, u64, u64, u64, u64) {
    let alice = kept
        .iter()
        .filter(|s| developer(s.i) == Some("alice"))
        .count() as u64;
    (kept.len() as u64, alice, kept.len() as u64 - alice, 0, 0)
}

/// The newest `n` of `kept` that `which` selects, oldest first.
fn newest(kept: &[Sent], n: usize, which: impl Fn(&Sent) -> bool) -> Vec<(i64, i64, String)> {
    let mut chosen: Vec<&Sent> = kept.iter().filter(|s| which(s)).collect();
    chosen.sort_by_key(|s| s.i);
    chosen[chosen.len().saturating_sub(n)..]
        .iter()
        .map(|s| (i64::from(s.partition), s.offset, s.i.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_counts_values_and_samples_are_exact() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let output = run(&[
        "--json",
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--intercept-id",
        "alice-id",
        "--http-header",
        "x-dev=alice",
        "--by",
        "SEQ",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json(&output);
    let kept = kafka.last(1000);
    assert_eq!(kept.len(), MESSAGES);
    assert_eq!(counts(&report), expected_for_alice(&kept));
    assert_eq!(counts(&report), (300, 100, 200, 0, 0));
    assert_eq!(report["passed"], true);
    assert_eq!(report["decided_by"]["mode"], "offline");
    assert_eq!(report["decided_by"]["workstation_intercept"], "alice-id");
    assert_eq!(
        histogram(&report, "x-dev"),
        [
            (Some("alice".to_owned()), 100, 100, 0),
            (Some("bob".to_owned()), 100, 0, 100),
            (None, 100, 0, 100),
        ]
    );
    // --by adds a header, named in any case: one value per message.
    assert_eq!(histogram(&report, "seq").len(), MESSAGES);
    assert_eq!(
        samples(&report, "workstation"),
        newest(&kept, 3, |s| developer(s.i) == Some("alice"))
    );
    assert_eq!(
        samples(&report, "cluster"),
        newest(&kept, 3, |s| developer(s.i) != Some("alice"))
    );
    assert_eq!(samples(&report, "overlap"), []);
    assert_eq!(samples(&report, "missing"), []);
    for window in report["partitions"].as_array().unwrap() {
        assert_eq!((&window["from"], &window["to"]), (&0.into(), &100.into()));
        assert_eq!(window["read"], 100);
    }

    // The same, for people.
    let output = run(&[
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--intercept-id",
        "alice-id",
        "--http-header",
        "x-dev=alice",
        "--samples",
        "2",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let out = text(&output.stdout);
    for row in [
        "the workstation 100 33.3%",
        "the cluster 200 66.7%",
        "twice or more (overlap) 0 0.0%",
        "nobody (missing) 0 0.0%",
        "x-dev: messages workstation cluster",
        "\"alice\" 100 100 0",
        "\"bob\" 100 0 100",
        "(absent) 100 0 100",
        "The workstation's, the newest 2 of 100:",
        "orders/2@94 seq=294 x-dev=alice",
        "orders/2@97 seq=297 x-dev=alice",
        "The cluster's, the newest 2 of 200:",
        "orders/2@98 seq=298 x-dev=bob",
        "orders/2@99 seq=299",
    ] {
        assert!(has_row(&out, row), "no {row:?} in\n{out}");
    }
    assert!(
        out.contains("Every message is processed exactly once"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn last_reads_exactly_n_per_partition_and_commits_nothing() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let output = run(&[
        "--json",
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "-n",
        "40",
        "--http-header",
        "x-dev=alice",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json(&output);
    let kept = kafka.last(40);
    assert_eq!(kept.len(), 120);
    assert_eq!(counts(&report), expected_for_alice(&kept));
    for window in report["partitions"].as_array().unwrap() {
        assert_eq!((&window["from"], &window["to"]), (&60.into(), &100.into()));
        assert_eq!(window["read"], 40);
    }
    assert_eq!(
        samples(&report, "workstation"),
        newest(&kept, 3, |s| developer(s.i) == Some("alice"))
    );

    // Fetch and ListOffsets show that the log is complete; no request of
    // the group protocol shows that no group was joined, no offset
    // committed or even looked up. (librdkafka looks up a coordinator for
    // the group ID it needs to assign partitions: FindCoordinator creates
    // nothing.)
    let requests = kafka.requests();
    const FETCH: i16 = 1;
    const LIST_OFFSETS: i16 = 2;
    assert!(requests.contains(&FETCH), "{requests:?}");
    assert!(requests.contains(&LIST_OFFSETS), "{requests:?}");
    const GROUP_APIS: [(i16, &str); 7] = [
        (8, "OffsetCommit"),
        (9, "OffsetFetch"),
        (11, "JoinGroup"),
        (12, "Heartbeat"),
        (13, "LeaveGroup"),
        (14, "SyncGroup"),
        (68, "ConsumerGroupHeartbeat"),
    ];
    for (key, name) in GROUP_APIS {
        assert!(!requests.contains(&key), "tpk sent {name}: {requests:?}");
    }
}

/// Two mock servers, the cluster's and the workstation's, each with its
/// own intercept.
async fn apis(cluster: Intercept, workstation: Intercept) -> (MockServer, MockServer) {
    let agent = MockServer::builder()
        .side(Side::Agent)
        .intercept(cluster)
        .start()
        .await
        .expect("the cluster's mock API");
    let client = MockServer::builder()
        .side(Side::Client)
        .intercept(workstation)
        .start()
        .await
        .expect("the workstation's mock API");
    (agent, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn live_apis_that_agree_give_the_offline_counts() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let alice = Intercept::new("alice-id").header("x-dev", "alice");
    let (agent, client) = apis(alice.clone(), alice).await;
    let output = run(&[
        "--json",
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--cluster-api",
        &agent.url(),
        "--workstation-api",
        &client.url(),
        "--intercept-id",
        "alice-id",
        "--by",
        "x-dev",
    ])
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json(&output);
    assert_eq!(report["decided_by"]["mode"], "live");
    assert_eq!(counts(&report), (300, 100, 200, 0, 0));
    assert_eq!(
        histogram(&report, "x-dev"),
        [
            (Some("alice".to_owned()), 100, 100, 0),
            (Some("bob".to_owned()), 100, 0, 100),
            (None, 100, 0, 100),
        ]
    );
    // Live, only --by is counted.
    assert_eq!(report["histograms"].as_array().unwrap().len(), 1);
}

/// The consumers' header options decide what the intercept sees, offline
/// and live alike: a key sent as a header, a header left out.
#[tokio::test(flavor = "multi_thread")]
async fn the_consumers_header_options_decide_what_the_intercept_sees() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let preview = |extra: &[&str]| {
        let mut args = vec![
            "--json",
            "preview",
            "--brokers",
            &kafka.bootstrap,
            "--topic",
            TOPIC,
            "--intercept-id",
            "alice-id",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>()
    };
    let counted = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args).await;
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        counts(&json(&output))
    };
    let by_key = ["--http-header", "x-kafka-key=7"];
    assert_eq!(counted(preview(&by_key)).await, (300, 0, 300, 0, 0));
    let keyed = [by_key[0], by_key[1], "--key-as-header", "x-kafka-key"];
    assert_eq!(counted(preview(&keyed)).await, (300, 1, 299, 0, 0));
    let denied = ["--http-header", "x-dev=alice", "--deny-header", "x-dev"];
    assert_eq!(counted(preview(&denied)).await, (300, 0, 300, 0, 0));

    let alice = Intercept::new("alice-id").header("x-dev", "alice");
    let (agent, client) = apis(alice.clone(), alice).await;
    let live = |extra: &[&str]| {
        let mut args = preview(&[
            "--cluster-api",
            &agent.url(),
            "--workstation-api",
            &client.url(),
        ]);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        args
    };
    assert_eq!(counted(live(&[])).await, (300, 100, 200, 0, 0));
    assert_eq!(
        counted(live(&["--deny-header", "x-dev"])).await,
        (300, 0, 300, 0, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_apis_that_disagree_lose_and_double_messages() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    // The agent has an older version of the intercept: bob's messages.
    let (agent, client) = apis(
        Intercept::new("alice-id").header("x-dev", "bob"),
        Intercept::new("alice-id").header("x-dev", "alice"),
    )
    .await;
    let args = [
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--cluster-api",
        &agent.url(),
        "--workstation-api",
        &client.url(),
        "--intercept-id",
        "alice-id",
        "--by",
        "x-dev",
    ];
    let output = run(&[&["--json"], &args[..]].concat()).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report = json(&output);
    // alice's: both take them; bob's: the agent leaves them, the
    // workstation does not take them; the others: the cluster's.
    assert_eq!(counts(&report), (300, 100, 200, 100, 100));
    assert_eq!(report["passed"], false);
    assert_eq!(
        samples(&report, "missing"),
        newest(&kafka.sent, 3, |s| developer(s.i) == Some("bob"))
    );
    assert_eq!(
        samples(&report, "overlap"),
        newest(&kafka.sent, 3, |s| developer(s.i) == Some("alice"))
    );

    let output = run(&args).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    // The explanations are wrapped: compare words.
    let out = text(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for line in [
        "100 messages would be processed twice (overlap)",
        "100 messages would be processed by nobody (missing)",
        "the two sides do not agree on the intercept",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn live_api_errors_are_reported_naming_the_api() {
    let kafka = Kafka::start();
    let alice = Intercept::new("alice-id").header("x-dev", "alice");
    let (agent, client) = apis(alice.clone(), alice).await;
    // The two URLs swapped: the SDK's side check refuses.
    let output = run(&[
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--cluster-api",
        &client.url(),
        "--workstation-api",
        &agent.url(),
        "--intercept-id",
        "alice-id",
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(err.contains("--cluster-api"), "{err}");
    assert!(err.contains("clientSide: true"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_updates_the_table_until_sigterm() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let mut child = tpk(&[
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--http-header",
        "x-dev=alice",
        "--watch",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting tpk --watch");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |wanted: &str| -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            match lines.recv_timeout(PATIENCE) {
                Ok(line) => {
                    let found = line.contains(wanted);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(_) => panic!("no line with {wanted:?}; got:\n{}", seen.join("\n")),
            }
        }
    };
    wait_for(", 300 read");
    let update = wait_for("(watching for new messages");
    assert!(
        has_row(&update.join("\n"), "the workstation 100 33.3%"),
        "{update:#?}"
    );

    kafka.produce(MESSAGES..MESSAGES + 30).await;
    wait_for(", 330 read");
    let update = wait_for("(watching for new messages");
    assert!(
        has_row(&update.join("\n"), "the workstation 110 33.3%"),
        "{update:#?}"
    );
    assert!(
        has_row(&update.join("\n"), "the cluster 220 66.7%"),
        "{update:#?}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (status_tx, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait_with_output());
    });
    let output = status
        .recv_timeout(PATIENCE)
        .expect("tpk --watch exits after SIGTERM")
        .expect("waiting for tpk");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // The final report follows, without the watching line.
    let rest: Vec<String> = lines.iter().collect();
    assert!(rest.iter().any(|l| l.contains(", 330 read")), "{rest:#?}");
    assert!(
        rest.iter()
            .any(|l| l.contains("Every message is processed exactly once")),
        "{rest:#?}"
    );
    assert!(!rest.iter().any(|l| l.contains("(watching")), "{rest:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_usage_is_refused_naming_the_problem() {
    let kafka = Kafka::start();
    let cases: [(&[&str], &str); 6] = [
        (
            &[
                "preview",
                "--brokers",
                &kafka.bootstrap,
                "--http-header",
                "x=y",
            ],
            "--topic",
        ),
        (
            &["preview", "--topic", TOPIC, "--http-header", "x=y"],
            "--brokers",
        ),
        (
            &["preview", "--brokers", &kafka.bootstrap, "--topic", TOPIC],
            "no intercept: describe it",
        ),
        (
            &[
                "preview",
                "--brokers",
                &kafka.bootstrap,
                "--topic",
                "nosuchtopic",
                "--http-header",
                "x=y",
            ],
            "topic nosuchtopic does not exist",
        ),
        (
            &[
                "preview",
                "--brokers",
                "127.0.0.1:1",
                "--topic",
                TOPIC,
                "--http-header",
                "x=y",
                "--timeout",
                "5s",
            ],
            "brokers at 127.0.0.1:1",
        ),
        (
            &[
                "preview",
                "--brokers",
                &kafka.bootstrap,
                "--topic",
                TOPIC,
                "--cluster-api",
                "http://127.0.0.1:1",
                "--workstation-api",
                "http://127.0.0.1:2",
            ],
            "--intercept-id",
        ),
    ];
    for (args, culprit) in cases {
        let output = run(args).await;
        let err = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(culprit), "{args:?}: no {culprit:?} in {err}");
    }
    // With --json, the error is a JSON document too.
    let output = run(&[
        "--json",
        "preview",
        "--topic",
        TOPIC,
        "--http-header",
        "x=y",
    ])
    .await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        json(&output)["error"]
            .as_str()
            .unwrap()
            .contains("--brokers")
    );
}

/// Writes a mock-server configuration for the test, removed when dropped.
struct ConfigFile(std::path::PathBuf);

impl ConfigFile {
    fn new(name: &str, yaml: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("tpk-preview-{}-{name}.yaml", std::process::id()));
        std::fs::write(&path, yaml).expect("writing the configuration");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_config_counts_other_workstations_and_overlapping_intercepts() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let two = ConfigFile::new(
        "two",
        "intercepts:\n  - { id: alice-id, headers: { x-dev: alice } }\n  - { id: bob-id, headers: { x-dev: bob } }\n",
    );
    let base = [
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--config",
        two.path(),
    ];

    // Two intercepts: whose is the workstation?
    let output = run(&base).await;
    assert_eq!(output.status.code(), Some(2));
    let err = text(&output.stderr);
    assert!(
        err.contains("alice-id, bob-id") && err.contains("--intercept-id"),
        "{err}"
    );

    // bob's workstation takes bob's messages: none is lost.
    let output = run(&[&["--json"], &base[..], &["--intercept-id", "alice-id"]].concat()).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let report = json(&output);
    assert_eq!(counts(&report), (300, 100, 100, 0, 0));
    assert_eq!(report["counts"]["other_workstations"], 100);
    assert_eq!(report["decided_by"]["workstation_intercept"], "alice-id");

    // An intercept that takes everything overlaps with alice's.
    let overlapping = ConfigFile::new(
        "overlapping",
        "intercepts:\n  - { id: alice-id, headers: { x-dev: alice } }\n  - { id: everyone }\n",
    );
    let output = run(&[
        "--json",
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--config",
        overlapping.path(),
        "--intercept-id",
        "alice-id",
    ])
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report = json(&output);
    assert_eq!(counts(&report), (300, 100, 0, 100, 0));
    assert_eq!(report["counts"]["other_workstations"], 300);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_with_json_prints_a_document_per_line_per_update() {
    let mut kafka = Kafka::start();
    kafka.produce(0..MESSAGES).await;
    let mut child = tpk(&[
        "--json",
        "preview",
        "--brokers",
        &kafka.bootstrap,
        "--topic",
        TOPIC,
        "--http-header",
        "x-dev=alice",
        "--watch",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("starting tpk --watch --json");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let update_with = |messages: u64| -> Value {
        loop {
            let line = lines
                .recv_timeout(PATIENCE)
                .unwrap_or_else(|_| panic!("no update with {messages} messages"));
            let update: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("an update is one JSON line ({e}): {line}"));
            assert_eq!(update["watching"], true, "{line}");
            if update["counts"]["messages"] == messages {
                return update;
            }
        }
    };
    assert_eq!(counts(&update_with(300)), (300, 100, 200, 0, 0));
    kafka.produce(MESSAGES..MESSAGES + 30).await;
    assert_eq!(counts(&update_with(330)), (330, 110, 220, 0, 0));

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let (status_tx, status) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = status_tx.send(child.wait());
    });
    let status = status
        .recv_timeout(PATIENCE)
        .expect("tpk --watch exits after SIGTERM")
        .expect("waiting for tpk");
    assert_eq!(status.code(), Some(0));
    // Then the final report, as without --watch.
    let rest: String = lines.iter().collect::<Vec<_>>().join("\n");
    let last = serde_json::Deserializer::from_str(&rest)
        .into_iter::<Value>()
        .map(|doc| doc.expect("JSON documents"))
        .last()
        .expect("a final report");
    assert_eq!(last["watching"], false);
    assert_eq!(counts(&last), (330, 110, 220, 0, 0));
}
