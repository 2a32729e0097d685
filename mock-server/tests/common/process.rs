//! The `telepresence-mock-server` binary as a child process.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_telepresence-mock-server");

/// How long the binary may take to start, answer or exit before a test calls
/// it hung: far beyond what it needs (a debug build reads a hundred thousand
/// intercepts in about 3 s alone, 11 s on a machine busy with other builds),
/// so that only a real hang fails.
const PATIENCE: Duration = Duration::from_secs(120);

/// A running binary, its URL, and the environment it printed.
pub struct Running {
    pub child: Child,
    pub url: String,
    pub env: Vec<(String, String)>,
}

impl Running {
    pub async fn stop(mut self, signal: &str) -> (std::process::ExitStatus, String) {
        signal_process(&self.child, signal);
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("exits after the signal")
            .unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .await
            .unwrap();
        (status, stderr)
    }
}

pub fn signal_process(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

pub fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("TELEPRESENCE_MOCK_CONFIG")
        .env_remove("TELEPRESENCE_MOCK_LISTEN")
        .env_remove("RUST_BACKTRACE")
        .kill_on_drop(true);
    cmd
}

/// Starts the binary on a free port with `--print-env` and reads what it printed.
pub async fn start(args: &[&str]) -> Running {
    start_command(command(
        &[&["--listen", "127.0.0.1:0", "--print-env"], args].concat(),
    ))
    .await
}

pub async fn start_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut env = Vec::new();
    while env.len() < 3 {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .expect("prints its environment")
            .unwrap()
            .expect("prints three lines");
        let (name, value) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("not an export line: {line}"));
        env.push((name.to_owned(), value.trim_matches('\'').to_owned()));
    }
    let port = &env[0].1;
    Running {
        child,
        url: format!("http://127.0.0.1:{port}"),
        env,
    }
}

/// Runs the binary to completion: exit code and stderr.
pub async fn run(args: &[&str]) -> (Option<i32>, String) {
    run_command(command(args)).await
}

pub async fn run_command(mut cmd: Command) -> (Option<i32>, String) {
    let out = tokio::time::timeout(PATIENCE, cmd.output())
        .await
        .expect("exits")
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tpk-cli-{}-{}",
        std::process::id(),
        fastrand_suffix()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn fastrand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
