//! The optional decision cache.
//!
//! When the only headers sent are a declared set of routing headers, the
//! answer depends only on the path and those headers' first values, so it can
//! be reused until the intercepts may have changed (the TTL).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// How many decisions the cache holds unless told otherwise.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;

#[derive(Debug)]
pub(crate) struct DecisionCache {
    ttl: Duration,
    capacity: usize,
    /// Lower-case names, in declaration order.
    routing: Vec<String>,
    entries: Mutex<HashMap<Vec<u8>, (Instant, bool)>>,
}

impl DecisionCache {
    pub(crate) fn new(ttl: Duration, capacity: usize, routing: Vec<String>) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            routing,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn routing_headers(&self) -> &[String] {
        &self.routing
    }

    /// The key: the path and each routing header's first value, length-prefixed.
    /// A missing header and an empty or null value are the same to the server.
    pub(crate) fn key(&self, path: Option<&str>, headers: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut key = Vec::with_capacity(64);
        let mut push = |bytes: &[u8]| {
            key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            key.extend_from_slice(bytes);
        };
        push(path.unwrap_or_default().as_bytes());
        for name in &self.routing {
            let value = headers
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(name))
                .and_then(|(_, value)| *value)
                .unwrap_or_default();
            push(value);
        }
        key
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<bool> {
        let entries = self.entries.lock();
        let (at, answer) = entries.get(key)?;
        (at.elapsed() < self.ttl).then_some(*answer)
    }

    /// Stores an answer; when full, expired entries go first, then everything.
    pub(crate) fn insert(&self, key: Vec<u8>, answer: bool) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), answer));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl: Duration, capacity: usize) -> DecisionCache {
        DecisionCache::new(ttl, capacity, vec!["x-dev".into(), "x-team".into()])
    }

    #[test]
    fn keys_depend_on_the_path_and_the_first_routing_values_only() {
        let c = cache(Duration::from_secs(60), 10);
        let base = c.key(
            Some("/a"),
            &[("x-dev", Some(b"alice")), ("other", Some(b"1"))],
        );
        assert_eq!(
            base,
            c.key(
                Some("/a"),
                &[("X-Dev", Some(b"alice")), ("x-dev", Some(b"bob"))]
            )
        );
        assert_ne!(base, c.key(Some("/b"), &[("x-dev", Some(b"alice"))]));
        assert_ne!(
            base,
            c.key(
                Some("/a"),
                &[("x-dev", Some(b"bob")), ("x-dev", Some(b"alice"))]
            )
        );
        assert_ne!(
            base,
            c.key(
                Some("/a"),
                &[("x-dev", Some(b"alice")), ("x-team", Some(b"t"))]
            )
        );
        assert_eq!(
            c.key(None, &[]),
            c.key(Some(""), &[("x-dev", None), ("x-team", Some(b""))])
        );
        // Length prefixes keep values from running into one another.
        assert_ne!(
            c.key(None, &[("x-dev", Some(b"ab")), ("x-team", Some(b"c"))]),
            c.key(None, &[("x-dev", Some(b"a")), ("x-team", Some(b"bc"))])
        );
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let c = cache(Duration::from_millis(30), 10);
        c.insert(b"k".to_vec(), true);
        assert_eq!(c.get(b"k"), Some(true));
        assert_eq!(c.get(b"other"), None);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(c.get(b"k"), None);
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let c = cache(Duration::from_secs(60), 100);
        for i in 0..1000u32 {
            c.insert(i.to_le_bytes().to_vec(), i % 2 == 0);
            assert!(c.len() <= 100);
        }
        assert_eq!(c.get(&999u32.to_le_bytes()), Some(false));
    }
}
