//! The `telepresence-mock-server` binary: flags, configuration, errors, signals.

mod common;

use std::time::Duration;

use common::process::{command, run, run_command, start, start_command, tempdir};
use common::{ask, json_answer};

const WORKED_EXAMPLE: &[&str] = &[
    "--intercept-id",
    "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server",
    "--container-port",
    "8080",
    "--http-header",
    "x=y",
    "--http-path-prefix=/api",
    "--http-meta",
    "a=b",
    "--http-meta",
    "b=c",
];

#[tokio::test]
async fn the_worked_example_driven_by_the_intercept_flags() {
    let workstation = start(WORKED_EXAMPLE).await;
    let id = workstation.env[2].1.clone();
    assert_eq!(id, "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server");
    let consume = ask(
        &workstation.url,
        "/consume-here?containerPort=8080&path=/api",
    )
    .caller(&id)
    .header("x", "y")
    .send()
    .await;
    assert_eq!(consume, json_answer("true"));
    let info = ask(
        &workstation.url,
        "/intercept-info?containerPort=8080&path=/api",
    )
    .caller(&id)
    .header("x", "y")
    .send()
    .await;
    assert_eq!(
        info,
        json_answer(r#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b","b":"c"}}"#)
    );

    let pod = start(&[WORKED_EXAMPLE, &["--side", "agent"]].concat()).await;
    assert_eq!(pod.env[2].1, "", "a pod has no intercept ID");
    let consume = ask(&pod.url, "/consume-here?containerPort=8080&path=/api")
        .caller(&id)
        .header("x", "y")
        .send()
        .await;
    assert_eq!(consume, json_answer("false"));
}

#[tokio::test]
async fn print_env_gives_what_a_consumer_needs() {
    let server = start(&["--intercept-id", "it's:mine"]).await;
    let names: Vec<&str> = server.env.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "TELEPRESENCE_API_PORT",
            "TELEPRESENCE_API_HOST",
            "TELEPRESENCE_INTERCEPT_ID"
        ]
    );
    assert_eq!(server.env[1].1, "127.0.0.1");
    assert_eq!(server.env[2].1, r"it'\''s:mine", "quoted for a shell");
    assert_eq!(ask(&server.url, "/healthz").send().await.status, 200);
}

#[tokio::test]
async fn without_flags_one_intercept_matches_everything() {
    let server = start(&[]).await;
    let id = server.env[2].1.clone();
    assert!(id.ends_with(":mock"), "{id}");
    assert_eq!(
        ask(&server.url, "/consume-here")
            .caller(&id)
            .send()
            .await
            .body,
        "true"
    );
    assert_eq!(ask(&server.url, "/consume-here").send().await.body, "false");
}

#[tokio::test]
async fn it_starts_with_a_line_naming_the_address_and_each_intercept() {
    let server = start(&["--intercept-id", "i1", "--http-header", "x-dev: alice"]).await;
    let url = server.url.clone();
    let (status, stderr) = server.stop("-TERM").await;
    assert!(status.success(), "{stderr}");
    let line = stderr.lines().next().unwrap();
    assert!(
        line.contains(&format!(
            "listening on {url} as the client side of Telepresence 2.27.4 (wire 2.25, workload ports 8080,"
        )),
        "{line}"
    );
    assert!(
        line.contains(r#"["i1" on port 8080 when x-dev == "alice"]"#),
        "{line}"
    );
}

#[tokio::test]
async fn a_config_file_and_flags_that_override_it() {
    let dir = tempdir();
    let file = dir.join("mock.yaml");
    std::fs::write(
        &file,
        r#"
side: agent
listen: 127.0.0.1:1
wire: "2.5"
intercepts:
  - id: "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server"
    container_port: 8080
    headers: { x: y, x-user: "^dev-.*" }
    path_prefix: /api
    metadata: { a: b }
"#,
    )
    .unwrap();
    // The file says agent and port 1; the flags say listen elsewhere, wire 2.4.
    let server = start(&["--config", file.to_str().unwrap(), "--wire", "2.4"]).await;
    let miss = ask(&server.url, "/consume-here?path=/api")
        .header("x", "y")
        .header("x-user", "bob")
        .send()
        .await;
    assert_eq!(
        miss,
        common::answer(200, Some("text/plain"), "true"),
        "agent side, wire 2.4"
    );
    let hit = ask(&server.url, "/consume-here?path=/api/1")
        .header("x", "y")
        .header("x-user", "dev-bob")
        .send()
        .await;
    assert_eq!(hit.body, "false");

    // Intercept flags replace the file's intercepts.
    let server = start(&["--config", file.to_str().unwrap(), "--intercept-id", "mine"]).await;
    let list = ask(&server.url, "/_mock/intercepts").send().await.json();
    assert_eq!(
        list,
        serde_json::json!([{"id": "mine", "container_port": 8080}])
    );
}

#[tokio::test]
async fn the_config_can_come_from_the_environment() {
    let mut cmd = command(&["--listen", "127.0.0.1:0", "--print-env"]);
    cmd.env(
        "TELEPRESENCE_MOCK_CONFIG",
        r#"{"side": "client", "intercepts": [{"id": "env-id", "headers": {"x": "1"}}]}"#,
    );
    let server = start_command(cmd).await;
    assert_eq!(server.env[2].1, "env-id");
    let hit = ask(&server.url, "/consume-here")
        .caller("env-id")
        .header("x", "1")
        .send()
        .await;
    assert_eq!(hit.body, "true");
}

#[tokio::test]
async fn the_listen_address_can_come_from_the_environment() {
    let mut cmd = command(&["--print-env"]);
    cmd.env("TELEPRESENCE_MOCK_LISTEN", "127.0.0.1:0");
    let server = start_command(cmd).await;
    assert_ne!(server.env[0].1, "9980");
    assert_eq!(ask(&server.url, "/healthz").send().await.status, 200);
}

/// Each bad configuration is refused at start, exit code 2, one clear line
/// naming the culprit, and never a panic or a backtrace.
#[tokio::test]
async fn bad_configuration_is_refused_with_a_clear_error() {
    let dir = tempdir();
    let write = |name: &str, yaml: &str| {
        let path = dir.join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let unknown = write("unknown.yaml", "intercepts:\n  - id: a\n    colour: red\n");
    let two_paths = write(
        "paths.yaml",
        "telepresence_version: '2.24'\nintercepts:\n  - id: a\n    path_equal: /a\n    path_regex: b\n",
    );
    let regex = write(
        "regex.yaml",
        "intercepts:\n  - id: a\n    headers: {x-user: '(dev'}\n",
    );
    let port = write(
        "port.yaml",
        "intercepts:\n  - id: a\n    container_port: 65536\n",
    );
    let dup = write("dup.yaml", "intercepts:\n  - id: a\n  - id: b\n  - id: a\n");
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--config", &unknown],
            vec![format!(
                "error: config file {unknown}: intercepts[0]: unknown field `colour`"
            )],
        ),
        (
            vec!["--config", &two_paths],
            vec![format!(
                "error: config file {two_paths}: intercepts[0] (\"a\"): path_regex: at most one path filter is allowed before Telepresence 2.25, but path_equal and path_regex are given"
            )],
        ),
        // The file is fine for the newest release; the flag asks for an older
        // one, and the error still names the file.
        (
            vec!["--config", &regex, "--telepresence-version", "2.24.1"],
            vec![format!(
                "error: config file {regex}: intercepts[0] (\"a\"): headers.x-user: invalid regular expression `(dev`"
            )],
        ),
        (
            vec!["--config", &port],
            vec![format!(
                "error: config file {port}: intercepts[0].container_port: invalid value: integer `65536`"
            )],
        ),
        (
            vec!["--config", &dup],
            vec![format!(
                "error: config file {dup}: intercepts[2] (\"a\"): id: duplicate intercept ID, already used by intercepts[0]"
            )],
        ),
        (
            vec!["--config", "/no/such.yaml"],
            vec![
                "error: cannot read config file /no/such.yaml: No such file or directory"
                    .to_owned(),
            ],
        ),
        (
            vec![
                "--telepresence-version",
                "2.24",
                "--http-path-equal",
                "/a",
                "--http-path-regex",
                "b",
            ],
            vec![
                "error: command line: intercepts[0]".to_owned(),
                "path_regex: at most one path filter is allowed before Telepresence 2.25, \
                 but path_equal and path_regex are given"
                    .to_owned(),
            ],
        ),
        (
            vec!["--telepresence-version", "2.5", "--http-path-regex", "(x"],
            vec![
                "error: command line: intercepts[0]".to_owned(),
                "path_regex: invalid regular expression `(x`".to_owned(),
            ],
        ),
        (
            vec!["--telepresence-version", "2.3"],
            vec![
                "invalid value '2.3' for '--telepresence-version <V>': \
                 Telepresence 2.3 has no REST API to mock; it came with 2.4.8"
                    .to_owned(),
            ],
        ),
        (
            vec!["--telepresence-version", "latest"],
            vec!["`latest` is not a Telepresence release".to_owned()],
        ),
        (
            vec!["--workload-port", "9090", "--intercept-id", "i"],
            vec![
                "error: command line: intercepts[0] (\"i\"): container_port: 8080 is not a port \
                 of the workload (container_ports: 9090)"
                    .to_owned(),
            ],
        ),
        (
            vec!["--workload-port", "0"],
            vec!["invalid value '0' for '--workload-port <N>'".to_owned()],
        ),
        (
            vec!["--container-port", "70000"],
            vec!["invalid value '70000' for '--container-port <N>'".to_owned()],
        ),
        (
            vec!["--container-port", "0"],
            vec!["invalid value '0' for '--container-port <N>'".to_owned()],
        ),
        (
            vec!["--http-header", "x-dev"],
            vec![
                "invalid value 'x-dev' for '--http-header <K=V>'".to_owned(),
                "`x-dev` has no `=` or `:`".to_owned(),
            ],
        ),
        (
            vec!["--http-header", "bad name=v"],
            vec!["headers.bad name: `bad name` is not a valid HTTP header name".to_owned()],
        ),
        (
            vec!["--http-meta", "novalue"],
            vec!["invalid value 'novalue' for '--http-meta <K=V>'".to_owned()],
        ),
        (
            vec!["--side", "middle"],
            vec!["unknown side `middle`".to_owned()],
        ),
        (
            vec!["--wire", "3.0"],
            vec!["unknown wire format `3.0`".to_owned()],
        ),
        (
            vec!["--listen", "nowhere"],
            vec!["listen: `nowhere` is not a valid host:port address".to_owned()],
        ),
    ];
    for (args, expected) in cases {
        let (code, stderr) = run(&args).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        for part in expected {
            assert!(
                stderr.contains(&part),
                "{args:?}\n  stderr: {stderr}\n  wanted: {part}"
            );
        }
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
    }

    let mut cmd = command(&[]);
    cmd.env(
        "TELEPRESENCE_MOCK_CONFIG",
        "{telepresence_version: '2.24', intercepts: [{id: a, path_regex: '['}]}",
    );
    let (code, stderr) = run_command(cmd).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("error: environment variable TELEPRESENCE_MOCK_CONFIG: intercepts[0] (\"a\"): path_regex"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run(&["--listen", &address]).await;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("error: cannot listen on {address}: ")),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_lets_requests_in_flight_finish() {
    for signal in ["-TERM", "-INT"] {
        let server = start(&["--intercept-id", "i"]).await;
        let fault = ask(&server.url, "/_mock/faults")
            .body("application/json", r#"{"delay_ms": 700, "times": 1}"#)
            .send()
            .await;
        assert_eq!(fault.status, 201);
        let in_flight = tokio::spawn(ask(&server.url, "/consume-here").caller("i").send());
        // The request has arrived when it has used up the one-time fault.
        while !ask(&server.url, "/_mock/faults")
            .send()
            .await
            .json()
            .as_array()
            .unwrap()
            .is_empty()
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (status, stderr) = server.stop(signal).await;
        assert!(status.success(), "{signal}: {stderr}");
        assert!(stderr.contains("shutting down"), "{stderr}");
        assert_eq!(in_flight.await.unwrap(), json_answer("true"), "{signal}");
    }
}

#[tokio::test]
async fn beyond_loopback_the_admin_api_needs_a_token() {
    // A generated token is logged, since nobody else knows it.
    let server = start_command(command(&["--listen", "0.0.0.0:0", "--print-env"])).await;
    let url = format!("http://127.0.0.1:{}", server.env[0].1);
    assert_eq!(ask(&url, "/_mock/intercepts").send().await.status, 401);
    assert_eq!(ask(&url, "/healthz").send().await.status, 200);
    let (_, stderr) = server.stop("-TERM").await;
    let token = stderr
        .split("with token ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no token in {stderr}"));
    assert_eq!(token.len(), 32);

    // A given token is required and never logged.
    let server = start(&["--admin-token", "given-token"]).await;
    assert_eq!(ask(&server.url, "/_mock/").send().await.status, 401);
    let ok = ask(&server.url, "/_mock/")
        .header("authorization", "Bearer given-token")
        .send()
        .await;
    assert_eq!(ok.status, 200);
    let (_, stderr) = server.stop("-TERM").await;
    assert!(
        !stderr.contains("given-token") && stderr.contains("with the given token"),
        "{stderr}"
    );

    // Explicitly open.
    let server = start_command(command(&[
        "--listen",
        "0.0.0.0:0",
        "--print-env",
        "--no-admin-auth",
    ]))
    .await;
    let url = format!("http://127.0.0.1:{}", server.env[0].1);
    assert_eq!(ask(&url, "/_mock/").send().await.status, 200);
}

/// The admin token from the environment is checked like the flag's, and
/// every refusal names where the token came from.
#[tokio::test]
async fn the_admin_tokens_origin_is_named() {
    let mut empty = command(&[]);
    empty.env("TELEPRESENCE_MOCK_ADMIN_TOKEN", "");
    let (code, stderr) = run_command(empty).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("TELEPRESENCE_MOCK_ADMIN_TOKEN: the admin token must not be empty"),
        "{stderr}"
    );
    let mut both = command(&["--no-admin-auth"]);
    both.env("TELEPRESENCE_MOCK_ADMIN_TOKEN", "t0ken");
    let (code, stderr) = run_command(both).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains(
            "TELEPRESENCE_MOCK_ADMIN_TOKEN: a token and --no-admin-auth contradict each other"
        ),
        "{stderr}"
    );
    let (code, stderr) = run(&["--admin-token", ""]).await;
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("--admin-token: the admin token must not be empty"),
        "{stderr}"
    );
}

/// An admin API opened beyond loopback on purpose is said so at start.
#[tokio::test]
async fn no_admin_auth_beyond_loopback_is_warned_about() {
    let server = start_command(command(&[
        "--listen",
        "0.0.0.0:0",
        "--print-env",
        "--no-admin-auth",
    ]))
    .await;
    let (_, stderr) = server.stop("-TERM").await;
    let warning = stderr
        .lines()
        .find(|line| line.contains("WARN"))
        .unwrap_or_else(|| panic!("a warning:\n{stderr}"));
    assert!(
        warning.contains("--no-admin-auth: the admin API at http://0.0.0.0:"),
        "{warning}"
    );
    assert!(
        warning.contains("is open to anyone who reaches the port"),
        "{warning}"
    );
}
