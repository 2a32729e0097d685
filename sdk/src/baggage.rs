//! Tracing baggage as routing headers.
//!
//! Teams often carry a routing key such as `x-dev=alice` in tracing baggage,
//! which tracers propagate through every hop, rather than in a header of its
//! own. Telepresence matches plain headers only, so each member the user
//! picks becomes an HTTP header of its own name: an intercept's
//! `--http-header x-dev=alice` then sees it.
//!
//! Three carriers are read:
//!
//! - W3C `baggage` (<https://www.w3.org/TR/baggage/>): a list of
//!   `key=value` members separated by `,`, with optional white space and
//!   properties after `;`; values are percent-encoded;
//! - Jaeger's `uberctx-<key>` and OpenTracing's `ot-baggage-<key>`: one
//!   member per header, named by the suffix. Their tracers encode values as
//!   URL query components (Go's `url.QueryEscape`, Java's `URLEncoder`), so
//!   `+` is a space there, and not in W3C baggage.
//!
//! A member that cannot be read is skipped and counted, never an error: one
//! odd message must not stop a consumer.

use std::borrow::Cow;

/// The W3C carrier's header name.
const W3C: &str = "baggage";
/// Prefixes of the one-member-per-header carriers: Jaeger's, OpenTracing's.
const PREFIXES: [&str; 2] = ["uberctx-", "ot-baggage-"];

/// Which members of a message's tracing baggage become HTTP headers of the
/// query, named after the member.
///
/// Off by default ([`Baggage::none`]). Members come from W3C `baggage`
/// headers (several combine, in order), and from Jaeger `uberctx-<key>` and
/// OpenTracing `ot-baggage-<key>` headers (the member is `<key>`). They are
/// added after the message's own headers, so a real header of the same name
/// wins: Telepresence reads a header's first occurrence. The same holds
/// between members: the first of a name wins.
///
/// Set it with [`ClientBuilder::baggage`](crate::ClientBuilder::baggage) or
/// [`HeaderForwarding::baggage`](crate::HeaderForwarding::baggage), and set
/// the same on both sides: see [`ClientBuilder::baggage`](crate::ClientBuilder::baggage).
///
/// ```
/// use telepresence_kafka::{Baggage, HeaderForwarding, HeaderList};
///
/// let rules = HeaderForwarding::default().baggage(Baggage::members(["x-dev"]));
/// let headers: &[(&str, Option<&[u8]>)] = &[("baggage", Some(b"x-dev=alice;ttl=60, tenant=acme"))];
/// let forwarded = rules.forward_message(&HeaderList::new(headers));
/// assert_eq!(forwarded.headers["x-dev"], "alice");
/// assert!(!forwarded.headers.contains_key("tenant"), "not a chosen member");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baggage {
    selection: Selection,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Selection {
    #[default]
    Off,
    All,
    /// Lower-case names.
    Members(Vec<String>),
}

impl Baggage {
    /// No baggage member becomes a header (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Every member becomes a header; the forwarding rules (allow and deny
    /// lists, limits) still choose which are sent.
    pub fn all() -> Self {
        Self {
            selection: Selection::All,
        }
    }

    /// Only the members of these names (case-insensitive: they become HTTP
    /// header names) become headers. Each must be a valid HTTP header name,
    /// or building the client fails.
    ///
    /// ```
    /// let baggage = telepresence_kafka::Baggage::members(["x-dev", "X-Tenant"]);
    /// assert_eq!(baggage.names(), Some(&["x-dev".to_owned(), "x-tenant".to_owned()][..]));
    /// ```
    pub fn members<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            selection: Selection::Members(
                names
                    .into_iter()
                    .map(|n| n.as_ref().to_ascii_lowercase())
                    .collect(),
            ),
        }
    }

    /// Whether no member is read.
    pub fn is_none(&self) -> bool {
        self.selection == Selection::Off
    }

    /// The chosen members' names, when only some are chosen.
    pub fn names(&self) -> Option<&[String]> {
        match &self.selection {
            Selection::Members(names) => Some(names),
            _ => None,
        }
    }

    /// Reads the members a Kafka header carries, if it is a baggage header,
    /// and hands each chosen one to `member`; returns how many members could
    /// not be read (chosen or not: a malformed member has no trusted name).
    pub(crate) fn read<'h>(
        &self,
        key: &'h str,
        value: &'h [u8],
        mut member: impl FnMut(&'h str, Cow<'h, [u8]>),
    ) -> usize {
        if self.is_none() {
            return 0;
        }
        let chosen = |name: &str| match &self.selection {
            Selection::Off => false,
            Selection::All => true,
            Selection::Members(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        };
        read_header(key, value, |name, value| {
            if chosen(name) {
                member(name, value);
            }
        })
    }
}

/// Whether a Kafka header carries baggage members: W3C `baggage`, or a
/// `uberctx-<key>` / `ot-baggage-<key>` header with a key.
pub(crate) fn is_carrier(key: &str) -> bool {
    key.eq_ignore_ascii_case(W3C)
        || PREFIXES
            .iter()
            .any(|prefix| strip_prefix(key, prefix).is_some_and(|name| !name.is_empty()))
}

/// Reads every member a Kafka header carries (none unless it is a baggage
/// header); returns how many could not be read.
pub(crate) fn read_header<'h>(
    key: &'h str,
    value: &'h [u8],
    mut member: impl FnMut(&'h str, Cow<'h, [u8]>),
) -> usize {
    if key.eq_ignore_ascii_case(W3C) {
        return read_w3c(value, member);
    }
    let Some(name) = PREFIXES.iter().find_map(|prefix| strip_prefix(key, prefix)) else {
        return 0;
    };
    if !is_token(name.as_bytes()) {
        return 1;
    }
    match decode(value, true) {
        Some(value) => {
            member(name, value);
            0
        }
        None => 1,
    }
}

/// The rest of `key` after `prefix`, compared case-insensitively.
fn strip_prefix<'k>(key: &'k str, prefix: &str) -> Option<&'k str> {
    let head = key.as_bytes().get(..prefix.len())?;
    // An ASCII prefix ends on a character boundary, so the slice is safe.
    head.eq_ignore_ascii_case(prefix.as_bytes())
        .then(|| &key[prefix.len()..])
}

/// Reads a W3C `baggage` value; returns how many members were malformed.
fn read_w3c<'h>(value: &'h [u8], mut member: impl FnMut(&'h str, Cow<'h, [u8]>)) -> usize {
    let mut malformed = 0;
    for raw in value.split(|&b| b == b',') {
        let raw = trim_ows(raw);
        // RFC 9110 §5.6.1: a recipient accepts empty list elements.
        if raw.is_empty() {
            continue;
        }
        // Properties (`;ttl=60`) say how to propagate a member, not its value.
        let raw = match raw.iter().position(|&b| b == b';') {
            Some(end) => trim_ows(&raw[..end]),
            None => raw,
        };
        let parsed = raw.iter().position(|&b| b == b'=').and_then(|eq| {
            let (key, value) = (trim_ows(&raw[..eq]), trim_ows(&raw[eq + 1..]));
            if !is_token(key) || !value.iter().all(|&b| is_baggage_octet(b)) {
                return None;
            }
            let key = std::str::from_utf8(key).expect("a token is ASCII");
            Some((key, decode(value, false)?))
        });
        match parsed {
            Some((key, value)) => member(key, value),
            None => malformed += 1,
        }
    }
    malformed
}

/// Optional white space: spaces and tabs.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// RFC 9110 token characters: what a header name, and a baggage key, is made of.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// W3C `baggage-octet`: visible ASCII but `"`, `,`, `;` and `\`.
fn is_baggage_octet(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// Percent-decodes a value (and reads `+` as a space when `plus_is_space`);
/// `None` when a `%` is not followed by two hex digits. Bytes that are not
/// UTF-8 once decoded become U+FFFD, as the W3C specification asks: a member
/// is text. Borrows when there is nothing to change, the common case.
fn decode(value: &[u8], plus_is_space: bool) -> Option<Cow<'_, [u8]>> {
    if !value
        .iter()
        .any(|&b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Some(match String::from_utf8_lossy(value) {
            Cow::Borrowed(_) => Cow::Borrowed(value),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        });
    }
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'%' => {
                let hex = |b: Option<&u8>| char::from(*b?).to_digit(16);
                let (hi, lo) = (hex(rest.first())?, hex(rest.get(1))?);
                out.push((hi * 16 + lo) as u8);
                rest = &rest[2..];
            }
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
    }
    Some(Cow::Owned(match String::from_utf8(out) {
        Ok(text) => text.into_bytes(),
        Err(error) => String::from_utf8_lossy(error.as_bytes())
            .into_owned()
            .into_bytes(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every member read from one header, as text, and the malformed count.
    fn read(key: &str, value: &str) -> (Vec<(String, String)>, usize) {
        let mut members = Vec::new();
        let malformed = read_header(key, value.as_bytes(), |name, value| {
            members.push((
                name.to_owned(),
                String::from_utf8(value.into_owned()).unwrap(),
            ));
        });
        (members, malformed)
    }

    fn members(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn w3c_members_are_read_in_order() {
        assert_eq!(
            read("baggage", "x-dev=alice,tenant=acme"),
            (members(&[("x-dev", "alice"), ("tenant", "acme")]), 0)
        );
        assert_eq!(read("Baggage", "k=v").0, members(&[("k", "v")]));
        assert_eq!(read("not-baggage", "k=v"), (vec![], 0));
    }

    /// The examples of the W3C specification, section 3.3.
    #[test]
    fn the_specifications_examples() {
        assert_eq!(
            read("baggage", "key1=value1,key2=value2").0,
            members(&[("key1", "value1"), ("key2", "value2")])
        );
        assert_eq!(
            read("baggage", "key1 = value1, key2 = value2").0,
            members(&[("key1", "value1"), ("key2", "value2")])
        );
        assert_eq!(
            read(
                "baggage",
                "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue"
            ),
            (
                members(&[("key1", "value1"), ("key2", "value2"), ("key3", "value3")]),
                0
            )
        );
        assert_eq!(
            read(
                "baggage",
                "userId=alice,serverNode=DF%2028,isProduction=false"
            )
            .0,
            members(&[
                ("userId", "alice"),
                ("serverNode", "DF 28"),
                ("isProduction", "false")
            ])
        );
        assert_eq!(
            read("baggage", "key1=value1,key2=%F0%9F%98%80").0,
            members(&[("key1", "value1"), ("key2", "😀")])
        );
    }

    #[test]
    fn white_space_around_members_keys_and_values_is_optional() {
        assert_eq!(
            read("baggage", " \ta = 1 ,\tb\t=\t2\t, c=3 ;p ").0,
            members(&[("a", "1"), ("b", "2"), ("c", "3")])
        );
    }

    #[test]
    fn values_are_percent_decoded_and_plus_is_a_plus() {
        assert_eq!(
            read("baggage", "k=a%2Cb%3Bc%3d%25+d").0,
            members(&[("k", "a,b;c=%+d")])
        );
        assert_eq!(read("baggage", "k=").0, members(&[("k", "")]));
        assert_eq!(read("baggage", "k=a=b").0, members(&[("k", "a=b")]));
        // Decoded bytes that are not UTF-8 become U+FFFD.
        assert_eq!(read("baggage", "k=%FFx").0, members(&[("k", "\u{FFFD}x")]));
    }

    #[test]
    fn malformed_members_are_skipped_and_counted() {
        let (read, malformed) = read(
            "baggage",
            "ok=1,novalue,=v,bad key=2,k=with space,k=\"q\",k=back\\slash,k=%zz,k=%4,k=%,é=3,last=2",
        );
        assert_eq!(read, members(&[("ok", "1"), ("last", "2")]));
        assert_eq!(malformed, 10);
    }

    #[test]
    fn empty_list_elements_are_not_members_and_not_errors() {
        assert_eq!(
            read("baggage", ",a=1,, ,b=2,"),
            (members(&[("a", "1"), ("b", "2")]), 0)
        );
        assert_eq!(read("baggage", ""), (vec![], 0));
        // A property without a member is not a member.
        assert_eq!(read("baggage", ";p=1"), (vec![], 1));
    }

    #[test]
    fn duplicate_keys_are_all_read_in_order() {
        // The first wins downstream, as for headers: the order is kept here.
        assert_eq!(
            read("baggage", "x-dev=alice,x-dev=bob").0,
            members(&[("x-dev", "alice"), ("x-dev", "bob")])
        );
    }

    #[test]
    fn jaeger_and_opentracing_headers_carry_one_member_each() {
        assert_eq!(
            read("uberctx-x-dev", "alice"),
            (members(&[("x-dev", "alice")]), 0)
        );
        assert_eq!(
            read("ot-baggage-x-dev", "alice").0,
            members(&[("x-dev", "alice")])
        );
        assert_eq!(
            read("UberCtx-Tenant", "acme").0,
            members(&[("Tenant", "acme")])
        );
        // Query encoding: `+` is a space.
        assert_eq!(
            read("uberctx-note", "a+b%2Bc%20d").0,
            members(&[("note", "a b+c d")])
        );
        assert_eq!(read("uberctx-k", "").0, members(&[("k", "")]));
        assert_eq!(
            read_header("uberctx-k", b"a\xffb", |_, v| assert_eq!(
                &*v,
                "a\u{FFFD}b".as_bytes()
            )),
            0
        );
        for (key, value) in [
            ("uberctx-", "v"),
            ("ot-baggage-", "v"),
            ("uberctx-a b", "v"),
            ("uberctx-k", "%g0"),
        ] {
            assert_eq!(read(key, value), (vec![], 1), "{key}: {value}");
        }
        for key in [
            "uberctx",
            "x-uberctx-k",
            "ot-baggage",
            "baggage-k",
            "überctx-k",
        ] {
            assert_eq!(read(key, "v"), (vec![], 0), "{key}");
        }
    }

    #[test]
    fn a_selection_reads_only_its_members_but_counts_every_malformed_one() {
        let chosen = Baggage::members(["X-Dev"]);
        let mut seen = Vec::new();
        let malformed = chosen.read("baggage", b"tenant=acme,x-dev=alice,broken", |n, v| {
            seen.push((n, v))
        });
        assert_eq!(seen, [("x-dev", Cow::Borrowed(&b"alice"[..]))]);
        assert_eq!(malformed, 1);
        let malformed = Baggage::none().read("baggage", b"broken", |_, _| panic!("off"));
        assert_eq!(malformed, 0, "nothing is read when off");
        assert!(Baggage::none().is_none() && !Baggage::all().is_none());
        assert_eq!(Baggage::all().names(), None);
    }

    #[test]
    fn nothing_is_copied_unless_something_is_decoded() {
        let mut owned = 0;
        read_header("baggage", b"a=1,b=2%203", |_, v| {
            owned += usize::from(matches!(v, Cow::Owned(_)))
        });
        assert_eq!(owned, 1);
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Text that looks like baggage, often enough to reach every branch.
    fn baggage_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"x-dev".to_vec()),
            Just(b"=".to_vec()),
            Just(b",".to_vec()),
            Just(b";".to_vec()),
            Just(b" ".to_vec()),
            Just(b"%".to_vec()),
            Just(b"%2".to_vec()),
            Just(b"%e2%82%ac".to_vec()),
            Just(b"+".to_vec()),
            "[ -~]{0,4}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..4),
        ];
        prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("baggage".to_owned()),
            Just("uberctx-x-dev".to_owned()),
            Just("ot-baggage-".to_owned()),
            "(uberctx-|ot-baggage-|UBERCTX-)[ -~]{0,8}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// Never a panic; every member read has a token for a name and, in
        /// W3C baggage, no more members than list elements.
        #[test]
        fn parsing_never_panics(key in key(), value in prop_oneof![baggage_like(), prop::collection::vec(any::<u8>(), 0..64)]) {
            let mut count = 0;
            let malformed = read_header(&key, &value, |name, decoded| {
                assert!(is_token(name.as_bytes()), "{name:?}");
                assert!(std::str::from_utf8(&decoded).is_ok(), "a member is text");
                count += 1;
            });
            if key.eq_ignore_ascii_case("baggage") {
                prop_assert!(count + malformed <= value.split(|&b| b == b',').count());
            } else {
                prop_assert!(count + malformed <= 1);
            }
            for selection in [Baggage::all(), Baggage::members(["x-dev"])] {
                let mut chosen = 0;
                let again = selection.read(&key, &value, |_, _| chosen += 1);
                prop_assert_eq!(again, malformed);
                prop_assert!(chosen <= count);
            }
        }
    }
}
