//! The mock server's container image: small, shell-less, and the same server.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use telepresence_kafka::HeaderList;
use telepresence_kafka_integration_tests::scenario::client_builder;
use telepresence_kafka_integration_tests::{
    MOCK_SERVER_IMAGE, docker_inspect, ensure_image, require_docker, workspace_root,
};
use telepresence_mock_server::testcontainers::{IMAGE, MockServerContainer, MockServerImage};
use telepresence_mock_server::{Admin, Error, Fault, Intercept, Side};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use telepresence_api::CALLER_INTERCEPT_ID_HEADER as CALLER;

fn image() -> GenericImage {
    let (name, tag) = MOCK_SERVER_IMAGE;
    ensure_image(name, tag, "mock-server");
    GenericImage::new(name, tag)
        .with_exposed_port(9980.tcp())
        .with_wait_for(WaitFor::message_on_stderr("listening on"))
}

async fn url(container: &ContainerAsync<GenericImage>) -> String {
    let host = container.get_host().await.unwrap();
    let port = container.get_host_port_ipv4(9980).await.unwrap();
    format!("http://{host}:{port}")
}

async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[test]
fn the_image_is_small_and_has_nothing_but_the_server() {
    let (name, tag) = MOCK_SERVER_IMAGE;
    ensure_image(name, tag, "mock-server");
    let reference = format!("{name}:{tag}");
    let size: u64 = docker_inspect(&reference, "{{.Size}}").parse().unwrap();
    assert!(size < 10 * 1024 * 1024, "{size} bytes");
    let layers = docker_inspect(&reference, "{{len .RootFS.Layers}}");
    assert_eq!(layers, "1", "one layer: the binary");
    let shell = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--entrypoint",
            "/bin/sh",
            &reference,
            "-c",
            "true",
        ])
        .output()
        .unwrap();
    assert!(!shell.status.success(), "the image has no shell");
}

#[tokio::test]
async fn the_container_serves_the_worked_example_from_its_config_variable() {
    let config = r#"{"side": "client", "intercepts": [{"id": "4b1658c3:echo-server",
        "container_port": 8080, "headers": {"x": "y"}, "path_prefix": "/api",
        "metadata": {"a": "b", "b": "c"}}]}"#;
    let container = image()
        .with_env_var(telepresence_api::env::MOCK_CONFIG, config)
        .with_env_var(telepresence_api::env::MOCK_ADMIN_TOKEN, "test-token")
        .start()
        .await
        .expect("the mock server container starts");
    let url = url(&container).await;
    let headers = [(CALLER, "4b1658c3:echo-server"), ("x", "y")];
    assert_eq!(
        get(
            &format!("{url}/consume-here?containerPort=8080&path=/api"),
            &headers
        )
        .await,
        (200, "true".to_owned())
    );
    assert_eq!(
        get(
            &format!("{url}/intercept-info?containerPort=8080&path=/api"),
            &headers
        )
        .await,
        (
            200,
            r#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b","b":"c"}}"#.to_owned()
        )
    );
    let unauthorized = reqwest::get(format!("{url}/_mock/journal")).await.unwrap();
    assert_eq!(
        unauthorized.status(),
        401,
        "the container listens beyond loopback: the admin API needs the token"
    );
    let journal: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/_mock/journal"))
        .bearer_auth("test-token")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap();
    assert_eq!(journal.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_container_takes_the_intercept_flags_as_arguments() {
    let container = image()
        .with_cmd([
            "--side",
            "agent",
            "--wire",
            "2.5",
            "--intercept-id",
            "i",
            "--http-header",
            "x-dev: alice",
        ])
        .start()
        .await
        .expect("the mock server container starts");
    let url = url(&container).await;
    assert_eq!(
        get(&format!("{url}/consume-here"), &[("x-dev", "alice")]).await,
        (200, "false\n".to_owned())
    );
    assert_eq!(
        get(&format!("{url}/consume-here"), &[("x-dev", "bob")]).await,
        (200, "true\n".to_owned())
    );
}

/// The container module passes the release and the workload's ports: on a
/// two-port workload, a message without a container port belongs to the
/// first port's intercept from 2.25, and to no intercept before. The SDK is
/// configured from the container's environment, as a consumer process is.
#[tokio::test]
async fn the_container_module_mocks_the_release_and_the_workload_asked_for() {
    ensure_image(MOCK_SERVER_IMAGE.0, MOCK_SERVER_IMAGE.1, "mock-server");
    for (release, pod_consumes_alice) in [("2.27", false), ("2.24.1", true)] {
        let container = MockServerImage::default()
            .with_side(Side::Agent)
            .with_telepresence_version(release.parse().unwrap())
            .with_workload_ports([8080, 9090])
            .with_intercept(
                Intercept::new("alice")
                    .container_port(8080)
                    .header("x-dev", "alice"),
            )
            .start()
            .await
            .expect("the mock server container starts");
        let env = container.env().await.unwrap();
        assert_eq!(env.intercept_id, "", "a pod has no intercept ID");
        let pod = client_builder(&env).build().unwrap();
        let alice = HeaderList::new(&[("x-dev", Some(b"alice"))]);
        assert_eq!(
            pod.should_consume(&alice).await.unwrap(),
            pod_consumes_alice,
            "Telepresence {release}"
        );
        let status = reqwest::Client::new()
            .get(format!("{}/_mock/", container.api_url().await.unwrap()))
            .bearer_auth(container.image().admin_token())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let status: serde_json::Value = serde_json::from_str(&status).unwrap();
        assert_eq!(status["telepresence_version"], release);
        assert_eq!(status["workload_ports"], serde_json::json!([8080, 9090]));
    }
    let paths = MockServerImage::default()
        .with_intercept(Intercept::new("i").path_prefix("/a/").path_prefix("/b/"))
        .start()
        .await
        .expect("the mock server container starts");
    let url = paths.api_url().await.unwrap();
    for (path, expected) in [("/a/1", "true"), ("/b/2", "true"), ("/c/3", "false")] {
        assert_eq!(
            get(&format!("{url}/consume-here?path={path}"), &[(CALLER, "i")]).await,
            (200, expected.to_owned()),
            "{path}"
        );
    }
}

/// The container's admin API is the typed `Admin`, over HTTP with the
/// container's token: the same client a test uses in-process.
#[tokio::test]
async fn the_containers_admin_api_is_the_typed_client() {
    ensure_image(MOCK_SERVER_IMAGE.0, MOCK_SERVER_IMAGE.1, "mock-server");
    let container = MockServerImage::default()
        .with_side(Side::Client)
        .with_intercept(Intercept::new("abc:orders").header("x-dev", "alice"))
        .start()
        .await
        .expect("the mock server container starts");
    let env = container.env().await.unwrap();
    assert_eq!(
        env.intercept_id, "abc:orders",
        "the workstation's intercept"
    );
    let workstation = client_builder(&env).build().unwrap();
    let alice = HeaderList::new(&[("x-dev", Some(b"alice"))]);
    assert!(workstation.should_consume(&alice).await.unwrap());

    let admin = container.admin().await.unwrap();
    let decisions: Vec<_> = admin
        .journal()
        .await
        .unwrap()
        .into_iter()
        .filter(|entry| entry.endpoint == "/consume-here")
        .collect();
    assert_eq!(decisions.len(), 1);
    assert_eq!(decisions[0].intercept.as_deref(), Some("abc:orders"));

    assert!(admin.remove_intercept("abc:orders").await.unwrap());
    admin
        .inject_fault(Fault::status(503).times(1))
        .await
        .unwrap();
    assert_eq!(admin.faults().await.unwrap().len(), 1);
    assert!(admin.intercepts().await.unwrap().is_empty());

    let wrong_token = Admin::connect(&container.api_url().await.unwrap(), Some("guess"))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong_token, Error::AdminRefused { status: 401, .. }),
        "{wrong_token:?}"
    );
}

#[tokio::test]
async fn the_container_stops_cleanly_on_sigterm() {
    let container = image()
        .start()
        .await
        .expect("the mock server container starts");
    let id = container.id().to_owned();
    let stopped = Command::new("docker")
        .args(["stop", "--time", "10", &id])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    assert_eq!(
        docker_inspect(&id, "{{.State.ExitCode}}"),
        "0",
        "SIGTERM, not SIGKILL, ended it"
    );
    let logs = Command::new("docker").args(["logs", &id]).output().unwrap();
    assert!(String::from_utf8_lossy(&logs.stderr).contains("shutting down"));
}

/// The `telepresence-mock-server` binary cargo builds for the profile these
/// tests run in, brought up to date now. A package's tests get only their
/// own binaries (`CARGO_BIN_EXE_*`), so this asks cargo for the mock
/// server's and reads where it put it.
fn cargo_built_mock_server() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary's path");
    // target/<profile dir>/deps/<test>: "debug" is the dev profile's directory.
    let profile = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .and_then(|dir| dir.file_name())
        .and_then(|name| name.to_str())
        .filter(|name| *name != "debug")
        .map(str::to_owned);
    let mut cargo = Command::new(env!("CARGO"));
    cargo
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "telepresence-mock-server",
            "--bin",
            "telepresence-mock-server",
        ])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit());
    if let Some(profile) = profile {
        cargo.args(["--profile", &profile]);
    }
    let output = cargo.output().expect("cargo runs");
    assert!(output.status.success(), "cargo builds the mock server");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "telepresence-mock-server")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the mock server's executable")
}

/// Removes an image tag when dropped, test passed or failed.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "--force", &self.0])
            .output();
    }
}

/// Without a registry, the container module builds its image itself: here
/// under a throwaway tag, from the binary cargo built for these tests
/// (linked dynamically, so its shared libraries go into the image with it).
#[tokio::test]
async fn the_container_module_builds_its_image_when_missing() {
    require_docker();
    let binary = cargo_built_mock_server();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let tag = format!("build-test-{}-{nanos:x}", std::process::id());
    let reference = format!("{IMAGE}:{tag}");
    let _remove = RemoveImage(reference.clone());

    let image = MockServerImage::default()
        .with_tag(&tag)
        .with_binary(&binary)
        .build_if_missing()
        .await
        .expect("the image is built from the binary");
    docker_inspect(&reference, "{{.Id}}");
    let container = image
        .start()
        .await
        .expect("a container of the new image starts");
    let url = container.api_url().await.unwrap();
    assert_eq!(get(&format!("{url}/healthz"), &[]).await.0, 200);
    container.rm().await.unwrap();

    // Once it exists, no binary is needed, nor looked at.
    let _reused = MockServerImage::default()
        .with_tag(&tag)
        .with_binary("/no/such/telepresence-mock-server")
        .build_if_missing()
        .await
        .expect("the existing image is used as it is");

    // Missing, and nothing to build it from: the error names the binary and the fix.
    let nothing = MockServerImage::default()
        .with_tag(format!("{tag}-never"))
        .with_binary("/no/such/telepresence-mock-server")
        .build_if_missing()
        .await
        .unwrap_err();
    assert!(matches!(nothing, Error::ServerBinary { .. }), "{nothing:?}");
    assert!(
        nothing
            .to_string()
            .contains("/no/such/telepresence-mock-server"),
        "{nothing}"
    );
}
