//! Limits that keep one client from exhausting the server.

use std::time::Duration;

/// What a client may ask of the server, and for how long.
///
/// The defaults accept every request Telepresence's own server (Go's
/// `net/http`) accepts, up to [`DEFAULT_MAX_HEADERS`] headers, and bound the
/// memory a client can make the server hold: see `docs/reliability.md` for
/// the arithmetic.
///
/// | limit | default | when exceeded |
/// | --- | --- | --- |
/// | `max_header_bytes` | 1 MiB (Go's) | `431 Request Header Fields Too Large` |
/// | `max_headers` | 8192 (Go has no count limit) | `431 Request Header Fields Too Large` |
/// | `max_body_bytes` | 10 MiB (Go's form limit) | `413 Payload Too Large` |
/// | `max_body_bytes_in_flight` | 64 MiB | a body waits for room, then `503` |
/// | `read_timeout` | 10 s | headers: the connection is closed; a body: `408` |
/// | `max_connections` | 256 | more connections wait in the listen backlog |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a request's head (request line and headers); at least 8 KiB.
    pub max_header_bytes: usize,
    /// Headers in one request.
    pub max_headers: usize,
    /// Bytes of one request body (a form body read for `path` and
    /// `containerPort`, an admin request's JSON).
    pub max_body_bytes: usize,
    /// Body bytes buffered at once across all requests.
    pub max_body_bytes_in_flight: usize,
    /// Time to receive a request's headers, and its body.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The smallest head size the HTTP parser accepts.
pub(crate) const MIN_HEADER_BYTES: usize = 8 * 1024;

/// Headers in one request by default: far beyond what the SDK forwards (at
/// most 1024). The HTTP parser sets aside a table of this many 48-byte slots
/// per request; Go has no such count, only the head's byte limit.
pub const DEFAULT_MAX_HEADERS: usize = 8192;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 1 << 20,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: 10 << 20,
            max_body_bytes_in_flight: 64 << 20,
            read_timeout: Duration::from_secs(10),
            max_connections: 256,
        }
    }
}
