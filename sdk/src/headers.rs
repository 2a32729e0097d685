//! Kafka headers to HTTP headers: what is forwarded, and what is left out.
//!
//! Kafka header keys are arbitrary strings and values arbitrary bytes; HTTP
//! is stricter. A header that cannot or must not travel as an HTTP header is
//! left out and counted, never an error: one odd header must not stop a
//! consumer.
//!
//! Headers may also be derived from the message (its record key, its
//! tracing baggage's members): they come after the message's own headers and
//! meet the same rules.

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;

use crate::CALLER_INTERCEPT_ID_HEADER;
use crate::baggage::{self, Baggage};
use crate::message::KafkaMessage;

/// How many bytes of headers (names and values) are forwarded by default.
pub(crate) const DEFAULT_MAX_HEADER_BYTES: usize = 32 * 1024;
/// How many headers are forwarded by default: well inside what the mock
/// server accepts (8192) and what a Telepresence API reads.
pub(crate) const DEFAULT_MAX_FORWARDED_HEADERS: usize = 1024;
/// The longest header name the `http` crate accepts.
const MAX_NAME_LEN: usize = (1 << 16) - 1;

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
pub(crate) enum DropReason {
    /// The key is not a valid HTTP header name.
    InvalidName,
    /// The value has control characters (other than tab).
    InvalidValue,
    /// A hop-by-hop or framing header (`connection`, `host`, `proxy-*`, ...).
    Reserved,
    /// `x-telepresence-caller-intercept-id`: the caller ID comes from the
    /// environment, never from a message.
    CallerId,
    /// Not on the allow-list.
    NotAllowed,
    /// On the deny-list.
    Denied,
    /// Past the limit on forwarded bytes, or on forwarded headers.
    OverLimit,
}

/// The rules for forwarding Kafka headers, and the headers derived from a
/// message.
///
/// By default every header that HTTP can carry is forwarded, in order (the
/// server reads the first of repeated names), up to 32 KiB of names and
/// values and 1024 headers. A null value is an empty value.
///
/// Two opt-in sources add headers after the message's own, under the same
/// rules: members of the message's tracing [`Baggage`], and its record key
/// ([`key_as_header`](Self::key_as_header)).
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
    /// Lower-case names.
    allow: Option<Vec<String>>,
    /// Lower-case names.
    deny: Vec<String>,
    max_bytes: usize,
    max_count: usize,
    baggage: Baggage,
    /// Lower case.
    key_header: Option<String>,
}

impl Default for HeaderForwarding {
    fn default() -> Self {
        Self {
            allow: None,
            deny: Vec::new(),
            max_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_count: DEFAULT_MAX_FORWARDED_HEADERS,
            baggage: Baggage::none(),
            key_header: None,
        }
    }
}

/// The HTTP headers for one message, and what was left out: what
/// [`HeaderForwarding::forward`] and
/// [`forward_message`](HeaderForwarding::forward_message) make of it.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Forwarded {
    /// The headers to send.
    pub headers: HeaderMap,
    /// How many headers were left out by the rules, derived ones included.
    pub dropped: usize,
    /// How many baggage members could not be read, and were skipped.
    pub malformed_baggage: usize,
    /// 1 when the record key was to be sent but is not UTF-8, else 0.
    pub non_utf8_keys: usize,
}

/// A derived header: a name and a value, decoded or borrowed.
pub(crate) type DerivedHeader<'m> = (&'m str, Cow<'m, [u8]>);

/// Headers derived from one message: its record key, then its baggage
/// members, in the order of the headers that carry them. Four fit on the
/// stack.
#[derive(Debug, Default)]
pub(crate) struct Derived<'m> {
    pub(crate) pairs: SmallVec<[DerivedHeader<'m>; 4]>,
    pub(crate) malformed_baggage: usize,
    pub(crate) non_utf8_keys: usize,
}

/// A message's headers as they are offered to the rules: its own, then the
/// derived ones.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offered<'p> {
    pub(crate) own: &'p [(&'p str, Option<&'p [u8]>)],
    pub(crate) derived: &'p [DerivedHeader<'p>],
}

impl<'p> Offered<'p> {
    pub(crate) fn len(&self) -> usize {
        self.own.len() + self.derived.len()
    }

    /// Every header in order; a null value is empty.
    pub(crate) fn iter(self) -> impl Iterator<Item = (&'p str, &'p [u8])> {
        let own = self.own.iter().map(|&(k, v)| (k, v.unwrap_or_default()));
        own.chain(self.derived.iter().map(|(k, v)| (*k, &**v)))
    }
}

/// The value the server reads of each of some names, the first *sent*,
/// found without sending anything or allocating: the decision cache's key
/// must see exactly what the server will. Made by
/// [`HeaderForwarding::first_sent`], for rules that send those names only,
/// so that every other header is passed over with one lookup.
#[derive(Debug)]
pub(crate) struct FirstSent {
    /// Lower case.
    names: Vec<String>,
    /// Whether the rules ever send each name.
    sendable: Vec<bool>,
    /// How many are sent ever.
    sendable_count: usize,
    max_bytes: usize,
    max_count: usize,
}

impl FirstSent {
    /// The names, each once.
    #[cfg(test)]
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// How many names there are.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    /// Sets `first[i]` to the first value sent of name `i` among `headers`,
    /// as [`HeaderForwarding::forward_into`] would send them; `first` holds
    /// one `None` per name.
    pub(crate) fn find<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        first: &mut [Option<&'h [u8]>],
    ) {
        let mut missing = self.sendable_count;
        let (mut budget, mut count) = (self.max_bytes, 0);
        for (key, value) in headers {
            if missing == 0 || count >= self.max_count {
                // Nothing later can change a first value: the common
                // message stops at its routing header, as a lookup would.
                return;
            }
            let Some(i) = self.names.iter().position(|n| is_lower_case_of(n, key)) else {
                continue;
            };
            let size = key.len() + value.len();
            if !self.sendable[i] || size > budget || !is_header_value(value) {
                continue;
            }
            budget -= size;
            count += 1;
            if first[i].is_none() {
                first[i] = Some(value);
                missing -= 1;
                if missing == 0 {
                    // Not even the next header is read: through librdkafka
                    // each one is a call, its name a C string to measure
                    // and check.
                    return;
                }
            }
        }
    }
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

    /// Adds these members of the message's tracing baggage as headers, after
    /// the message's own (default: none). See [`Baggage`].
    pub fn baggage(mut self, baggage: Baggage) -> Self {
        self.baggage = baggage;
        self
    }

    /// Adds the message's record key as a header of this name
    /// (case-insensitive), after the message's own headers and before
    /// baggage members (default: not sent). A key that is not UTF-8 is not
    /// sent, and counted; a message without a key sends no such header.
    ///
    /// ```
    /// use telepresence_kafka::{HeaderForwarding, HeaderList};
    ///
    /// let rules = HeaderForwarding::default().key_as_header("x-kafka-key");
    /// let forwarded = rules.forward_message(&HeaderList::default().key(b"tenant-42:7"));
    /// assert_eq!(forwarded.headers["x-kafka-key"], "tenant-42:7");
    /// let binary = rules.forward_message(&HeaderList::default().key(b"\xff"));
    /// assert!(binary.headers.is_empty());
    /// assert_eq!(binary.non_utf8_keys, 1);
    /// ```
    pub fn key_as_header(mut self, name: impl AsRef<str>) -> Self {
        self.key_header = Some(name.as_ref().to_ascii_lowercase());
        self
    }

    /// The names on the allow-list, if there is one.
    pub fn allowed(&self) -> Option<&[String]> {
        self.allow.as_deref()
    }

    /// Which baggage members are read.
    pub(crate) fn baggage_members(&self) -> &Baggage {
        &self.baggage
    }

    /// Whether headers are derived from messages: baggage members or the key.
    pub(crate) fn derives(&self) -> bool {
        !self.baggage.is_none() || self.key_header.is_some()
    }

    /// Checks every name given to [`allow`](Self::allow), [`deny`](Self::deny),
    /// [`Baggage::members`] and [`key_as_header`](Self::key_as_header).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let lists = self
            .allow
            .iter()
            .flatten()
            .map(|n| ("header allow-list:", n));
        let named = lists
            .chain(self.deny.iter().map(|n| ("header deny-list:", n)))
            .chain(self.named_derived());
        for (what, name) in named {
            if !is_header_name(name) {
                return Err(format!("{what} `{name}` is not a valid HTTP header name"));
            }
        }
        Ok(())
    }

    /// The derived headers named by the user, with what they are.
    fn named_derived(&self) -> impl Iterator<Item = (&'static str, &String)> {
        let key = self.key_header.iter().map(|n| ("record key header", n));
        let members = self.baggage.names().unwrap_or_default();
        key.chain(members.iter().map(|n| ("baggage member", n)))
    }

    /// Checks that these rules would send every derived header the user
    /// named: naming one that is never sent is a mistake, since neither side
    /// would route by it.
    pub(crate) fn check_named_derived(&self) -> Result<(), String> {
        for (what, name) in self.named_derived() {
            let reason = match self.name_rules(name) {
                Ok(()) => continue,
                Err(DropReason::NotAllowed) => "it is not on the allow-list",
                Err(DropReason::Denied) => "it is on the deny-list",
                Err(DropReason::CallerId) => "the caller ID never comes from a message",
                Err(_) => "HTTP reserves the name",
            };
            return Err(format!("{what} `{name}` would never be sent: {reason}"));
        }
        Ok(())
    }

    /// Maps Kafka headers to HTTP headers by these rules, baggage members
    /// included (a record key needs the message: see
    /// [`forward_message`](Self::forward_message)).
    pub fn forward<'h, I>(&self, headers: I) -> Forwarded
    where
        I: IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
    {
        let mut forwarded = Forwarded::default();
        if self.baggage.is_none() {
            let headers = headers.into_iter().map(|(k, v)| (k, v.unwrap_or_default()));
            forwarded.dropped = self.forward_into(headers, &mut forwarded.headers);
            return forwarded;
        }
        let own: SmallVec<[_; 16]> = headers.into_iter().collect();
        let mut derived = Derived::default();
        self.derive(&own, || None, &mut derived);
        self.forward_derived(&own, derived, &mut forwarded);
        forwarded
    }

    /// Maps a message's headers to HTTP headers by these rules, with the
    /// headers derived from it (baggage members, the record key).
    ///
    /// ```
    /// use telepresence_kafka::{Baggage, HeaderForwarding, HeaderList};
    ///
    /// let rules = HeaderForwarding::default()
    ///     .baggage(Baggage::all())
    ///     .key_as_header("x-kafka-key");
    /// let headers: &[(&str, Option<&[u8]>)] = &[("baggage", Some(b"x-dev=alice, note=a%20b;p, broken"))];
    /// let forwarded = rules.forward_message(&HeaderList::new(headers).key(b"tenant-42"));
    /// assert_eq!(forwarded.headers["x-dev"], "alice");
    /// assert_eq!(forwarded.headers["note"], "a b");
    /// assert_eq!(forwarded.headers["x-kafka-key"], "tenant-42");
    /// assert_eq!(forwarded.malformed_baggage, 1);
    /// ```
    pub fn forward_message<M: KafkaMessage + ?Sized>(&self, msg: &M) -> Forwarded {
        let own: SmallVec<[_; 16]> = msg.headers().collect();
        let mut derived = Derived::default();
        self.derive(&own, || msg.key(), &mut derived);
        let mut forwarded = Forwarded::default();
        self.forward_derived(&own, derived, &mut forwarded);
        forwarded
    }

    fn forward_derived(
        &self,
        own: &[(&str, Option<&[u8]>)],
        derived: Derived<'_>,
        out: &mut Forwarded,
    ) {
        let offered = Offered {
            own,
            derived: &derived.pairs,
        };
        out.dropped = self.forward_into(offered.iter(), &mut out.headers);
        out.malformed_baggage = derived.malformed_baggage;
        out.non_utf8_keys = derived.non_utf8_keys;
    }

    /// Adds to `derived` the headers derived from a message with these
    /// headers and this key (read only when it is to be sent). Nothing is
    /// read, and nothing allocated, when nothing is derived; `derived` is
    /// filled in place, so that a message costs no copy of it either.
    pub(crate) fn derive<'m>(
        &'m self,
        own: &[(&'m str, Option<&'m [u8]>)],
        key: impl FnOnce() -> Option<&'m [u8]>,
        derived: &mut Derived<'m>,
    ) {
        if let Some(name) = &self.key_header {
            match key().map(std::str::from_utf8) {
                None => {}
                Some(Ok(key)) => derived.pairs.push((name, Cow::Borrowed(key.as_bytes()))),
                Some(Err(_)) => {
                    derived.non_utf8_keys = 1;
                    tracing::debug!(header = %name, "record key not sent: not UTF-8");
                }
            }
        }
        if !self.baggage.is_none() {
            for &(key, value) in own {
                derived.malformed_baggage +=
                    self.baggage
                        .read(key, value.unwrap_or_default(), |name, value| {
                            derived.pairs.push((name, value));
                        });
            }
            if derived.malformed_baggage > 0 {
                tracing::debug!(
                    members = derived.malformed_baggage,
                    "malformed baggage members skipped"
                );
            }
        }
    }

    /// Appends the headers that pass the rules to `out`; returns how many
    /// were left out.
    pub(crate) fn forward_into<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        out: &mut HeaderMap,
    ) -> usize {
        let mut budget = self.max_bytes;
        let mut count = 0;
        let mut left_out = 0;
        for (key, value) in headers {
            let size = key.len() + value.len();
            let sent = if count >= self.max_count {
                Err(DropReason::OverLimit)
            } else {
                self.name_rules(key).and_then(|()| {
                    if size > budget {
                        return Err(DropReason::OverLimit);
                    }
                    let name = HeaderName::from_bytes(key.as_bytes())
                        .map_err(|_| DropReason::InvalidName)?;
                    let value =
                        HeaderValue::from_bytes(value).map_err(|_| DropReason::InvalidValue)?;
                    out.append(name, value);
                    Ok(())
                })
            };
            match sent {
                Ok(()) => {
                    budget -= size;
                    count += 1;
                }
                Err(reason) => {
                    left_out += 1;
                    tracing::debug!(header = key, ?reason, "header not forwarded");
                }
            }
        }
        left_out
    }

    /// A finder of the values these rules send of `names`, when they send
    /// nothing else (an allow-list within `names`, as under a decision
    /// cache); `None` otherwise.
    pub(crate) fn first_sent(&self, names: Vec<String>) -> Option<FirstSent> {
        let allow = self.allow.as_ref()?;
        // Each name once: a name twice would keep a second slot empty for good.
        let mut unique: Vec<String> = Vec::with_capacity(names.len());
        for name in names {
            let name = name.to_ascii_lowercase();
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        let names = unique;
        if !allow
            .iter()
            .all(|a| names.iter().any(|n| n.eq_ignore_ascii_case(a)))
        {
            return None;
        }
        // The rules on names hold for every message: decided once, here.
        let sendable: Vec<bool> = names
            .iter()
            .map(|n| is_header_name(n) && self.name_rules(n).is_ok())
            .collect();
        Some(FirstSent {
            names,
            sendable_count: sendable.iter().filter(|&&s| s).count(),
            sendable,
            max_bytes: self.max_bytes,
            max_count: self.max_count,
        })
    }

    /// The rules on a name, whatever its value: lists, reserved names, the
    /// caller ID. Compares without lowering the name, so without allocating.
    fn name_rules(&self, key: &str) -> Result<(), DropReason> {
        let allowed = |list: &Vec<String>| list.iter().any(|a| a.eq_ignore_ascii_case(key));
        if !self.allow.as_ref().is_none_or(allowed) {
            return Err(DropReason::NotAllowed);
        }
        if self.deny.iter().any(|d| d.eq_ignore_ascii_case(key)) {
            return Err(DropReason::Denied);
        }
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(key))
            || key
                .as_bytes()
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"proxy-"))
        {
            return Err(DropReason::Reserved);
        }
        if key.eq_ignore_ascii_case(CALLER_INTERCEPT_ID_HEADER) {
            return Err(DropReason::CallerId);
        }
        Ok(())
    }
}

/// Whether `lower` is `name` in lower case: one conversion per byte where
/// `eq_ignore_ascii_case` makes two, on the decision cache's hot path.
fn is_lower_case_of(lower: &str, name: &str) -> bool {
    lower.len() == name.len()
        && lower
            .bytes()
            .zip(name.bytes())
            .all(|(l, n)| l == n.to_ascii_lowercase())
}

/// Whether `name` is one [`HeaderName::from_bytes`] accepts.
fn is_header_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN && baggage::is_token(name.as_bytes())
}

/// Whether `value` is one [`HeaderValue::from_bytes`] accepts.
fn is_header_value(value: &[u8]) -> bool {
    value
        .iter()
        .all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HeaderList;

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

    /// Every value sent under `name`, in order, as text.
    fn values(out: &Forwarded, name: &str) -> Vec<String> {
        out.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn derived_headers_come_after_the_messages_own_key_first() {
        let rules = HeaderForwarding::default()
            .baggage(Baggage::all())
            .key_as_header("X-Kafka-Key");
        let headers: &[(&str, Option<&[u8]>)] = &[
            ("uberctx-x-dev", Some(b"carol")),
            ("baggage", Some(b"x-dev=alice,x-kafka-key=forged")),
            ("x-dev", Some(b"bob")),
        ];
        let out = rules.forward_message(&HeaderList::new(headers).key(b"tenant-42"));
        assert_eq!(values(&out, "x-dev"), ["bob", "carol", "alice"]);
        assert_eq!(values(&out, "x-kafka-key"), ["tenant-42", "forged"]);
        assert_eq!(
            (out.dropped, out.malformed_baggage, out.non_utf8_keys),
            (0, 0, 0)
        );
        // `forward` has no key to send, only the baggage.
        let out = rules.forward(headers.iter().copied());
        assert_eq!(values(&out, "x-kafka-key"), ["forged"]);
    }

    #[test]
    fn the_rules_apply_to_derived_headers() {
        let headers: &[(&str, Option<&[u8]>)] =
            &[("baggage", Some(b"x-dev=alice,host=evil,bad name=1,ctl=%0A"))];
        let all = HeaderForwarding::default().baggage(Baggage::all());
        let out = all.forward(headers.iter().copied());
        assert_eq!(values(&out, "x-dev"), ["alice"]);
        // `host` is reserved, `ctl` has a control character; `bad name` is
        // no token, so not a member at all.
        assert_eq!(
            (out.headers.len(), out.dropped, out.malformed_baggage),
            (2, 2, 1)
        );
        let out = all.clone().deny(["x-dev"]).forward(headers.iter().copied());
        assert!(!out.headers.contains_key("x-dev"));
        let out = all
            .clone()
            .allow(["x-dev"])
            .forward(headers.iter().copied());
        assert_eq!(out.headers.len(), 1, "only x-dev: {:?}", out.headers);
        let out = all.clone().max_count(1).forward(headers.iter().copied());
        assert_eq!(out.headers.len(), 1, "the message's own header first");
        assert!(out.headers.contains_key("baggage"));
    }

    #[test]
    fn only_utf8_keys_are_sent() {
        let rules = HeaderForwarding::default().key_as_header("k");
        for (key, sent, skipped) in [
            (Some(&b"tenant-42"[..]), Some("tenant-42"), 0),
            (Some("café".as_bytes()), Some("café"), 0),
            (Some(b""), Some(""), 0),
            (Some(b"\xc3\x28"), None, 1),
            (None, None, 0),
        ] {
            let mut message = HeaderList::default();
            if let Some(key) = key {
                message = message.key(key);
            }
            let out = rules.forward_message(&message);
            let value = out
                .headers
                .get("k")
                .map(|v| std::str::from_utf8(v.as_bytes()).unwrap());
            assert_eq!((value, out.non_utf8_keys), (sent, skipped), "{key:?}");
        }
        // A UTF-8 key a header cannot carry is left out by the rules.
        let out = rules.forward_message(&HeaderList::default().key(b"a\nb"));
        assert_eq!(
            (out.headers.len(), out.dropped, out.non_utf8_keys),
            (0, 1, 0)
        );
    }

    #[test]
    fn without_the_options_nothing_is_derived() {
        let headers: &[(&str, Option<&[u8]>)] = &[("baggage", Some(b"x-dev=alice,broken"))];
        let out = HeaderForwarding::default().forward_message(&HeaderList::new(headers).key(b"k"));
        assert_eq!(out.headers.len(), 1);
        assert_eq!((out.malformed_baggage, out.non_utf8_keys), (0, 0));
    }

    #[test]
    fn named_derived_headers_are_checked() {
        let err = HeaderForwarding::default()
            .key_as_header("a b")
            .validate()
            .unwrap_err();
        assert_eq!(
            err,
            "record key header `a b` is not a valid HTTP header name"
        );
        let err = HeaderForwarding::default()
            .baggage(Baggage::members(["x-dev"]))
            .allow(["x-team"])
            .check_named_derived()
            .unwrap_err();
        assert_eq!(
            err,
            "baggage member `x-dev` would never be sent: it is not on the allow-list"
        );
        let err = HeaderForwarding::default()
            .key_as_header("X-Telepresence-Caller-Intercept-Id")
            .check_named_derived()
            .unwrap_err();
        assert!(
            err.ends_with("the caller ID never comes from a message"),
            "{err}"
        );
        HeaderForwarding::default()
            .baggage(Baggage::all())
            .allow(["x-team"])
            .check_named_derived()
            .unwrap();
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

        /// The decision cache's key reads what forwarding sends: for every
        /// name, the first value sent, whatever the rules and the headers.
        #[test]
        fn first_sent_is_the_first_value_forwarded(
            headers in prop::collection::vec((name(), value()), 0..16),
            allow in prop::collection::vec(
                prop::sample::select(vec!["x-dev", "traceparent", "X-Dev", "host"]).prop_map(str::to_owned), 0..3),
            deny in prop::collection::vec(
                prop::sample::select(vec!["x-dev", "x-secret"]).prop_map(str::to_owned), 0..2),
            max in prop_oneof![Just(DEFAULT_MAX_HEADER_BYTES), 0usize..200],
            max_count in prop_oneof![Just(DEFAULT_MAX_FORWARDED_HEADERS), 0usize..6],
        ) {
            let rules = HeaderForwarding::default().allow(&allow).deny(&deny).max_bytes(max).max_count(max_count);
            let offered: Vec<(&str, &[u8])> =
                headers.iter().map(|(n, v)| (n.as_str(), v.as_deref().unwrap_or_default())).collect();
            let mut sent = HeaderMap::new();
            let dropped = rules.forward_into(offered.iter().copied(), &mut sent);
            prop_assert_eq!(dropped + sent.len(), headers.len());
            // Names beyond the allow-list, never sent (`content-type`), or
            // reserved (`host`), and the allow-list's own.
            let mut names: Vec<String> = ["x-dev", "traceparent", "host", "content-type"]
                .iter().map(|n| n.to_string()).collect();
            for _ in 0..2 {
                let finder = rules.first_sent(names.clone()).expect("the allow-list is within the names");
                let mut first = vec![None; finder.len()];
                finder.find(offered.iter().copied(), &mut first);
                prop_assert_eq!(first.len(), finder.names().len());
                for (name, value) in finder.names().iter().zip(first) {
                    prop_assert_eq!(value, sent.get(name.as_str()).map(HeaderValue::as_bytes), "{}", name);
                }
                names = allow.iter().map(|n| n.to_ascii_lowercase()).collect();
            }
        }

        /// Without an allow-list within the names, other headers count too:
        /// no finder.
        #[test]
        fn no_finder_when_other_headers_may_be_sent(names in prop::collection::vec(name(), 0..3)) {
            prop_assume!(!names.iter().any(|n| n.eq_ignore_ascii_case("x-other")));
            prop_assert!(HeaderForwarding::default().first_sent(names.clone()).is_none());
            let wider: Vec<String> = names.iter().cloned().chain(["x-other".to_owned()]).collect();
            prop_assert!(HeaderForwarding::default().allow(&wider).first_sent(names).is_none());
        }

        /// The allocation-free name check is the `http` crate's.
        #[test]
        fn header_names_are_checked_as_http_does(name in name()) {
            prop_assert_eq!(is_header_name(&name), HeaderName::from_bytes(name.as_bytes()).is_ok());
        }
    }
}
