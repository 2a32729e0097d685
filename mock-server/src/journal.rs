//! The request journal: what every API request asked and what it got back.
//!
//! It is a ring buffer bounded twice: by entries and by bytes. When either is
//! reached the oldest entries make room, so a server under hours of load, or
//! under clients that send megabytes per request, keeps a bounded amount of
//! memory. Each entry is kept small: a value longer than
//! [`JOURNAL_VALUE_LIMIT`] is cut, with a marker giving its length, and an
//! entry keeps at most [`JOURNAL_ENTRY_LIMIT`] bytes of headers.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use parking_lot::Mutex;

use telepresence_api::admin::JournalEntry;
use telepresence_api::{CALLER_INTERCEPT_ID_HEADER, Reason};

use crate::decision::{Decided, InterceptSet, Query};

/// How many entries the journal keeps unless told otherwise.
pub const DEFAULT_JOURNAL_CAPACITY: usize = 10_000;
/// How many bytes the journal keeps unless told otherwise.
pub const DEFAULT_JOURNAL_BYTES: usize = 32 << 20;
/// The longest value (path, header name or value, answer) an entry keeps
/// whole; longer ones are cut and end with `…[truncated: N bytes]`.
pub const JOURNAL_VALUE_LIMIT: usize = 4096;
/// The most bytes of path, port and headers one entry keeps; headers beyond
/// it are summed up in one last pseudo-header `…`.
pub const JOURNAL_ENTRY_LIMIT: usize = 64 * 1024;
/// What an entry costs besides its variable parts, in bytes (an estimate).
const ENTRY_OVERHEAD: usize = 160;

/// An entry as recorded: built cheaply on the request path, turned into text
/// only when read.
///
/// The path, the port and the headers are copied into one buffer. Keeping
/// the request's own `HeaderMap` would be cheaper to build, but its values
/// are slices of the connection's read buffer and would pin those buffers in
/// memory for as long as the entry lives.
#[derive(Clone, Debug)]
pub(crate) struct RawEntry {
    pub(crate) unix_ms: u64,
    pub(crate) connection: u64,
    pub(crate) method: Method,
    pub(crate) endpoint: Cow<'static, str>,
    /// `path`, `containerPort`, then each header's name and value, each
    /// prefixed with its length.
    pub(crate) data: Box<[u8]>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) answer: Bytes,
    pub(crate) matched: Option<Arc<str>>,
    /// What it takes to say why, when read; `None` without a decision.
    pub(crate) decided: Option<Decided>,
    /// Whether `data` holds the request whole: a reason is given only then.
    pub(crate) complete: bool,
    /// The intercepts it refers to, counted in the journal's bytes when
    /// they differ from the previous entry's (set when recorded).
    pub(crate) set_charge: usize,
    pub(crate) fault: Option<String>,
}

/// Packs the variable parts of a request into one allocation, each value
/// cut to [`JOURNAL_VALUE_LIMIT`], the whole to about [`JOURNAL_ENTRY_LIMIT`];
/// says whether nothing was cut.
pub(crate) fn pack(path: &[u8], container_port: &[u8], headers: &HeaderMap) -> (Box<[u8]>, bool) {
    let kept = |bytes: &[u8]| 4 + bytes.len().min(JOURNAL_VALUE_LIMIT) + MARKER_ROOM;
    let mut size = kept(path) + kept(container_port);
    let mut whole = 0;
    for (name, value) in headers {
        let more = kept(name.as_str().as_bytes()) + kept(value.as_bytes());
        if size + more > JOURNAL_ENTRY_LIMIT {
            break;
        }
        size += more;
        whole += 1;
    }
    let fits = |bytes: &[u8]| bytes.len() <= JOURNAL_VALUE_LIMIT;
    let complete = whole == headers.len()
        && fits(path)
        && fits(container_port)
        && headers
            .iter()
            .all(|(name, value)| fits(name.as_str().as_bytes()) && fits(value.as_bytes()));
    let mut data = Vec::with_capacity(size + 2 * (4 + MARKER_ROOM));
    push_cut(&mut data, path);
    push_cut(&mut data, container_port);
    for (name, value) in headers.iter().take(whole) {
        push_cut(&mut data, name.as_str().as_bytes());
        push_cut(&mut data, value.as_bytes());
    }
    let left = headers.len() - whole;
    if left > 0 {
        let bytes: usize = headers
            .iter()
            .skip(whole)
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        push_field(&mut data, "…".as_bytes());
        push_field(
            &mut data,
            format!("[{left} more headers, {bytes} bytes, not kept]").as_bytes(),
        );
    }
    (data.into_boxed_slice(), complete)
}

/// Room for `…[truncated: N bytes]` after a cut value.
const MARKER_ROOM: usize = 40;

fn push_field(data: &mut Vec<u8>, bytes: &[u8]) {
    data.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    data.extend_from_slice(bytes);
}

/// Pushes `bytes`, or its first [`JOURNAL_VALUE_LIMIT`] bytes and a marker
/// with its length.
fn push_cut(data: &mut Vec<u8>, bytes: &[u8]) {
    if bytes.len() <= JOURNAL_VALUE_LIMIT {
        push_field(data, bytes);
        return;
    }
    let marker = format!("…[truncated: {} bytes]", bytes.len());
    let kept = &bytes[..JOURNAL_VALUE_LIMIT];
    data.extend_from_slice(&((kept.len() + marker.len()) as u32).to_le_bytes());
    data.extend_from_slice(kept);
    data.extend_from_slice(marker.as_bytes());
}

/// An answer's body as kept: cut like any value.
pub(crate) fn cut_answer(body: &Bytes) -> Bytes {
    if body.len() <= JOURNAL_VALUE_LIMIT {
        return body.clone();
    }
    let mut kept = body.slice(..JOURNAL_VALUE_LIMIT).to_vec();
    kept.extend_from_slice(format!("…[truncated: {} bytes]", body.len()).as_bytes());
    Bytes::from(kept)
}

/// The fields [`pack`] wrote, in order.
fn unpack(mut data: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let (len, rest) = data.split_first_chunk::<4>()?;
        let (field, rest) = rest.split_at(u32::from_le_bytes(*len) as usize);
        data = rest;
        Some(field)
    })
}

impl RawEntry {
    /// Why the decision was made: worked out again from the request as kept
    /// and the intercepts in force then, which is exact when the request was
    /// kept whole. `None` without a decision, for a request kept in part, or
    /// should the decision come out otherwise than recorded.
    fn reason(&self) -> Option<Reason> {
        let decided = self.decided.as_ref()?;
        if !self.complete {
            return None;
        }
        let mut fields = unpack(&self.data);
        let path = fields.next()?;
        let _container_port = fields.next()?;
        let mut headers = HeaderMap::new();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            headers.append(
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            );
        }
        let query = Query {
            headers: &headers,
            path,
            container_port: decided.container_port,
        };
        let (decision, reason) = decided.set.explain(decided.side, &query);
        let matched = decision.matched.map(|i| i.id());
        (matched == self.matched.as_ref()).then_some(reason)
    }

    /// What it costs to keep, in bytes (an estimate that errs high).
    fn size(&self) -> usize {
        ENTRY_OVERHEAD
            + self.data.len()
            + self.answer.len()
            + match &self.endpoint {
                Cow::Borrowed(_) => 0,
                Cow::Owned(endpoint) => endpoint.len(),
            }
            + self.fault.as_ref().map_or(0, String::len)
            + self.set_charge
    }

    fn to_entry(&self, seq: u64) -> JournalEntry {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let mut fields = unpack(&self.data);
        let path = text(fields.next().unwrap_or_default());
        let container_port = text(fields.next().unwrap_or_default());
        let mut headers = Vec::new();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            headers.push((text(name), text(value)));
        }
        let caller_id = headers
            .iter()
            .find(|(name, _)| name == CALLER_INTERCEPT_ID_HEADER)
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let mut entry = JournalEntry::new(seq, self.endpoint.as_ref());
        entry.unix_ms = self.unix_ms;
        entry.connection = self.connection;
        entry.method = self.method.to_string();
        entry.path = path;
        entry.container_port = container_port;
        entry.caller_id = caller_id;
        entry.headers = headers;
        entry.status = self.status.map(|s| s.as_u16());
        entry.answer = text(&self.answer);
        entry.intercept = self.matched.as_deref().map(str::to_owned);
        entry.reason = self.reason();
        entry.fault = self.fault.clone();
        entry
    }
}

/// A bounded, thread-safe journal.
#[derive(Debug)]
pub(crate) struct Journal {
    capacity: usize,
    budget: usize,
    state: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(u64, RawEntry)>,
    next_seq: u64,
    /// What the entries cost, by [`RawEntry::size`].
    bytes: usize,
    /// The intercepts the newest entry refers to: an entry that refers to
    /// the same ones is not charged for them again.
    last_set: Option<Arc<InterceptSet>>,
}

/// One page of the journal, oldest first.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) entries: Vec<JournalEntry>,
    /// Whether entries after the last one of the page match too.
    pub(crate) more: bool,
}

impl Journal {
    /// A journal of at most `capacity` entries and `budget` bytes.
    pub(crate) fn new(capacity: usize, budget: usize) -> Self {
        Self {
            capacity,
            budget,
            state: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 1,
                bytes: 0,
                last_set: None,
            }),
        }
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    pub(crate) fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.capacity > 0
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn now_ms() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Appends an entry, numbering it; evicts the oldest while the journal
    /// is over its count or its bytes.
    pub(crate) fn record(&self, mut entry: RawEntry) {
        if self.capacity == 0 || self.budget == 0 {
            return;
        }
        // Usually one entry makes room for the next: kept without a Vec,
        // whose allocation would be the only one here.
        let mut evicted_first = None;
        let mut evicted = Vec::new();
        {
            let mut ring = self.state.lock();
            if let Some(decided) = &entry.decided {
                let same = ring
                    .last_set
                    .as_ref()
                    .is_some_and(|last| Arc::ptr_eq(last, &decided.set));
                if !same {
                    entry.set_charge = decided.set.approx_bytes();
                    ring.last_set = Some(Arc::clone(&decided.set));
                }
            }
            let size = entry.size();
            let seq = ring.next_seq;
            ring.next_seq += 1;
            while !ring.entries.is_empty()
                && (ring.entries.len() >= self.capacity || ring.bytes + size > self.budget)
            {
                if let Some((_, old)) = ring.entries.pop_front() {
                    ring.bytes -= old.size();
                    match evicted_first {
                        None => evicted_first = Some(old),
                        Some(_) => evicted.push(old),
                    }
                }
            }
            ring.bytes += size;
            ring.entries.push_back((seq, entry));
        }
        // Freed outside the lock.
        drop((evicted_first, evicted));
    }

    /// The entries with a sequence number above `after` (and for `endpoint`
    /// when given), oldest first: at most `limit` of them and about
    /// `max_bytes`, at least one when any matches.
    pub(crate) fn page(
        &self,
        after: u64,
        endpoint: Option<&str>,
        limit: usize,
        max_bytes: usize,
    ) -> Page {
        let mut raw: Vec<(u64, RawEntry)> = Vec::new();
        let mut more = false;
        {
            let ring = self.state.lock();
            let start = ring.entries.partition_point(|(seq, _)| *seq <= after);
            let mut bytes = 0;
            for (seq, entry) in ring.entries.range(start..) {
                if endpoint.is_some_and(|e| e != entry.endpoint) {
                    continue;
                }
                if raw.len() == limit || (!raw.is_empty() && bytes + entry.size() > max_bytes) {
                    more = true;
                    break;
                }
                bytes += entry.size();
                raw.push((*seq, entry.clone()));
            }
        }
        Page {
            entries: raw.iter().map(|(seq, e)| e.to_entry(*seq)).collect(),
            more,
        }
    }

    /// The entries with a sequence number above `after`, oldest first.
    pub(crate) fn entries_after(&self, after: u64) -> Vec<JournalEntry> {
        self.page(after, None, usize::MAX, usize::MAX).entries
    }

    /// Every entry, oldest first.
    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.entries_after(0)
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    pub(crate) fn clear(&self) {
        let mut ring = self.state.lock();
        ring.entries.clear();
        ring.bytes = 0;
        ring.last_set = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(endpoint: &str) -> RawEntry {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", "1".parse().unwrap());
        headers.insert(CALLER_INTERCEPT_ID_HEADER, "me".parse().unwrap());
        RawEntry {
            unix_ms: 0,
            connection: 1,
            method: Method::GET,
            endpoint: endpoint.to_owned().into(),
            data: pack(b"/p", b"80", &headers).0,
            status: Some(StatusCode::OK),
            answer: Bytes::from_static(b"true"),
            matched: Some("me".into()),
            decided: None,
            complete: true,
            set_charge: 0,
            fault: None,
        }
    }

    fn decided(set: &Arc<InterceptSet>) -> RawEntry {
        let mut raw = entry("/consume-here");
        raw.decided = Some(Decided {
            set: Arc::clone(set),
            side: telepresence_api::Side::Client,
            container_port: 0,
        });
        raw
    }

    #[test]
    fn the_intercepts_entries_refer_to_are_counted_once_per_change() {
        let rules = telepresence_api::Rules::default();
        let make = |n: usize| {
            let intercepts: Vec<telepresence_api::Intercept> = (0..n)
                .map(|i| telepresence_api::Intercept::new(format!("i{i}")).header("x", "^re"))
                .collect();
            Arc::new(InterceptSet::new(&intercepts, rules, None).unwrap())
        };
        let (first, second) = (make(100), make(100));
        assert!(first.approx_bytes() > 100 * 4096, "regexes are counted");
        let journal = Journal::new(100, usize::MAX);
        journal.record(decided(&first));
        let one = journal.bytes();
        journal.record(decided(&first));
        let same = journal.bytes() - one;
        assert!(
            same < 1024,
            "the same intercepts again cost nothing: {same}"
        );
        journal.record(decided(&second));
        assert!(
            journal.bytes() - one - same >= second.approx_bytes(),
            "new intercepts are counted"
        );
        // Under a budget, intercepts edited between requests push out entries
        // rather than memory.
        let small = Journal::new(1000, 3 * first.approx_bytes());
        for i in 0..20 {
            small.record(decided(if i % 2 == 0 { &first } else { &second }));
        }
        assert!(small.len() <= 3, "{}", small.len());
        assert!(small.bytes() <= 3 * first.approx_bytes());
    }

    #[test]
    fn keeps_the_newest_entries_up_to_its_capacity() {
        let journal = Journal::new(3, DEFAULT_JOURNAL_BYTES);
        for i in 0..5 {
            journal.record(entry(&format!("/{i}")));
        }
        let entries = journal.entries();
        let seen: Vec<(u64, &str)> = entries
            .iter()
            .map(|e| (e.seq, e.endpoint.as_str()))
            .collect();
        assert_eq!(seen, [(3, "/2"), (4, "/3"), (5, "/4")]);
        journal.clear();
        assert_eq!(journal.len(), 0);
        journal.record(entry("/x"));
        assert_eq!(journal.entries()[0].seq, 6, "numbering survives a clear");
        journal.record(entry("/y"));
        let after: Vec<u64> = journal.entries_after(6).iter().map(|e| e.seq).collect();
        assert_eq!(after, [7]);
    }

    #[test]
    fn entries_read_as_text() {
        let journal = Journal::new(1, DEFAULT_JOURNAL_BYTES);
        journal.record(entry("/consume-here"));
        let e = &journal.entries()[0];
        assert_eq!(
            (
                e.method.as_str(),
                e.path.as_str(),
                e.container_port.as_str(),
                e.caller_id.as_str()
            ),
            ("GET", "/p", "80", "me")
        );
        assert_eq!((e.status, e.answer.as_str()), (Some(200), "true"));
    }

    #[test]
    fn a_zero_capacity_journal_records_nothing() {
        let journal = Journal::new(0, DEFAULT_JOURNAL_BYTES);
        journal.record(entry("/"));
        assert!(!journal.is_enabled());
        assert!(journal.entries().is_empty());
    }

    #[test]
    fn header_lookup_ignores_case() {
        let journal = Journal::new(1, DEFAULT_JOURNAL_BYTES);
        journal.record(entry("/"));
        let e = &journal.entries()[0];
        assert_eq!(e.header("X-A"), Some("1"));
        assert_eq!(e.header("x-b"), None);
    }

    fn big_entry(path_len: usize, headers: usize, value_len: usize) -> RawEntry {
        let mut map = HeaderMap::new();
        for n in 0..headers {
            map.append(
                http::HeaderName::from_bytes(format!("x-h{n}").as_bytes()).unwrap(),
                "v".repeat(value_len).parse().unwrap(),
            );
        }
        RawEntry {
            unix_ms: 0,
            connection: 1,
            method: Method::POST,
            endpoint: Cow::Borrowed("/intercept-info"),
            data: pack(&vec![b'p'; path_len], b"", &map).0,
            status: Some(StatusCode::OK),
            answer: cut_answer(&Bytes::from(vec![b'a'; path_len])),
            matched: None,
            decided: None,
            complete: true,
            set_charge: 0,
            fault: None,
        }
    }

    #[test]
    fn long_values_are_cut_with_their_length() {
        let journal = Journal::new(10, DEFAULT_JOURNAL_BYTES);
        journal.record(big_entry(9 << 20, 1, 10_000));
        let e = &journal.entries()[0];
        let marker = format!("…[truncated: {} bytes]", 9 << 20);
        assert!(
            e.path.ends_with(&marker) && e.path.starts_with("ppp"),
            "{}",
            &e.path[..20]
        );
        assert_eq!(e.path.len(), JOURNAL_VALUE_LIMIT + marker.len());
        assert!(e.answer.ends_with(&marker));
        assert!(e.headers[0].1.ends_with("…[truncated: 10000 bytes]"));
        assert!(
            journal.bytes() < 3 * JOURNAL_VALUE_LIMIT + 1024,
            "{}",
            journal.bytes()
        );
    }

    #[test]
    fn an_entry_keeps_a_bounded_share_of_many_headers() {
        let journal = Journal::new(10, DEFAULT_JOURNAL_BYTES);
        journal.record(big_entry(1, 5000, 100));
        let e = &journal.entries()[0];
        let (name, value) = e.headers.last().unwrap();
        assert_eq!(name, "…");
        assert!(
            value.ends_with("more headers, ") || value.contains("more headers"),
            "{value}"
        );
        assert!(e.headers.len() < 600, "{}", e.headers.len());
        assert!(
            journal.bytes() <= JOURNAL_ENTRY_LIMIT + 2 * JOURNAL_VALUE_LIMIT,
            "{}",
            journal.bytes()
        );
    }

    #[test]
    fn the_byte_budget_evicts_the_oldest() {
        let budget = 64 * 1024;
        let journal = Journal::new(1000, budget);
        for _ in 0..100 {
            journal.record(big_entry(8000, 2, 1000));
            assert!(journal.bytes() <= budget, "{}", journal.bytes());
        }
        let kept = journal.len();
        assert!(kept > 1 && kept < 100, "{kept}");
        assert_eq!(
            journal.entries().last().unwrap().seq,
            100,
            "the newest stay"
        );
    }

    #[test]
    fn pages_are_bounded_by_count_and_bytes() {
        let journal = Journal::new(1000, DEFAULT_JOURNAL_BYTES);
        for i in 0..10 {
            journal.record(entry(if i % 2 == 0 { "/a" } else { "/b" }));
        }
        let page = journal.page(0, None, 4, usize::MAX);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert!(page.more);
        let page = journal.page(4, Some("/a"), 10, usize::MAX);
        assert_eq!(
            page.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [5, 7, 9]
        );
        assert!(!page.more);
        let one = journal.page(0, None, 10, 1);
        assert_eq!(one.entries.len(), 1, "at least one entry per page");
        assert!(one.more);
    }
}
