//! Kafka headers to HTTP headers: what is forwarded, and what is left out.
//!
//! Kafka header keys are arbitrary strings and values arbitrary bytes; HTTP
//! is stricter. A header that cannot or must not travel as an HTTP header is
//! left out and counted, never an error: one odd header must not stop a
//! consumer.

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::CALLER_INTERCEPT_ID_HEADER;

/// How many bytes of headers (names and values) are forwarded by default.
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// How many headers are forwarded by default: well inside what the mock
/// server accepts (8192) and what a Telepresence API reads.
pub(crate) const DEFAULT_MAX_FORWARDED_HEADERS: usize = 1024;

/// Names that describe an HTTP connection or message framing rather than the
/// message: forwarding them would corrupt the request.
const RESERVED: &[&str] = &[
    "connection",
    "content-length",
    "host",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "expect",
];

/// Why a header was left out (logged at debug level).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DropReason {
    /// The key is not a valid HTTP header name.
    InvalidName,
    /// The value has control characters (other than tab).
    InvalidValue,
    /// A hop-by-hop or framing header (`connection`, `host`, `proxy-*`, ...).
    Reserved,
    /// `x-telepresence-caller-intercept-id`: the caller ID comes from the
    /// environment, never from a message.
    CallerId,
    /// Not on the allow-list, or on the deny-list.
    Filtered,
    /// Past the limit on forwarded bytes, or on forwarded headers.
    OverLimit,
}

/// The rules for forwarding Kafka headers.
///
/// By default every header that HTTP can carry is forwarded, in order (the
/// server reads the first of repeated names), up to 32 KiB of names and
/// values and 1024 headers. A null value is an empty value.
///
/// ```
/// use telepresence_kafka::HeaderForwarding;
///
/// let rules = HeaderForwarding::default().deny(["authorization"]);
/// let forwarded = rules.forward([
///     ("x-dev", Some(&b"alice"[..])),
///     ("authorization", Some(&b"secret"[..])),
///     ("payload-hash", Some(&b"\x00\x01"[..])),
///     ("empty", None),
/// ]);
/// assert_eq!(forwarded.headers["x-dev"], "alice");
/// assert_eq!(forwarded.headers["empty"], "");
/// assert_eq!(forwarded.dropped, 2);
/// ```
#[derive(Clone, Debug)]
pub struct HeaderForwarding {
    allow: Option<Vec<String>>,
    deny: Vec<String>,
    max_bytes: usize,
    max_count: usize,
}

impl Default for HeaderForwarding {
    fn default() -> Self {
        Self {
            allow: None,
            deny: Vec::new(),
            max_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_count: DEFAULT_MAX_FORWARDED_HEADERS,
        }
    }
}

/// The HTTP headers for one message, and how many Kafka headers were left
/// out: what [`HeaderForwarding::forward`] makes of them.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Forwarded {
    /// The headers to send.
    pub headers: HeaderMap,
    /// How many Kafka headers were left out.
    pub dropped: usize,
}

impl HeaderForwarding {
    /// Forwards only these names (case-insensitive). Replaces an earlier list.
    pub fn allow<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allow = Some(
            names
                .into_iter()
                .map(|n| n.as_ref().to_ascii_lowercase())
                .collect(),
        );
        self
    }

    /// Never forwards these names (case-insensitive). Adds to earlier ones.
    pub fn deny<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.deny
            .extend(names.into_iter().map(|n| n.as_ref().to_ascii_lowercase()));
        self
    }

    /// Forwards at most this many bytes of names and values; later headers
    /// are left out.
    pub fn max_bytes(mut self, max: usize) -> Self {
        self.max_bytes = max;
        self
    }

    /// Forwards at most this many headers; later ones are left out.
    pub fn max_count(mut self, max: usize) -> Self {
        self.max_count = max;
        self
    }

    /// The names on the allow-list, if there is one.
    pub fn allowed(&self) -> Option<&[String]> {
        self.allow.as_deref()
    }

    /// Checks every name given to [`allow`](Self::allow) and [`deny`](Self::deny).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let lists = self.allow.iter().flatten().map(|n| ("allow", n));
        for (list, name) in lists.chain(self.deny.iter().map(|n| ("deny", n))) {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!(
                    "header {list}-list: `{name}` is not a valid HTTP header name"
                ));
            }
        }
        Ok(())
    }

    /// Maps Kafka headers to HTTP headers by these rules.
    pub fn forward<'h, I>(&self, headers: I) -> Forwarded
    where
        I: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        let mut forwarded = Forwarded::default();
        self.forward_into(headers, &mut forwarded);
        forwarded
    }

    pub(crate) fn forward_into<'h, I>(&self, headers: I, out: &mut Forwarded)
    where
        I: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        let mut budget = self.max_bytes;
        let mut count = 0;
        for (key, value) in headers {
            let value = value.unwrap_or_default();
            let checked = if count < self.max_count {
                self.check(key, value, &mut budget)
            } else {
                Err(DropReason::OverLimit)
            };
            match checked {
                Ok((name, value)) => {
                    out.headers.append(name, value);
                    count += 1;
                }
                Err(reason) => {
                    out.dropped += 1;
                    tracing::debug!(header = key, ?reason, "Kafka header not forwarded");
                }
            }
        }
    }

    fn check(
        &self,
        key: &str,
        value: &[u8],
        budget: &mut usize,
    ) -> Result<(HeaderName, HeaderValue), DropReason> {
        let name = HeaderName::from_bytes(key.as_bytes()).map_err(|_| DropReason::InvalidName)?;
        let lower = name.as_str();
        if RESERVED.contains(&lower) || lower.starts_with("proxy-") {
            return Err(DropReason::Reserved);
        }
        if lower == CALLER_INTERCEPT_ID_HEADER {
            return Err(DropReason::CallerId);
        }
        if self.deny.iter().any(|d| d == lower)
            || self
                .allow
                .as_ref()
                .is_some_and(|allow| !allow.iter().any(|a| a == lower))
        {
            return Err(DropReason::Filtered);
        }
        let size = key.len() + value.len();
        if size > *budget {
            return Err(DropReason::OverLimit);
        }
        let value = HeaderValue::from_bytes(value).map_err(|_| DropReason::InvalidValue)?;
        *budget -= size;
        Ok((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forward(
        rules: &HeaderForwarding,
        headers: &[(&str, Option<&[u8]>)],
    ) -> (Vec<(String, Vec<u8>)>, usize) {
        let out = rules.forward(headers.iter().copied());
        let pairs = out
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        (pairs, out.dropped)
    }

    fn pairs(list: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn headers_are_forwarded_in_order_with_names_in_lower_case() {
        let (out, dropped) = forward(
            &HeaderForwarding::default(),
            &[
                ("X-Dev", Some(b"alice")),
                ("traceparent", Some(b"00-abc-01")),
                ("x-dev", Some(b"bob")),
            ],
        );
        assert_eq!(
            out,
            pairs(&[
                ("x-dev", b"alice"),
                ("x-dev", b"bob"),
                ("traceparent", b"00-abc-01")
            ])
        );
        assert_eq!(dropped, 0);
    }

    #[test]
    fn repeated_keys_keep_their_order() {
        let rules = HeaderForwarding::default();
        let out = rules.forward([("x", Some(&b"1"[..])), ("y", Some(b"2")), ("x", Some(b"3"))]);
        let xs: Vec<&[u8]> = out
            .headers
            .get_all("x")
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        assert_eq!(xs, [b"1", b"3"]);
    }

    #[test]
    fn a_null_value_is_an_empty_value() {
        let (out, dropped) = forward(&HeaderForwarding::default(), &[("x", None)]);
        assert_eq!((out, dropped), (pairs(&[("x", b"")]), 0));
    }

    #[test]
    fn keys_that_are_not_http_names_are_dropped() {
        for key in ["", "a b", "a:b", "x\n", "é", "a/b", "(x)"] {
            let (out, dropped) = forward(&HeaderForwarding::default(), &[(key, Some(b"v"))]);
            assert_eq!((out.len(), dropped), (0, 1), "{key:?}");
        }
    }

    #[test]
    fn values_with_control_characters_are_dropped_but_tabs_and_utf8_pass() {
        for value in [&b"a\nb"[..], b"a\rb", b"\x00", b"\x7f", b"a\x1bb"] {
            let (out, dropped) = forward(&HeaderForwarding::default(), &[("x", Some(value))]);
            assert_eq!((out.len(), dropped), (0, 1), "{value:?}");
        }
        for value in [&b"a\tb"[..], "été".as_bytes(), b"\xff\xfe"] {
            let (out, dropped) = forward(&HeaderForwarding::default(), &[("x", Some(value))]);
            assert_eq!((out.len(), dropped), (1, 0), "{value:?}");
        }
    }

    #[test]
    fn hop_by_hop_and_framing_headers_are_dropped() {
        for key in [
            "Connection",
            "content-length",
            "Host",
            "transfer-encoding",
            "TE",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-authorization",
            "Proxy-Connection",
            "expect",
        ] {
            let (out, dropped) = forward(&HeaderForwarding::default(), &[(key, Some(b"v"))]);
            assert_eq!((out.len(), dropped), (0, 1), "{key}");
        }
        let (out, _) = forward(
            &HeaderForwarding::default(),
            &[("content-type", Some(b"json")), ("proxyish", Some(b"v"))],
        );
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_message_never_sets_the_caller_id() {
        let (out, dropped) = forward(
            &HeaderForwarding::default(),
            &[("X-Telepresence-Caller-Intercept-Id", Some(b"someone-else"))],
        );
        assert_eq!((out.len(), dropped), (0, 1));
    }

    #[test]
    fn allow_and_deny_lists_filter_names_case_insensitively() {
        let headers: &[(&str, Option<&[u8]>)] = &[
            ("X-Dev", Some(b"1")),
            ("x-team", Some(b"2")),
            ("other", Some(b"3")),
        ];
        let (out, dropped) = forward(
            &HeaderForwarding::default().allow(["x-dev", "X-TEAM"]),
            headers,
        );
        assert_eq!(
            (out, dropped),
            (pairs(&[("x-dev", b"1"), ("x-team", b"2")]), 1)
        );
        let (out, dropped) = forward(&HeaderForwarding::default().deny(["X-Team"]), headers);
        assert_eq!(
            (out, dropped),
            (pairs(&[("x-dev", b"1"), ("other", b"3")]), 1)
        );
        let both = HeaderForwarding::default()
            .allow(["x-dev", "x-team"])
            .deny(["x-team"]);
        let (out, dropped) = forward(&both, headers);
        assert_eq!((out, dropped), (pairs(&[("x-dev", b"1")]), 2));
    }

    #[test]
    fn the_byte_limit_drops_what_does_not_fit() {
        let rules = HeaderForwarding::default().max_bytes(10);
        let (out, dropped) = forward(
            &rules,
            &[
                ("a", Some(b"1234")),
                ("big", Some(b"1234567890")),
                ("b", Some(b"1234")),
            ],
        );
        assert_eq!(
            (out, dropped),
            (pairs(&[("a", b"1234"), ("b", b"1234")]), 1)
        );
    }

    #[test]
    fn the_count_limit_forwards_the_first_ones() {
        let rules = HeaderForwarding::default().max_count(2);
        let (out, dropped) = forward(
            &rules,
            &[
                ("a", Some(b"1")),
                ("bad name", Some(b"x")),
                ("b", Some(b"2")),
                ("c", Some(b"3")),
            ],
        );
        assert_eq!((out, dropped), (pairs(&[("a", b"1"), ("b", b"2")]), 2));
        let many: Vec<(String, Vec<u8>)> = (0..5000)
            .map(|n| (format!("x-h{n}"), b"v".to_vec()))
            .collect();
        let forwarded = HeaderForwarding::default()
            .forward(many.iter().map(|(k, v)| (k.as_str(), Some(v.as_slice()))));
        assert_eq!(forwarded.headers.len(), DEFAULT_MAX_FORWARDED_HEADERS);
        assert_eq!(forwarded.dropped, 5000 - DEFAULT_MAX_FORWARDED_HEADERS);
    }

    #[test]
    fn invalid_list_names_are_reported() {
        let err = HeaderForwarding::default()
            .allow(["ok", "not ok"])
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            "header allow-list: `not ok` is not a valid HTTP header name"
        );
        let err = HeaderForwarding::default()
            .deny(["a:b"])
            .validate()
            .unwrap_err();
        assert!(err.starts_with("header deny-list: `a:b`"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// RFC 9110 token characters, written out here as the reference.
    fn is_token(name: &str) -> bool {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    }

    fn is_field_value(value: &[u8]) -> bool {
        value
            .iter()
            .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    }

    const RESERVED_NAMES: &[&str] = &[
        "connection",
        "content-length",
        "host",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "expect",
    ];

    /// What the rules say should come out, computed plainly.
    fn model(
        headers: &[(String, Option<Vec<u8>>)],
        allow: &Option<Vec<String>>,
        deny: &[String],
        max: usize,
        max_count: usize,
    ) -> (Vec<(String, Vec<u8>)>, usize) {
        let mut out = Vec::new();
        let mut dropped = 0;
        let mut budget = max;
        for (name, value) in headers {
            let value = value.clone().unwrap_or_default();
            let lower = name.to_ascii_lowercase();
            let keep = out.len() < max_count
                && is_token(name)
                && !RESERVED_NAMES.contains(&lower.as_str())
                && !lower.starts_with("proxy-")
                && lower != CALLER_INTERCEPT_ID_HEADER
                && !deny.contains(&lower)
                && allow.as_ref().is_none_or(|a| a.contains(&lower))
                && name.len() + value.len() <= budget
                && is_field_value(&value);
            if keep {
                budget -= name.len() + value.len();
                out.push((lower, value));
            } else {
                dropped += 1;
            }
        }
        (out, dropped)
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "x-dev",
                "X-Dev",
                "traceparent",
                "host",
                "Connection",
                "proxy-auth",
                "x-telepresence-caller-intercept-id",
                "content-type",
                "a b",
                "",
                "é",
            ])
            .prop_map(str::to_owned),
            "[ -~]{0,12}",
            any::<String>(),
        ]
    }

    fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop_oneof![
            Just(None),
            "[ -~]{0,20}".prop_map(|s| Some(s.into_bytes())),
            prop::collection::vec(any::<u8>(), 0..40).prop_map(Some),
            prop::collection::vec(any::<u8>(), 0..3000).prop_map(Some),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn forwarding_follows_the_rules_and_yields_valid_http(
            headers in prop::collection::vec((name(), value()), 0..24),
            allow in prop::option::of(prop::collection::vec(
                prop::sample::select(vec!["x-dev", "traceparent", "content-type"]).prop_map(str::to_owned), 0..3)),
            deny in prop::collection::vec(
                prop::sample::select(vec!["x-dev", "x-secret"]).prop_map(str::to_owned), 0..2),
            max in prop_oneof![Just(DEFAULT_MAX_HEADER_BYTES), 0usize..200],
            max_count in prop_oneof![Just(DEFAULT_MAX_FORWARDED_HEADERS), 0usize..6],
        ) {
            let mut rules = HeaderForwarding::default().deny(&deny).max_bytes(max).max_count(max_count);
            if let Some(allow) = &allow {
                rules = rules.allow(allow);
            }
            let pairs: Vec<(&str, Option<&[u8]>)> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
            let forwarded = rules.forward(pairs.iter().copied());

            let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
            // HeaderMap groups repeated names; the model keeps arrival order.
            let (expected, expected_dropped) = model(&headers, &allow, &deny, max, max_count);
            let mut expected_grouped: Vec<(String, Vec<u8>)> = Vec::new();
            for (name, _) in &expected {
                if expected_grouped.iter().any(|(n, _)| n == name) {
                    continue;
                }
                expected_grouped.extend(expected.iter().filter(|(n, _)| n == name).cloned());
            }
            let mut total = 0;
            for (name, value) in &forwarded.headers {
                prop_assert!(HeaderName::from_bytes(name.as_str().as_bytes()).is_ok());
                prop_assert!(is_token(name.as_str()));
                prop_assert!(is_field_value(value.as_bytes()));
                total += name.as_str().len() + value.len();
                seen.push((name.to_string(), value.as_bytes().to_vec()));
            }
            prop_assert!(total <= max);
            prop_assert!(forwarded.headers.len() <= max_count);
            prop_assert_eq!(seen, expected_grouped);
            prop_assert_eq!(forwarded.dropped, expected_dropped);
        }
    }
}
