//! The Telepresence endpoints over real HTTP, against the in-process server.

mod common;

use common::{answer, ask, json_answer};
use telepresence_mock_server::{Intercept, MockServer, MockServerBuilder, Side, Wire};

const ID: &str = "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server";

/// The intercept of the worked example: `--http-header x=y
/// --http-path-prefix=/api --http-meta a=b --http-meta b=c` on port 8080.
fn worked_example() -> Intercept {
    Intercept::new(ID)
        .container_port(8080)
        .header("x", "y")
        .path_prefix("/api")
        .metadata("a", "b")
        .metadata("b", "c")
}

async fn start(builder: MockServerBuilder) -> MockServer {
    builder.start().await.expect("server starts")
}

#[tokio::test]
async fn the_worked_example_on_the_workstation() {
    let server = start(MockServer::builder().intercept(worked_example())).await;
    let url = server.url();
    let consume = ask(&url, "/consume-here?containerPort=8080&path=/api")
        .caller(ID)
        .header("x", "y")
        .send()
        .await;
    assert_eq!(consume, json_answer("true"));
    let info = ask(&url, "/intercept-info?containerPort=8080&path=/api")
        .caller(ID)
        .header("x", "y")
        .send()
        .await;
    assert_eq!(
        info,
        json_answer(r#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b","b":"c"}}"#)
    );
}

#[tokio::test]
async fn the_worked_example_from_inside_the_pod() {
    let server = start(
        MockServer::builder()
            .side(Side::Agent)
            .intercept(worked_example()),
    )
    .await;
    let consume = ask(&server.url(), "/consume-here?containerPort=8080&path=/api")
        .caller(ID)
        .header("x", "y")
        .send()
        .await;
    assert_eq!(consume, json_answer("false"));
    let info = ask(
        &server.url(),
        "/intercept-info?containerPort=8080&path=/api",
    )
    .header("x", "y")
    .send()
    .await;
    assert_eq!(
        info,
        json_answer(r#"{"intercepted":true,"clientSide":false,"metadata":{"a":"b","b":"c"}}"#)
    );
}

#[tokio::test]
async fn healthz_answers_200_empty_without_content_type_to_any_method() {
    for wire in Wire::ALL {
        let server = start(MockServer::builder().wire(wire)).await;
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let got = ask(&server.url(), "/healthz").method(method).send().await;
            assert_eq!(got, answer(200, None, ""), "{method} on wire {wire}");
        }
        let head = ask(&server.url(), "/healthz").method("HEAD").send().await;
        assert_eq!(head.status, 200);
    }
}

#[tokio::test]
async fn consume_here_in_each_wire_format() {
    let expected = [
        (Wire::V2_25, "application/json", "true", "false"),
        (Wire::V2_5, "application/json", "true\n", "false\n"),
        (Wire::V2_4, "text/plain", "true", "false"),
    ];
    for (wire, content_type, yes, no) in expected {
        let server = start(
            MockServer::builder()
                .wire(wire)
                .intercept(Intercept::new("i").header("x", "y")),
        )
        .await;
        let hit = ask(&server.url(), "/consume-here")
            .caller("i")
            .header("x", "y")
            .send()
            .await;
        assert_eq!(hit, answer(200, Some(content_type), yes), "wire {wire}");
        let miss = ask(&server.url(), "/consume-here").caller("i").send().await;
        assert_eq!(miss, answer(200, Some(content_type), no), "wire {wire}");
    }
}

#[tokio::test]
async fn intercept_info_in_each_wire_format() {
    let expected = [
        (Wire::V2_25, "application/json", ""),
        (Wire::V2_5, "application/json", "\n"),
        (Wire::V2_4, "text/plain", ""),
    ];
    for (wire, content_type, newline) in expected {
        let server = start(
            MockServer::builder()
                .wire(wire)
                .intercept(Intercept::new("i").metadata("k", "v")),
        )
        .await;
        let hit = ask(&server.url(), "/intercept-info")
            .caller("i")
            .send()
            .await;
        let body =
            format!(r#"{{"intercepted":true,"clientSide":true,"metadata":{{"k":"v"}}}}{newline}"#);
        assert_eq!(hit, answer(200, Some(content_type), &body), "wire {wire}");
        let miss = ask(&server.url(), "/intercept-info").send().await;
        let body = format!(r#"{{"intercepted":false,"clientSide":true}}{newline}"#);
        assert_eq!(miss, answer(200, Some(content_type), &body), "wire {wire}");
    }
}

#[tokio::test]
async fn metadata_is_left_out_when_empty() {
    let server = start(MockServer::builder().intercept(Intercept::new("i"))).await;
    let info = ask(&server.url(), "/intercept-info")
        .caller("i")
        .send()
        .await;
    assert_eq!(
        info,
        json_answer(r#"{"intercepted":true,"clientSide":true}"#)
    );
}

#[tokio::test]
async fn a_bad_container_port_is_a_400_on_both_endpoints_and_sides() {
    let cases = [
        ("%2B80", r#""+80": invalid syntax"#),
        ("%2080", r#"" 80": invalid syntax"#),
        ("-1", r#""-1": invalid syntax"#),
        ("65536", r#""65536": value out of range"#),
        ("abc", r#""abc": invalid syntax"#),
    ];
    for side in [Side::Client, Side::Agent] {
        let server = start(
            MockServer::builder()
                .side(side)
                .intercept(Intercept::new("i")),
        )
        .await;
        for endpoint in ["/consume-here", "/intercept-info"] {
            for (raw, reason) in cases {
                let got = ask(&server.url(), &format!("{endpoint}?containerPort={raw}"))
                    .caller("i")
                    .send()
                    .await;
                let body = serde_json::json!({
                    "error": format!("containerPort: strconv.ParseUint: parsing {reason}")
                })
                .to_string();
                assert_eq!(
                    got,
                    answer(400, Some("application/json"), &body),
                    "{side} {endpoint} {raw}"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_empty_or_zero_padded_container_port_is_accepted() {
    let server = start(
        MockServer::builder()
            .side(Side::Agent)
            .intercept(Intercept::new("i").container_port(80)),
    )
    .await;
    for query in [
        "containerPort=",
        "containerPort=0",
        "containerPort=80",
        "containerPort=00080",
        "",
    ] {
        let got = ask(&server.url(), &format!("/consume-here?{query}"))
            .send()
            .await;
        assert_eq!(
            got,
            json_answer("false"),
            "{query:?}: the intercept on 80 is found"
        );
    }
}

#[tokio::test]
async fn container_port_errors_in_wire_2_5_and_2_4() {
    let server = start(MockServer::builder().wire(Wire::V2_5)).await;
    let got = ask(&server.url(), "/consume-here?containerPort=x")
        .send()
        .await;
    let expected =
        "{\"error\":\"containerPort: strconv.ParseUint: parsing \\\"x\\\": invalid syntax\"}\n";
    assert_eq!(got, answer(400, Some("application/json"), expected));

    let server = start(MockServer::builder().wire(Wire::V2_4)).await;
    let got = ask(&server.url(), "/intercept-info?containerPort=x")
        .send()
        .await;
    let expected = "containerPort: strconv.ParseUint: parsing \"x\": invalid syntax\n";
    assert_eq!(
        got,
        answer(400, Some("text/plain; charset=utf-8"), expected)
    );
}

#[tokio::test]
async fn every_other_path_is_go_s_404() {
    let server = start(MockServer::builder()).await;
    for path in [
        "/",
        "/consume-here/",
        "/healthz/",
        "/intercept-info/x",
        "/Consume-Here",
        "/consume_here",
        "/_mock_",
    ] {
        let got = ask(&server.url(), path).send().await;
        assert_eq!(
            got,
            answer(
                404,
                Some("text/plain; charset=utf-8"),
                "404 page not found\n"
            ),
            "{path}"
        );
    }
}

#[tokio::test]
async fn form_bodies_come_before_the_query_like_go() {
    let server =
        start(MockServer::builder().intercept(Intercept::new("i").path_equal("/api v1"))).await;
    let url = server.url();
    let hit = json_answer("true");
    let miss = json_answer("false");
    let check = async |ask: common::Ask, expected: &common::Answer, what: &str| {
        assert_eq!(&ask.caller("i").send().await, expected, "{what}");
    };
    check(
        ask(&url, "/consume-here?path=/x").form("path=/api+v1"),
        &hit,
        "body wins",
    )
    .await;
    check(
        ask(&url, "/consume-here?path=/api+v1").form("other=1"),
        &hit,
        "query fallback",
    )
    .await;
    check(
        ask(&url, "/consume-here").form("path=%2Fapi%20v1&path=/x"),
        &hit,
        "first body value",
    )
    .await;
    check(
        ask(&url, "/consume-here?path=/api%20v1&path=/x"),
        &hit,
        "first query value",
    )
    .await;
    check(
        ask(&url, "/consume-here")
            .method("PUT")
            .form("path=/api+v1"),
        &hit,
        "PUT form",
    )
    .await;
    check(
        ask(&url, "/consume-here")
            .method("PATCH")
            .form("path=/api+v1"),
        &hit,
        "PATCH form",
    )
    .await;
    check(
        ask(&url, "/consume-here")
            .method("DELETE")
            .form("path=/api+v1"),
        &miss,
        "DELETE body ignored",
    )
    .await;
    check(
        ask(&url, "/consume-here?path=/x").body("application/json", "path=/api+v1"),
        &miss,
        "non-form body ignored",
    )
    .await;
    check(
        ask(&url, "/consume-here").body(
            "application/x-www-form-urlencoded; charset=utf-8",
            "path=/api+v1",
        ),
        &hit,
        "content type parameters",
    )
    .await;
}

#[tokio::test]
async fn a_container_port_in_a_form_body_is_validated() {
    let server = start(MockServer::builder()).await;
    let got = ask(&server.url(), "/consume-here?containerPort=80")
        .form("containerPort=x")
        .send()
        .await;
    assert_eq!(got.status, 400);
    let got = ask(&server.url(), "/consume-here?containerPort=x")
        .form("containerPort=80")
        .send()
        .await;
    assert_eq!(got.status, 200, "the body's value comes first");
}

#[tokio::test]
async fn any_method_gets_a_decision() {
    let server = start(MockServer::builder().intercept(Intercept::new("i"))).await;
    for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let got = ask(&server.url(), "/consume-here")
            .method(method)
            .caller("i")
            .send()
            .await;
        assert_eq!(got, json_answer("true"), "{method}");
    }
}

#[tokio::test]
async fn headers_match_case_insensitively_and_first_occurrence_only() {
    let server =
        start(MockServer::builder().intercept(Intercept::new("i").header("X-Dev", "alice"))).await;
    let url = server.url();
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("x-DEV", "alice")
        .send()
        .await;
    assert_eq!(got.body, "true");
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("x-dev", "alice")
        .header("x-dev", "bob")
        .send()
        .await;
    assert_eq!(got.body, "true");
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("x-dev", "bob")
        .header("x-dev", "alice")
        .send()
        .await;
    assert_eq!(got.body, "false");
}

#[tokio::test]
async fn regex_values_search_and_never_match_empty() {
    let server = start(
        MockServer::builder().intercept(Intercept::new("i").header("v", "v1.0").header("e", ".*")),
    )
    .await;
    let url = server.url();
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("v", "xv1x0y")
        .header("e", "z")
        .send()
        .await;
    assert_eq!(got.body, "true");
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("v", "xv1x0y")
        .header("e", "")
        .send()
        .await;
    assert_eq!(got.body, "false", "empty value");
    let got = ask(&url, "/consume-here")
        .caller("i")
        .header("v", "xv1x0y")
        .send()
        .await;
    assert_eq!(got.body, "false", "missing header");
}

#[tokio::test]
async fn the_workstation_answers_only_its_own_caller() {
    let server = start(
        MockServer::builder()
            .intercept(Intercept::new("alice").header("x-dev", "alice"))
            .intercept(Intercept::new("bob")),
    )
    .await;
    let url = server.url();
    let consume = async |caller: Option<&str>, dev: &str| {
        let mut a = ask(&url, "/consume-here?containerPort=9999").header("x-dev", dev);
        if let Some(caller) = caller {
            a = a.caller(caller);
        }
        a.send().await.body
    };
    assert_eq!(consume(Some("alice"), "alice").await, "true");
    assert_eq!(consume(Some("alice"), "bob").await, "false");
    assert_eq!(consume(Some("bob"), "anyone").await, "true");
    assert_eq!(
        consume(Some("carol"), "alice").await,
        "false",
        "unknown caller"
    );
    assert_eq!(consume(Some(""), "alice").await, "false", "empty caller");
    assert_eq!(consume(None, "alice").await, "false", "no caller");
}

#[tokio::test]
async fn the_pod_selects_by_port_and_leaves_out_other_callers() {
    // Without a container port, 2.25 and later take the first port; older
    // releases take a port only when the workload has just one.
    for (version, without_port) in [("2.27", "false"), ("2.24", "true")] {
        let server = start(
            MockServer::builder()
                .telepresence_version(version.parse().unwrap())
                .side(Side::Agent)
                .intercept(
                    Intercept::new("web")
                        .container_port(8080)
                        .header("x-dev", "alice"),
                )
                .intercept(
                    Intercept::new("admin")
                        .container_port(9090)
                        .header("x-dev", "alice"),
                ),
        )
        .await;
        let url = server.url();
        let consume = async |query: &str, caller: &str| {
            ask(&url, &format!("/consume-here?{query}"))
                .caller(caller)
                .header("x-dev", "alice")
                .send()
                .await
                .body
                .trim_end()
                .to_owned()
        };
        assert_eq!(
            consume("", "").await,
            without_port,
            "{version}: two ports, none given"
        );
        assert_eq!(consume("containerPort=8080", "").await, "false");
        assert_eq!(consume("containerPort=9090", "").await, "false");
        assert_eq!(consume("containerPort=7070", "").await, "true");
        assert_eq!(consume("containerPort=8080", "web").await, "false");
        assert_eq!(
            consume("containerPort=8080", "admin").await,
            "true",
            "another caller's intercept"
        );

        server.admin().remove_intercept("admin").await.unwrap();
        assert_eq!(
            consume("", "").await,
            "false",
            "{version}: one port left: it is chosen"
        );
    }
}

#[tokio::test]
async fn path_parameters_are_form_decoded() {
    let server = start(
        MockServer::builder().intercept(Intercept::new("i").path_regex("^/orders/[0-9]+ new$")),
    )
    .await;
    let got = ask(&server.url(), "/consume-here?path=%2Forders%2F42+new")
        .caller("i")
        .send()
        .await;
    assert_eq!(got.body, "true");
    let got = ask(&server.url(), "/consume-here?path=/orders/x+new")
        .caller("i")
        .send()
        .await;
    assert_eq!(got.body, "false");
}

/// Go's `\w` is `[0-9A-Za-z_]`, its `\<` a literal `<`; the `regex` crate
/// reads both otherwise unless told (api/tests/go_regexp.rs has the rest).
#[tokio::test]
async fn regexes_are_read_as_go_reads_them() {
    let server = start(
        MockServer::builder().intercept(
            Intercept::new("i")
                .path_regex(r"^/\w+$")
                .header("x-dev", r"\<dev\>"),
        ),
    )
    .await;
    let decide = async |path: &str, dev: &str| {
        let query = format!("/consume-here?path={path}");
        let got = ask(&server.url(), &query)
            .caller("i")
            .header("x-dev", dev)
            .send()
            .await;
        got.body
    };
    assert_eq!(decide("/orders_2", "<dev>").await, "true");
    assert_eq!(
        decide("/caf%C3%A9", "<dev>").await,
        "false",
        "é is no word character in Go"
    );
    assert_eq!(
        decide("/orders_2", "dev").await,
        "false",
        r"\< is a literal <"
    );
}

#[tokio::test]
async fn unclean_paths_are_redirected_like_go_s_serve_mux() {
    let server = start(MockServer::builder().intercept(Intercept::new("i"))).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .get(format!("{}//consume-here?path=/a&b", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], "/consume-here?path=/a&b");
    assert_eq!(res.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(
        res.text().await.unwrap(),
        "<a href=\"/consume-here?path=/a&amp;b\">Moved Permanently</a>.\n\n"
    );
    let posted = client
        .post(format!("{}//healthz", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 301);
    assert_eq!(posted.headers()["location"], "/healthz");
    assert!(
        posted.headers().get("content-type").is_none(),
        "no body but for GET and HEAD"
    );

    // A client that follows redirects gets the real answer.
    let followed = ask(&server.url(), "//consume-here")
        .caller("i")
        .send()
        .await;
    assert_eq!(followed, json_answer("true"));
}
