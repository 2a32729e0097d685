//! Support for the end-to-end tests: the project's images built on demand, a
//! testcontainers module for the broker, and the parts of a scenario (a topic,
//! a producer, consumer processes, the two Telepresence APIs).
//!
//! No registry is reachable from the machines these tests run on, so every
//! image is built locally by `scripts/build-images.sh`; [`ensure_image`]
//! builds one when it is missing.

pub mod broker;
pub mod scenario;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The mock server image, as `scripts/build-images.sh mock-server` tags it.
pub const MOCK_SERVER_IMAGE: (&str, &str) = ("telepresence-mock-server", "latest");

/// The repository's root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("integration-tests/ sits in the workspace")
        .to_owned()
}

/// Serialises builds between the tests of one binary.
static BUILDS: Mutex<()> = Mutex::new(());

/// Makes sure `name:tag` exists locally, building it with
/// `scripts/build-images.sh <script_arg>` when it does not.
///
/// # Panics
///
/// With one clear message when Docker is unreachable or the build fails:
/// these tests cannot run without a Docker engine.
pub fn ensure_image(name: &str, tag: &str, script_arg: &str) {
    let _guard = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    require_docker();
    if image_exists(name, tag) {
        return;
    }
    let script = workspace_root().join("scripts/build-images.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(script_arg)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        status.success() && image_exists(name, tag),
        "building image {name}:{tag} with `scripts/build-images.sh {script_arg}` failed ({status})"
    );
}

fn image_exists(name: &str, tag: &str) -> bool {
    Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{.Id}}",
            &format!("{name}:{tag}"),
        ])
        .output()
        .is_ok_and(|out| out.status.success())
}

/// # Panics
///
/// When no Docker engine answers, saying so.
pub fn require_docker() {
    const WITHOUT: &str =
        "`cargo test --workspace --all-features --exclude telepresence-kafka-integration-tests`";
    let answer = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    match answer {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "Docker is not reachable: `docker version` says {}. These tests start containers \
             and need a running Docker engine; start one, or leave them out with {WITHOUT}.",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "Docker is not installed ({e}). These tests start containers and need a running \
             Docker engine; install one, or leave them out with {WITHOUT}."
        ),
    }
}

/// Inspects an image or container with a Go template, e.g. `{{.Size}}`.
pub fn docker_inspect(object: &str, format: &str) -> String {
    let out = Command::new("docker")
        .args(["inspect", "--format", format, object])
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker inspect {object}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A port that was free a moment ago, for a container's fixed host port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port on loopback")
}
