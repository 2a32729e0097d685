//! Limits that keep one client from exhausting the server.

use std::time::Duration;

/// What a client may ask of the server, and for how long.
///
/// | limit | default | when exceeded |
/// | --- | --- | --- |
/// | `max_header_bytes` | 64 KiB | `431 Request Header Fields Too Large` |
/// | `max_headers` | 100 | `431 Request Header Fields Too Large` |
/// | `max_body_bytes` | 10 MiB (Go's form limit) | `413 Payload Too Large` |
/// | `read_timeout` | 10 s | headers: the connection is closed; a form body: `408` |
/// | `max_connections` | 1024 | more connections wait in the listen backlog |
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of a request's head (request line and headers); at least 8 KiB.
    pub max_header_bytes: usize,
    /// Headers in one request.
    pub max_headers: usize,
    /// Bytes of a form body read for `path` and `containerPort`.
    pub max_body_bytes: usize,
    /// Time to receive a request's headers, and its form body.
    pub read_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The smallest head size the HTTP parser accepts.
pub(crate) const MIN_HEADER_BYTES: usize = 8 * 1024;

/// hyper's own default; changing it costs a heap allocation per request.
pub(crate) const DEFAULT_MAX_HEADERS: usize = 100;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_header_bytes: 64 * 1024,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: 10 << 20,
            read_timeout: Duration::from_secs(10),
            max_connections: 1024,
        }
    }
}
