//! Every rule that depends on the Telepresence release, per release family,
//! on both sides, over HTTP against the `telepresence-mock-server` binary,
//! configured once by its flags and once by a configuration file.
//!
//! Which intercept a request matched is read from the journal, so that the
//! same table covers 2.4, which has no `/intercept-info`.

mod common;

use common::process::{Running, run, start, tempdir};
use common::{CALLER, ask};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    /// 2.25 and later.
    Current,
    /// 2.5 to 2.24.
    Legacy,
    /// 2.4: the legacy rules, its own wire format, no `/intercept-info`.
    Oldest,
}

/// The releases tried: each family and its boundaries; `None` is the default.
const RELEASES: &[(Option<&str>, Family)] = &[
    (None, Family::Current),
    (Some("2.27.4"), Family::Current),
    (Some("2.25"), Family::Current),
    (Some("2.24.1"), Family::Legacy),
    (Some("2.5.0"), Family::Legacy),
    (Some("2.4"), Family::Oldest),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Agent,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Agent => "agent",
        }
    }
}

/// One way to configure a server: intercept flags, or a configuration file.
enum Setup {
    Flags(Vec<String>),
    File(String),
}

impl Setup {
    fn flags(flags: &[&str]) -> Self {
        Self::Flags(flags.iter().map(|f| (*f).to_owned()).collect())
    }

    fn file(yaml: impl Into<String>) -> Self {
        Self::File(yaml.into())
    }
}

/// The arguments for `setup` on `side` of `release`; a configuration file
/// carries the release itself, flags pass it as `--telepresence-version`.
fn arguments(setup: &Setup, side: Side, release: Option<&str>) -> Vec<String> {
    let mut args = vec!["--side".to_owned(), side.as_str().to_owned()];
    match setup {
        Setup::Flags(flags) => {
            args.extend(flags.iter().cloned());
            if let Some(release) = release {
                args.extend(["--telepresence-version".to_owned(), release.to_owned()]);
            }
        }
        Setup::File(yaml) => {
            let path = tempdir().join("mock.yaml");
            let version =
                release.map_or(String::new(), |r| format!("telepresence_version: '{r}'\n"));
            std::fs::write(&path, format!("{version}{yaml}")).unwrap();
            args.extend(["--config".to_owned(), path.to_str().unwrap().to_owned()]);
        }
    }
    args
}

async fn start_with(setup: &Setup, side: Side, release: Option<&str>) -> Running {
    let args = arguments(setup, side, release);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    start(&args).await
}

/// A request to `/consume-here`: its answer, checked against the side, and
/// the ID of the intercept it matched, from the journal.
async fn matched(
    server: &Running,
    side: Side,
    query: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut request = ask(&server.url, &format!("/consume-here?{query}"));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let answer = request.send().await;
    assert_eq!(answer.status, 200, "{query} {headers:?}: {}", answer.body);
    let journal = ask(&server.url, "/_mock/journal").send().await.json();
    let last = journal.as_array().unwrap().last().unwrap().clone();
    let intercept = last["intercept"].as_str().map(str::to_owned);
    let consume = answer.body.trim_end() == "true";
    let expected = match side {
        Side::Client => intercept.is_some(),
        Side::Agent => intercept.is_none(),
    };
    assert_eq!(
        consume, expected,
        "{query} {headers:?}: the answer follows the match"
    );
    intercept
}

/// Runs `check` on a server of each release, for each setup.
async fn for_each_release<F>(setups: &[Setup], side: Side, check: F)
where
    F: AsyncFn(&Running, Family, &str),
{
    for setup in setups {
        for &(release, family) in RELEASES {
            let server = start_with(setup, side, release).await;
            let label = format!(
                "{} side of {} configured by {}",
                side.as_str(),
                release.unwrap_or("the default release"),
                match setup {
                    Setup::Flags(_) => "flags",
                    Setup::File(_) => "a file",
                }
            );
            check(&server, family, &label).await;
        }
    }
}

fn some(id: &str) -> Option<String> {
    Some(id.to_owned())
}

/// A query string, request headers, and the intercept it should match.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);

/// Asks each case of the table and compares the intercept matched.
async fn expect(server: &Running, side: Side, label: &str, cases: &[Case<'_>]) {
    for &(query, headers, expected) in cases {
        assert_eq!(
            matched(server, side, query, headers).await.as_deref(),
            expected,
            "{label}: {query:?} {headers:?}"
        );
    }
}

const ALICE: &[(&str, &str)] = &[("x-dev", "alice")];

#[tokio::test]
async fn a_query_without_port_takes_the_only_port_in_every_release() {
    let setups = [
        Setup::flags(&["--intercept-id", "i", "--http-header", "x-dev=alice"]),
        Setup::file("intercepts:\n  - id: i\n    headers: {x-dev: alice}\n"),
    ];
    for_each_release(&setups, Side::Agent, async |server, _, label| {
        let cases: &[Case] = &[
            ("", ALICE, Some("i")),
            ("containerPort=0", ALICE, Some("i")),
            ("containerPort=8080", ALICE, Some("i")),
            ("containerPort=9090", ALICE, None),
            ("", &[("x-dev", "bob")], None),
        ];
        expect(server, Side::Agent, label, cases).await;
    })
    .await;
}

#[tokio::test]
async fn a_query_without_port_on_two_ports_takes_the_first_from_2_25_and_none_before() {
    let setups = [Setup::file(
        "intercepts:\n  - {id: a, container_port: 8080}\n  - {id: b, container_port: 9090}\n",
    )];
    for_each_release(&setups, Side::Agent, async |server, family, label| {
        let without_port = (family == Family::Current).then_some("a");
        let cases: &[Case] = &[
            ("", &[], without_port),
            ("containerPort=9090", &[], Some("b")),
            ("containerPort=8080", &[], Some("a")),
        ];
        expect(server, Side::Agent, label, cases).await;
    })
    .await;
    // The workstation ignores the port in every release.
    for_each_release(&setups, Side::Client, async |server, _, label| {
        let caller: &[(&str, &str)] = &[(CALLER, "a")];
        let cases: &[Case] = &[
            ("", caller, Some("a")),
            ("containerPort=9090", caller, Some("a")),
            ("containerPort=7070", caller, Some("a")),
        ];
        expect(server, Side::Client, label, cases).await;
    })
    .await;
}

/// Flags and the equivalent file for an intercept "b" on 9090 of a workload
/// with the ports `first` and `second`.
fn intercept_on_9090(first: &str, second: &str) -> [Setup; 2] {
    [
        Setup::flags(&[
            "--workload-port",
            first,
            "--workload-port",
            second,
            "--intercept-id",
            "b",
            "--container-port",
            "9090",
        ]),
        Setup::file(format!(
            "container_ports: [{first}, {second}]\nintercepts:\n  - {{id: b, container_port: 9090}}\n"
        )),
    ]
}

#[tokio::test]
async fn the_first_port_may_be_unintercepted_and_nothing_falls_through() {
    let first_unintercepted = intercept_on_9090("8080", "9090");
    for_each_release(
        &first_unintercepted,
        Side::Agent,
        async |server, _, label| {
            let cases: &[Case] = &[
                ("", &[], None),
                ("containerPort=9090", &[], Some("b")),
                ("containerPort=8080", &[], None),
            ];
            expect(server, Side::Agent, label, cases).await;
        },
    )
    .await;
    let first_intercepted = intercept_on_9090("9090", "8080");
    for_each_release(
        &first_intercepted,
        Side::Agent,
        async |server, family, label| {
            let without_port = (family == Family::Current).then_some("b");
            expect(server, Side::Agent, label, &[("", &[], without_port)]).await;
        },
    )
    .await;
}

#[tokio::test]
async fn candidates_are_tried_by_id_from_2_25_and_in_order_before() {
    // Both match `x-dev: alice`; "b" is listed first, "a" sorts first.
    let setups = [Setup::file(
        "intercepts:\n  - {id: b, headers: {x-dev: alice}}\n  - {id: a, headers: {x-dev: ^al}}\n",
    )];
    let caller_a: &[(&str, &str)] = &[("x-dev", "alice"), (CALLER, "a")];
    let caller_b: &[(&str, &str)] = &[("x-dev", "alice"), (CALLER, "b")];
    let caller_c: &[(&str, &str)] = &[("x-dev", "alice"), (CALLER, "c")];
    for_each_release(&setups, Side::Agent, async |server, family, label| {
        let first = if family == Family::Current { "a" } else { "b" };
        // A caller's ID leaves out the other intercepts, in every release.
        let cases: &[Case] = &[
            ("", ALICE, Some(first)),
            ("", caller_a, Some("a")),
            ("", caller_b, Some("b")),
            ("", caller_c, None),
        ];
        expect(server, Side::Agent, label, cases).await;
    })
    .await;
    for_each_release(&setups, Side::Client, async |server, _, label| {
        let cases: &[Case] = &[
            ("", ALICE, None),
            ("", caller_a, Some("a")),
            ("", caller_b, Some("b")),
        ];
        expect(server, Side::Client, label, cases).await;
    })
    .await;
}

/// Runs `check` on both sides of each release from 2.25, for each setup, and
/// checks that every older release refuses the same setup at start, with
/// exit code 2 and `refusal` in its one line.
async fn current_only<F>(setups: &[Setup], refusal: &str, check: F)
where
    F: AsyncFn(Running, Side, &str),
{
    for side in [Side::Client, Side::Agent] {
        for setup in setups {
            for &(release, family) in RELEASES {
                let label = format!("{} side of {release:?}", side.as_str());
                if family == Family::Current {
                    let server = start_with(setup, side, release).await;
                    check(server, side, &label).await;
                    continue;
                }
                let args = arguments(setup, side, release);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let (code, stderr) = run(&args).await;
                assert_eq!(code, Some(2), "{label}: {stderr}");
                assert!(stderr.contains(refusal), "{label}: {stderr}");
            }
        }
    }
}

/// Path filters OR-ed from 2.25; before, the same setup is refused at start.
#[tokio::test]
async fn several_path_filters_match_any_from_2_25_and_are_refused_before() {
    let setups = [
        Setup::flags(&[
            "--intercept-id",
            "i",
            "--http-path-equal",
            "/a",
            "--http-path-prefix",
            "/b/",
            "--http-path-prefix",
            "/c/",
        ]),
        Setup::file("intercepts:\n  - id: i\n    path_equal: /a\n    path_prefix: [/b/, /c/]\n"),
    ];
    let refusal = r#"intercepts[0] ("i"): path_prefix: at most one path filter is allowed before Telepresence 2.25, but path_equal and path_prefix are given"#;
    current_only(&setups, refusal, async |server, side, label| {
        let caller: &[(&str, &str)] = &[(CALLER, "i")];
        let cases: &[Case] = &[
            ("path=/a", caller, Some("i")),
            ("path=/b/x", caller, Some("i")),
            ("path=/c/", caller, Some("i")),
            ("path=/a/", caller, None),
            ("path=/b", caller, None),
            ("path=", caller, None),
        ];
        expect(&server, side, label, cases).await;
    })
    .await;
}

/// An invalid regex is a literal value from 2.25, with one warning line at
/// start; before, the intercept is refused.
#[tokio::test]
async fn invalid_regexes_are_literal_from_2_25_and_refused_before() {
    let setups = [
        Setup::flags(&[
            "--intercept-id",
            "i",
            "--http-header",
            "x-dev=(dev",
            "--http-path-regex",
            "/v1[",
        ]),
        Setup::file("intercepts:\n  - id: i\n    headers: {x-dev: (dev}\n    path_regex: /v1[\n"),
    ];
    let refusal = r#"intercepts[0] ("i"): headers.x-dev: invalid regular expression `(dev`"#;
    current_only(&setups, refusal, async |server, side, label| {
        for (dev, path, expected) in [
            ("(dev", "/v1[", some("i")),
            ("dev", "/v1[", None),
            ("x(devx", "/v1[", None),
            ("(dev", "/v1", None),
            ("(dev", "/v1[x", None),
        ] {
            let headers = [(CALLER, "i"), ("x-dev", dev)];
            let query = format!("path={}", path.replace('[', "%5B"));
            assert_eq!(
                matched(&server, side, &query, &headers).await,
                expected,
                "{label} {dev} {path}"
            );
        }
        let (_, stderr) = server.stop("-TERM").await;
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 2, "{label}: one line per value\n{stderr}");
        assert!(
            warnings[0].contains(
                r#"intercept "i": headers.x-dev: `(dev` is not a valid regular expression"#
            ),
            "{}",
            warnings[0]
        );
        assert!(
            warnings[1].contains(r#"intercept "i": path_regex: `/v1[` is not"#),
            "{}",
            warnings[1]
        );
    })
    .await;
}

/// The bytes of each family: 2.25 and later write JSON as is; 2.5 to 2.24
/// end it with a newline and escape `<`, `>`, `&`; 2.4 writes plain text
/// and has no `/intercept-info`.
#[tokio::test]
async fn each_release_writes_its_own_bytes() {
    let setups = [
        Setup::flags(&["--intercept-id", "i", "--http-meta", "note=<b>&"]),
        Setup::file("intercepts:\n  - {id: i, metadata: {note: <b>&}}\n"),
    ];
    for_each_release(&setups, Side::Client, async |server, family, label| {
        let consume = ask(&server.url, "/consume-here").caller("i").send().await;
        let info = ask(&server.url, "/intercept-info").caller("i").send().await;
        let bad_port = ask(&server.url, "/consume-here?containerPort=%3Cx%3E").send().await;
        let got = |a: &common::Answer| (a.status, a.content_type.clone(), a.body.clone());
        let json = Some("application/json".to_owned());
        let meta = r#"{"intercepted":true,"clientSide":true,"metadata":{"note":"<b>&"}}"#;
        let escaped = r#"{"intercepted":true,"clientSide":true,"metadata":{"note":"\u003cb\u003e\u0026"}}"#;
        let port_error = r#"{"error":"containerPort: strconv.ParseUint: parsing \"<x>\": invalid syntax"}"#;
        let escaped_port_error = r#"{"error":"containerPort: strconv.ParseUint: parsing \"\u003cx\u003e\": invalid syntax"}"#;
        match family {
            Family::Current => {
                assert_eq!(got(&consume), (200, json.clone(), "true".into()), "{label}");
                assert_eq!(got(&info), (200, json.clone(), meta.into()), "{label}");
                assert_eq!(got(&bad_port), (400, json, port_error.into()), "{label}");
            }
            Family::Legacy => {
                assert_eq!(got(&consume), (200, json.clone(), "true\n".into()), "{label}");
                assert_eq!(got(&info), (200, json.clone(), format!("{escaped}\n")), "{label}");
                assert_eq!(got(&bad_port), (400, json, format!("{escaped_port_error}\n")), "{label}");
            }
            Family::Oldest => {
                assert_eq!(got(&consume), (200, Some("text/plain".into()), "true".into()), "{label}");
                let not_found = (404, Some("text/plain; charset=utf-8".into()), "404 page not found\n".into());
                assert_eq!(got(&info), not_found, "{label}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_start_line_and_the_status_name_the_release() {
    for (flag, shown, newer) in [
        (None, "2.27.4", false),
        (Some("2.24.1"), "2.24.1", false),
        (Some("v2.30"), "2.30", true),
    ] {
        let mut args = vec![
            "--side",
            "agent",
            "--workload-port",
            "8080",
            "--workload-port",
            "9090",
        ];
        if let Some(flag) = flag {
            args.extend(["--telepresence-version", flag]);
        }
        let server = start(&args).await;
        let status = ask(&server.url, "/_mock/").send().await.json();
        assert_eq!(status["telepresence_version"], shown);
        assert_eq!(status["workload_ports"], serde_json::json!([8080, 9090]));
        assert_eq!(status["workload_ports_declared"], true);
        let (_, stderr) = server.stop("-TERM").await;
        let line = stderr.lines().next().unwrap();
        assert!(
            line.contains(&format!("as the agent side of Telepresence {shown}")),
            "{line}"
        );
        assert!(line.contains("workload ports 8080, 9090"), "{line}");
        assert_eq!(
            line.contains("newer than 2.27.4, the newest release this mock knows"),
            newer,
            "{line}"
        );
    }
}
