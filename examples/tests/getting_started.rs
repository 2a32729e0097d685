//! `docs/getting-started.md` runs as written: the shell commands of its steps
//! 2 to 4, one by one, with the answers written after a `#` checked. Only
//! step 3's container broker is replaced, by an in-process one at
//! `KAFKA_BROKERS` (which the example programs read).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use telepresence_kafka_examples::EmbeddedKafka;

const GUIDE: &str = include_str!("../../docs/getting-started.md");
const PATIENCE: Duration = Duration::from_secs(120);

/// Commands a reader runs once, or that the test does its own way: building
/// (the test's binaries are built already), the container broker, cleanup.
const NOT_RUN: &[&str] = &[
    "cargo",
    "export",
    "docker",
    "scripts/build-images.sh",
    "kill",
];

/// One command of the guide, and the answer written under it, if any.
#[derive(Debug)]
struct Step {
    command: String,
    expected: Option<String>,
}

/// The commands of the `sh` blocks of steps 2 to 4, continuation lines
/// joined.
fn steps(guide: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_scope = false;
    let mut in_block = false;
    let mut pending = String::new();
    for line in guide.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            in_scope = ["2.", "3.", "4."].iter().any(|n| heading.starts_with(n));
            continue;
        }
        if line.starts_with("```") {
            in_block = in_scope && !in_block && line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let answer = comment.split(':').next().unwrap_or(comment).trim();
            let last = steps.last_mut().expect("an answer follows a command");
            last.expected = Some(answer.to_owned());
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => {
                pending.push_str(line);
                let command = std::mem::take(&mut pending).trim().to_owned();
                if !command.is_empty() {
                    steps.push(Step {
                        command,
                        expected: None,
                    });
                }
            }
        }
    }
    steps
        .into_iter()
        .filter(|step| {
            let first = step.command.split_whitespace().next().unwrap_or_default();
            !NOT_RUN.contains(&first)
        })
        .collect()
}

/// Where the example binaries are, and the mock server's beside them (built
/// when a run of this package alone did not build it).
fn bin_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_consumer"))
        .parent()
        .unwrap()
        .to_owned();
    if !dir.join("telepresence-mock-server").exists() {
        let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        build.args(["build", "-p", "telepresence-mock-server", "--bin"]);
        build.arg("telepresence-mock-server");
        if dir.ends_with("release") {
            build.arg("--release");
        }
        assert!(
            build.status().unwrap().success(),
            "building the mock server"
        );
    }
    dir
}

/// A process group for every process the guide's commands start, servers
/// included, killed when the test ends however it ends. Its leader lives
/// as long as the group is needed.
struct ProcessGroup(std::process::Child);

impl ProcessGroup {
    fn new() -> Self {
        let mut leader = Command::new("sleep");
        leader.arg("3600");
        std::os::unix::process::CommandExt::process_group(&mut leader, 0);
        Self(leader.spawn().unwrap())
    }

    fn id(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// The address a server command of the guide listens at.
fn listen_address(command: &str) -> Option<&str> {
    let mut words = command.split_whitespace();
    words
        .by_ref()
        .any(|word| word == "--listen")
        .then(|| words.next().expect("--listen has an address"))
}

/// A server the guide starts must be the one the next steps talk to: were
/// another program already listening at its address, the guide's server
/// would fail to bind, unseen, and the steps would check the other one.
fn assert_nothing_listens(command: &str) {
    if let Some(address) = listen_address(command) {
        assert!(
            TcpStream::connect(address).is_err(),
            "something already listens at {address}, where `{command}` is to listen: stop it \
             and run the test again"
        );
    }
}

fn wait_for_listener(command: &str) {
    if let Some(address) = listen_address(command) {
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(address).is_err() {
            assert!(Instant::now() < deadline, "nothing listens at {address}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn the_getting_started_guide_runs_as_written() {
    let steps = steps(GUIDE);
    let checked = steps.iter().filter(|s| s.expected.is_some()).count();
    assert!(
        steps.len() >= 14 && checked >= 8,
        "the guide's commands were not all found: {steps:#?}"
    );
    let kafka = EmbeddedKafka::start("orders", 3).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let group = ProcessGroup::new();

    for step in &steps {
        let mut bash = Command::new("bash");
        bash.args(["-c", &format!("set -o pipefail; {}", step.command)])
            .current_dir(repository)
            .env("PATH", &path)
            .env("KAFKA_BROKERS", &kafka.bootstrap)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped());
        for name in [
            telepresence_kafka::API_PORT_ENV,
            telepresence_kafka::API_HOST_ENV,
            telepresence_kafka::INTERCEPT_ID_ENV,
            telepresence_kafka::CONTAINER_PORT_ENV,
            "KAFKA_OPTIONS",
            "KAFKA_TOPIC",
            "KAFKA_GROUP",
        ] {
            bash.env_remove(name);
        }
        std::os::unix::process::CommandExt::process_group(&mut bash, group.id());
        if step.command.ends_with('&') {
            // A server: bash returns at once, the server stays in the group.
            assert_nothing_listens(&step.command);
            bash.stdout(Stdio::null()).stderr(Stdio::null());
            assert!(bash.status().unwrap().success(), "`{}`", step.command);
            wait_for_listener(&step.command);
            continue;
        }
        let output = wait_with_patience(bash.spawn().unwrap(), &step.command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let context = format!(
            "`{}`\nstdout:\n{stdout}\nstderr:\n{}",
            step.command,
            String::from_utf8_lossy(&output.stderr)
        );
        match &step.expected {
            Some(expected) => assert_eq!(stdout.trim(), expected, "{context}"),
            None => assert!(output.status.success(), "{context}"),
        }
    }
}

/// The command's output; a command that hangs fails the test (and is
/// killed with the group).
fn wait_with_patience(child: std::process::Child, command: &str) -> std::process::Output {
    let (done, output) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(PATIENCE) {
        Ok(output) => output.unwrap(),
        Err(_) => panic!("`{command}` did not finish in {PATIENCE:?}"),
    }
}
