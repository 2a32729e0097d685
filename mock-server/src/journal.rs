//! The request journal: what every API request asked and what it got back.
//!
//! It is a ring buffer: when it is full the oldest entry makes room, so a
//! server under hours of load keeps a bounded amount of memory.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::decision::CALLER_INTERCEPT_ID_HEADER;

/// How many entries the journal keeps unless told otherwise.
pub const DEFAULT_JOURNAL_CAPACITY: usize = 10_000;

/// One request to a Telepresence endpoint (or to an unknown path outside the
/// admin API) and its answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position since the server started (1, 2, ...); gaps mean evicted or cleared entries.
    pub seq: u64,
    /// When the request arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// The connection it came on, numbered from 1 in order of acceptance:
    /// equal numbers mean a reused (keep-alive) connection.
    pub connection: u64,
    /// The HTTP method.
    pub method: String,
    /// The URL path asked for, e.g. `/consume-here`.
    pub endpoint: String,
    /// The decoded `path` parameter (empty when absent).
    pub path: String,
    /// The raw `containerPort` parameter (empty when absent).
    pub container_port: String,
    /// The `x-telepresence-caller-intercept-id` header (empty when absent).
    pub caller_id: String,
    /// Every request header in order, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The answer's status, or `None` when a fault closed the connection.
    pub status: Option<u16>,
    /// The answer's body.
    pub answer: String,
    /// The ID of the intercept the request matched, when a decision was made
    /// and an intercept matched.
    #[serde(default)]
    pub intercept: Option<String>,
    /// The injected fault that shaped the answer, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<String>,
}

impl JournalEntry {
    /// The first value of a request header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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
    pub(crate) fault: Option<String>,
}

/// Packs the variable parts of a request into one allocation.
pub(crate) fn pack(path: &[u8], container_port: &[u8], headers: &HeaderMap) -> Box<[u8]> {
    let size = 8
        + path.len()
        + container_port.len()
        + headers
            .iter()
            .map(|(n, v)| 8 + n.as_str().len() + v.len())
            .sum::<usize>();
    let mut data = Vec::with_capacity(size);
    let mut push = |bytes: &[u8]| {
        data.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        data.extend_from_slice(bytes);
    };
    push(path);
    push(container_port);
    for (name, value) in headers {
        push(name.as_str().as_bytes());
        push(value.as_bytes());
    }
    data.into_boxed_slice()
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
        JournalEntry {
            seq,
            unix_ms: self.unix_ms,
            connection: self.connection,
            method: self.method.to_string(),
            endpoint: self.endpoint.to_string(),
            path,
            container_port,
            caller_id,
            headers,
            status: self.status.map(|s| s.as_u16()),
            answer: text(&self.answer),
            intercept: self.matched.as_deref().map(str::to_owned),
            fault: self.fault.clone(),
        }
    }
}

/// A bounded, thread-safe journal.
#[derive(Debug)]
pub(crate) struct Journal {
    capacity: usize,
    state: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<(u64, RawEntry)>,
    next_seq: u64,
}

impl Journal {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(Ring {
                entries: VecDeque::with_capacity(capacity.min(1024)),
                next_seq: 1,
            }),
        }
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

    /// Appends an entry, numbering it; evicts the oldest when full.
    pub(crate) fn record(&self, entry: RawEntry) {
        if self.capacity == 0 {
            return;
        }
        let evicted = {
            let mut ring = self.state.lock();
            let seq = ring.next_seq;
            ring.next_seq += 1;
            let evicted = if ring.entries.len() == self.capacity {
                ring.entries.pop_front()
            } else {
                None
            };
            ring.entries.push_back((seq, entry));
            evicted
        };
        // Freed outside the lock.
        drop(evicted);
    }

    /// The entries with a sequence number above `after`, oldest first.
    pub(crate) fn entries_after(&self, after: u64) -> Vec<JournalEntry> {
        let raw: Vec<(u64, RawEntry)> = {
            let ring = self.state.lock();
            let start = ring.entries.partition_point(|(seq, _)| *seq <= after);
            ring.entries.range(start..).cloned().collect()
        };
        raw.iter().map(|(seq, e)| e.to_entry(*seq)).collect()
    }

    /// Every entry, oldest first.
    pub(crate) fn entries(&self) -> Vec<JournalEntry> {
        self.entries_after(0)
    }

    pub(crate) fn len(&self) -> usize {
        self.state.lock().entries.len()
    }

    pub(crate) fn clear(&self) {
        self.state.lock().entries.clear();
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
            data: pack(b"/p", b"80", &headers),
            status: Some(StatusCode::OK),
            answer: Bytes::from_static(b"true"),
            matched: Some("me".into()),
            fault: None,
        }
    }

    #[test]
    fn keeps_the_newest_entries_up_to_its_capacity() {
        let journal = Journal::new(3);
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
        let journal = Journal::new(1);
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
        let journal = Journal::new(0);
        journal.record(entry("/"));
        assert!(!journal.is_enabled());
        assert!(journal.entries().is_empty());
    }

    #[test]
    fn header_lookup_ignores_case() {
        let journal = Journal::new(1);
        journal.record(entry("/"));
        let e = &journal.entries()[0];
        assert_eq!(e.header("X-A"), Some("1"));
        assert_eq!(e.header("x-b"), None);
    }
}
