//! Reading `path` and `containerPort` the way Go's `Request.FormValue` does.
//!
//! Telepresence's server is written in Go, so its parameters follow Go's
//! rules: values from an `application/x-www-form-urlencoded` body (POST, PUT,
//! PATCH) come before those of the URL query, the first value of a repeated
//! key wins, `+` decodes to a space, and a pair that does not decode (a bad
//! `%` escape, or a `;` anywhere in it) is skipped rather than refused.

use std::borrow::Cow;

use http::{HeaderMap, Method, header::CONTENT_TYPE};

/// The first value of `key` in an URL-encoded string, decoded.
pub(crate) fn first_value<'a>(encoded: &'a [u8], key: &str) -> Option<Cow<'a, [u8]>> {
    encoded
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty() && !pair.contains(&b';'))
        .find_map(|pair| {
            let (k, v) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[..0]),
            };
            let k = unescape(k)?;
            let v = unescape(v)?;
            (*k == *key.as_bytes()).then_some(v)
        })
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` needs two hex digits.
fn unescape(s: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !s.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex(*s.get(i + 1)?)?;
                let lo = hex(*s.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(Cow::Owned(out))
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Whether Go would parse this request's body as a form.
pub(crate) fn has_form_body(method: &Method, headers: &HeaderMap) -> bool {
    if !matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        return false;
    }
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// `FormValue(key)`: body first, then the URL query; absent is empty.
pub(crate) fn form_value<'a>(body: &'a [u8], query: &'a [u8], key: &str) -> Cow<'a, [u8]> {
    first_value(body, key)
        .or_else(|| first_value(query, key))
        .unwrap_or(Cow::Borrowed(&[]))
}

/// Parses `containerPort` like Go's `strconv.ParseUint(s, 10, 16)`; empty is 0.
///
/// The error text is Go's, so a client sees what the real server says.
pub(crate) fn parse_container_port(raw: &[u8]) -> Result<u16, String> {
    let mut n: u32 = 0;
    for &c in raw {
        if !c.is_ascii_digit() {
            return Err(go_parse_error(raw, "invalid syntax"));
        }
        n = n * 10 + u32::from(c - b'0');
        if n > u32::from(u16::MAX) {
            return Err(go_parse_error(raw, "value out of range"));
        }
    }
    Ok(n as u16)
}

fn go_parse_error(raw: &[u8], reason: &str) -> String {
    format!(
        "strconv.ParseUint: parsing {}: {reason}",
        go_quote(&String::from_utf8_lossy(raw))
    )
}

/// A close approximation of Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(query: &str, key: &str) -> Option<String> {
        first_value(query.as_bytes(), key).map(|v| String::from_utf8(v.into_owned()).unwrap())
    }

    #[test]
    fn values_are_form_decoded() {
        assert_eq!(
            value("path=%2Fapi%2Fv1", "path").as_deref(),
            Some("/api/v1")
        );
        assert_eq!(value("path=a+b", "path").as_deref(), Some("a b"));
        assert_eq!(value("path=a%20b%2Bc", "path").as_deref(), Some("a b+c"));
        assert_eq!(value("pa%74h=x", "path").as_deref(), Some("x"));
    }

    #[test]
    fn the_first_value_wins() {
        assert_eq!(value("path=a&path=b", "path").as_deref(), Some("a"));
        assert_eq!(value("x=1&path=&path=b", "path").as_deref(), Some(""));
    }

    #[test]
    fn a_key_without_equals_has_an_empty_value() {
        assert_eq!(value("path", "path").as_deref(), Some(""));
        assert_eq!(value("", "path"), None);
        assert_eq!(value("&&", "path"), None);
    }

    #[test]
    fn undecodable_pairs_are_skipped_like_go() {
        assert_eq!(value("path=%zz&path=ok", "path").as_deref(), Some("ok"));
        assert_eq!(value("path=%4&path=ok", "path").as_deref(), Some("ok"));
        assert_eq!(value("path=a;b&path=ok", "path").as_deref(), Some("ok"));
        assert_eq!(value("path=a;b", "path"), None);
    }

    #[test]
    fn the_body_comes_before_the_query() {
        assert_eq!(&*form_value(b"path=body", b"path=query", "path"), b"body");
        assert_eq!(&*form_value(b"other=1", b"path=query", "path"), b"query");
        assert_eq!(&*form_value(b"", b"", "path"), b"");
    }

    #[test]
    fn only_urlencoded_bodies_of_post_put_patch_are_forms() {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            "Application/X-WWW-Form-Urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        assert!(has_form_body(&Method::POST, &headers));
        assert!(has_form_body(&Method::PUT, &headers));
        assert!(has_form_body(&Method::PATCH, &headers));
        assert!(!has_form_body(&Method::GET, &headers));
        assert!(!has_form_body(&Method::DELETE, &headers));
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(!has_form_body(&Method::POST, &headers));
        assert!(!has_form_body(&Method::POST, &HeaderMap::new()));
    }

    #[test]
    fn container_ports_parse_like_go_parse_uint_16() {
        for (raw, port) in [
            ("", 0),
            ("0", 0),
            ("80", 80),
            ("0080", 80),
            ("65535", 65535),
        ] {
            assert_eq!(parse_container_port(raw.as_bytes()), Ok(port), "{raw:?}");
        }
        for (raw, reason) in [
            ("+80", "invalid syntax"),
            (" 80", "invalid syntax"),
            ("80 ", "invalid syntax"),
            ("-1", "invalid syntax"),
            ("abc", "invalid syntax"),
            ("8_0", "invalid syntax"),
            ("0x50", "invalid syntax"),
            ("65536", "value out of range"),
            ("99999999999999999999", "value out of range"),
            ("70000x", "value out of range"),
        ] {
            let err = parse_container_port(raw.as_bytes()).unwrap_err();
            assert_eq!(
                err,
                format!("strconv.ParseUint: parsing {}: {reason}", go_quote(raw)),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn error_texts_quote_the_value() {
        assert_eq!(
            parse_container_port(b"a\"b\n").unwrap_err(),
            r#"strconv.ParseUint: parsing "a\"b\n": invalid syntax"#
        );
    }
}
