//! Reading the API's answers, in every Telepresence version's wire format.
//!
//! 2.25+ sends `true`; 2.5 to 2.24 send `true\n`; 2.4 sends `true` as
//! `text/plain`. Errors are JSON `{"error": ...}` or plain text. So: ignore
//! the content type, trim white space, read JSON.

use telepresence_api::{ErrorBody, InterceptInfo};

use crate::error::{Error, ErrorKind};

/// The longest excerpt of a body quoted in an error.
const EXCERPT: usize = 200;

/// The `/consume-here` answer.
pub(crate) fn consume_here(status: u16, body: &[u8]) -> Result<bool, Error> {
    check_status(status, body)?;
    match body.trim_ascii() {
        b"true" => Ok(true),
        b"false" => Ok(false),
        _ => Err(bad_answer("a JSON boolean", body)),
    }
}

/// The `/intercept-info` answer.
pub(crate) fn intercept_info(status: u16, body: &[u8]) -> Result<InterceptInfo, Error> {
    check_status(status, body).map_err(|error| {
        if status == 404 {
            error.with_explanation(
                "this API has no /intercept-info (Telepresence 2.4 served only \
                 /consume-here and /healthz)",
            )
        } else {
            error
        }
    })?;
    serde_json::from_slice(body.trim_ascii()).map_err(|e| {
        let context = unexpected("an intercept-info JSON object", body);
        Error::caused(ErrorKind::BadAnswer, context, &e)
    })
}

/// Any `2xx` is fine; anything else is an error carrying the server's text.
pub(crate) fn check_status(status: u16, body: &[u8]) -> Result<(), Error> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    Err(Error::http_status(status, server_message(status, body)))
}

/// The `error` field of a JSON body, or the body as text, or the status's reason.
fn server_message(status: u16, body: &[u8]) -> String {
    let body = body.trim_ascii();
    if let Ok(ErrorBody { error }) = serde_json::from_slice(body) {
        return error;
    }
    if body.is_empty() {
        return http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no reason given")
            .to_owned();
    }
    excerpt(body)
}

fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(EXCERPT) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

fn bad_answer(expected: &str, body: &[u8]) -> Error {
    Error::new(ErrorKind::BadAnswer, unexpected(expected, body))
}

fn unexpected(expected: &str, body: &[u8]) -> String {
    format!(
        "expected {expected} from the Telepresence API, got {:?}",
        excerpt(body)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_every_wire_format() {
        for (body, answer) in [
            (&b"true"[..], true),
            (b"false", false),
            (b"true\n", true),
            (b"false\n", false),
            (b"  true\r\n", true),
        ] {
            assert_eq!(consume_here(200, body).unwrap(), answer, "{body:?}");
        }
    }

    #[test]
    fn a_missing_intercept_info_says_which_release_lacks_it() {
        let err = intercept_info(404, b"404 page not found\n").unwrap_err();
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.server_message(), Some("404 page not found"));
        assert!(
            err.to_string()
                .ends_with("404 page not found; this API has no /intercept-info (Telepresence 2.4 served only /consume-here and /healthz)"),
            "{err}"
        );
    }

    #[test]
    fn anything_else_is_a_bad_answer() {
        for body in [
            &b""[..],
            b"yes",
            b"1",
            b"\"true\"",
            b"True",
            b"{\"x\":1}",
            b"true false",
            b"\xff",
        ] {
            let err = consume_here(200, body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadAnswer, "{body:?}");
            assert!(
                err.to_string().starts_with("expected a JSON boolean"),
                "{err}"
            );
        }
    }

    #[test]
    fn intercept_info_reads_every_version_and_ignores_unknown_fields() {
        let info = intercept_info(
            200,
            br#"{"intercepted":true,"clientSide":true,"metadata":{"a":"b"},"future":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            info,
            InterceptInfo::new(true, true).with_metadata([("a".to_owned(), "b".to_owned())].into())
        );
        let info = intercept_info(200, b"{\"intercepted\":false,\"clientSide\":false}\n").unwrap();
        assert_eq!(info, InterceptInfo::default());
    }

    #[test]
    fn malformed_intercept_info_is_a_bad_answer() {
        for body in [
            &b"true"[..],
            b"{}",
            b"{\"intercepted\":true}",
            b"{\"intercepted\":\"yes\",\"clientSide\":true}",
            b"{\"intercepted\":true,\"clientSide\":true,\"metadata\":{\"a\":1}}",
            // The documentation once printed this; the server never sends it.
            b"{intercepted: true}",
        ] {
            let err = intercept_info(200, body).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::BadAnswer, "{body:?}");
        }
    }

    #[test]
    fn errors_carry_the_status_and_the_servers_text() {
        let cases = [
            (
                400,
                &br#"{"error":"containerPort: bad"}"#[..],
                "containerPort: bad",
            ),
            (
                400,
                b"{\"error\":\"containerPort: bad\"}\n",
                "containerPort: bad",
            ),
            (400, b"containerPort: bad\n", "containerPort: bad"),
            (500, b"", "Internal Server Error"),
            (503, b"{\"message\":\"x\"}", "{\"message\":\"x\"}"),
            (404, b"404 page not found\n", "404 page not found"),
        ];
        for (status, body, text) in cases {
            for result in [
                consume_here(status, body).map(drop),
                intercept_info(status, body).map(drop),
            ] {
                let err = result.unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Status);
                assert_eq!(err.status(), Some(status));
                assert_eq!(err.server_message(), Some(text));
                assert!(
                    err.to_string()
                        .starts_with(&format!("the Telepresence API answered {status}: {text}")),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn long_bodies_are_cut_short_in_messages() {
        let body = "x".repeat(1000);
        let err = check_status(500, body.as_bytes()).unwrap_err();
        assert_eq!(err.server_message().unwrap().len(), EXCERPT + 3);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::sample::select(vec![
                "true", "false", "true\n", " false \r\n", "{\"error\":\"x\"}", "{\"intercepted\":true,\"clientSide\":false}",
                "{\"intercepted\":true,\"clientSide\":true,\"metadata\":{\"a\":\"b\"},\"more\":[1]}", "", "null", "[]",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..300),
            any::<String>().prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn any_answer_maps_to_a_value_or_the_right_error_kind(status in 100u16..600, body in body()) {
            let success = (200..300).contains(&status);
            match consume_here(status, &body) {
                Ok(answer) => {
                    prop_assert!(success);
                    let expected: &[u8] = if answer { b"true" } else { b"false" };
                    prop_assert_eq!(body.trim_ascii(), expected);
                }
                Err(e) if success => prop_assert_eq!(e.kind(), ErrorKind::BadAnswer),
                Err(e) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Status);
                    prop_assert_eq!(e.status(), Some(status));
                }
            }
            match intercept_info(status, &body) {
                Ok(_) => prop_assert!(success),
                Err(e) if success => prop_assert_eq!(e.kind(), ErrorKind::BadAnswer),
                Err(e) => prop_assert_eq!(e.status(), Some(status)),
            }
        }
    }
}
