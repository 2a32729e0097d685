//! The optional decision cache.
//!
//! When the only headers sent are a declared set of routing headers, the
//! answer depends only on the path and those headers' first values, so it can
//! be reused until the intercepts may have changed (the TTL).
//!
//! The key holds the values the server reads: the first *sent* of each
//! name, after the forwarding rules, among the message's own headers and the
//! derived ones (record key, baggage members). A value read anywhere else
//! (a message header that is not sent, say, behind which a baggage member
//! is) would let one message reuse the answer given for another.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

// The TTL is read on every hit: the coarse monotonic clock (a few
// milliseconds' resolution) costs a fraction of the precise one, which
// took a fifth of a hit's time.
use coarsetime::{Duration as Coarse, Instant};
use parking_lot::Mutex;

use crate::headers::FirstSent;

/// How many decisions the cache holds unless told otherwise.
pub(crate) const DEFAULT_CACHE_CAPACITY: usize = 10_000;

/// The largest key buffer a thread keeps between lookups: one message with a
/// huge routing value must not pin its size for the thread's life.
const SCRATCH_KEEP: usize = 4096;

thread_local! {
    /// Where a lookup builds its key: a hit, the usual case, then allocates
    /// nothing, whatever the program's allocator and however many threads
    /// decide at once.
    static KEY_SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[derive(Debug)]
pub(crate) struct DecisionCache {
    ttl: Coarse,
    capacity: usize,
    /// The routing headers, lower case, in declaration order, and how to
    /// find the values sent of them.
    routing: FirstSent,
    /// Keyed with a fast hasher seeded per process: keys come from
    /// messages, so the hash must not be predictable, and SipHash cost a hit
    /// a sixth of its time.
    entries: Mutex<HashMap<Vec<u8>, (Instant, bool), foldhash::fast::RandomState>>,
}

impl DecisionCache {
    pub(crate) fn new(ttl: Duration, capacity: usize, routing: FirstSent) -> Self {
        Self {
            ttl: ttl.into(),
            capacity: capacity.max(1),
            routing,
            entries: Mutex::new(HashMap::default()),
        }
    }

    /// The answer cached for a message with this path and these headers,
    /// or, when there is none, the key to store the answer under.
    pub(crate) fn lookup<'h>(
        &self,
        path: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) -> Result<bool, Vec<u8>> {
        KEY_SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut key) => {
                key.clear();
                self.write_key(&mut key, path, headers);
                let found = self.get(&key).ok_or_else(|| key.clone());
                if key.capacity() > SCRATCH_KEEP {
                    *key = Vec::new();
                }
                found
            }
            // Only if reading a message's headers looked up another one.
            Err(_) => {
                let mut key = Vec::new();
                self.write_key(&mut key, path, headers);
                self.get(&key).ok_or(key)
            }
        })
    }

    /// Writes the key to `key`: the path and the first value sent of each
    /// routing header, length-prefixed. A missing header and an empty or
    /// null value are the same to the server.
    fn write_key<'h>(
        &self,
        key: &mut Vec<u8>,
        path: Option<&str>,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    ) {
        let mut push = |bytes: &[u8]| {
            key.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            key.extend_from_slice(bytes);
        };
        push(path.unwrap_or_default().as_bytes());
        // On the stack for up to four routing headers.
        let (mut inline, mut spilled) = ([None; 4], Vec::new());
        let first = match self.routing.len() {
            n if n <= inline.len() => &mut inline[..n],
            n => {
                spilled.resize(n, None);
                &mut spilled[..]
            }
        };
        self.routing.find(headers, first);
        for value in first {
            push(value.unwrap_or_default());
        }
    }

    fn get(&self, key: &[u8]) -> Option<bool> {
        let entries = self.entries.lock();
        let (at, answer) = entries.get(key)?;
        (age(*at) < self.ttl).then_some(*answer)
    }

    /// Stores an answer; when full, expired entries go first, then everything.
    pub(crate) fn insert(&self, key: Vec<u8>, answer: bool) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| age(*at) < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now_without_cache_update(), answer));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().len()
    }
}

/// How long ago `at` was; never negative. (`Instant::elapsed` would also
/// write the crate's shared "recent" clock, which nothing here reads.)
fn age(at: Instant) -> Coarse {
    Instant::now_without_cache_update() - at
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::headers::{HeaderForwarding, Offered};

    const ROUTING: [&str; 2] = ["x-dev", "x-team"];

    /// A cache keyed as a client with these forwarding rules keys it: the
    /// rules then allow the routing headers only.
    fn cache_for(ttl: Duration, capacity: usize, rules: HeaderForwarding) -> DecisionCache {
        let routing = rules
            .allow(ROUTING)
            .first_sent(ROUTING.map(str::to_owned).to_vec())
            .unwrap();
        DecisionCache::new(ttl, capacity, routing)
    }

    fn cache(ttl: Duration, capacity: usize) -> DecisionCache {
        cache_for(ttl, capacity, HeaderForwarding::default())
    }

    impl DecisionCache {
        fn key<'h>(
            &self,
            path: Option<&str>,
            headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        ) -> Vec<u8> {
            let mut key = Vec::new();
            self.write_key(&mut key, path, headers);
            key
        }

        /// The key of a message with these headers only.
        fn key_of(&self, path: Option<&str>, headers: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
            self.key(
                path,
                headers.iter().map(|&(k, v)| (k, v.unwrap_or_default())),
            )
        }
    }

    #[test]
    fn keys_depend_on_the_path_and_the_first_routing_values_only() {
        let c = cache(Duration::from_secs(60), 10);
        let base = c.key_of(
            Some("/a"),
            &[("x-dev", Some(b"alice")), ("other", Some(b"1"))],
        );
        assert_eq!(
            base,
            c.key_of(
                Some("/a"),
                &[("X-Dev", Some(b"alice")), ("x-dev", Some(b"bob"))]
            )
        );
        assert_ne!(base, c.key_of(Some("/b"), &[("x-dev", Some(b"alice"))]));
        assert_ne!(
            base,
            c.key_of(
                Some("/a"),
                &[("x-dev", Some(b"bob")), ("x-dev", Some(b"alice"))]
            )
        );
        assert_ne!(
            base,
            c.key_of(
                Some("/a"),
                &[("x-dev", Some(b"alice")), ("x-team", Some(b"t"))]
            )
        );
        assert_eq!(
            c.key_of(None, &[]),
            c.key_of(Some(""), &[("x-dev", None), ("x-team", Some(b""))])
        );
        // Length prefixes keep values from running into one another.
        assert_ne!(
            c.key_of(None, &[("x-dev", Some(b"ab")), ("x-team", Some(b"c"))]),
            c.key_of(None, &[("x-dev", Some(b"a")), ("x-team", Some(b"bc"))])
        );
    }

    #[test]
    fn keys_hold_what_is_sent_derived_headers_included() {
        let key_by = |c: &DecisionCache, own: &[(&str, Option<&[u8]>)], dev: &[u8]| {
            let derived = [("x-dev", Cow::Borrowed(dev))];
            let offered = Offered {
                own,
                derived: &derived,
            };
            c.key(None, offered.iter())
        };
        let c = cache(Duration::from_secs(60), 10);
        let key = |own: &[(&str, Option<&[u8]>)], dev: &[u8]| key_by(&c, own, dev);
        let alice = key(&[], b"alice");
        assert_eq!(alice, c.key_of(None, &[("x-dev", Some(b"alice"))]));
        assert_ne!(alice, key(&[], b"bob"));
        // A message header comes first, as on the wire.
        let bob: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"bob"))];
        assert_eq!(key(bob, b"alice"), key(&[], b"bob"));
        // A message header that cannot be sent does not hide what is sent.
        let unsendable: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"a\nb"))];
        assert_eq!(key(unsendable, b"alice"), alice);
        assert_ne!(key(unsendable, b"alice"), key(unsendable, b"bob"));
        // The same among a message's own headers, derived ones or not.
        assert_ne!(
            c.key_of(None, &[("x-dev", Some(b"a\nb")), ("x-dev", Some(b"alice"))]),
            c.key_of(None, &[("x-dev", Some(b"a\nb")), ("x-dev", Some(b"bob"))])
        );
        // Nor does one past the byte limit.
        let tight = cache_for(
            Duration::from_secs(60),
            10,
            HeaderForwarding::default().max_bytes(12),
        );
        let big: &[(&str, Option<&[u8]>)] = &[("x-dev", Some(b"a-long-value"))];
        assert_ne!(key_by(&tight, big, b"alice"), key_by(&tight, big, b"bob"));
    }

    #[test]
    fn a_key_reads_the_headers_only_up_to_the_last_routing_header() {
        let c = cache(Duration::from_secs(60), 10);
        let headers: &[(&str, &[u8])] = &[
            ("traceparent", b"00-1"),
            ("x-team", b"t"),
            ("x-dev", b"alice"),
            ("x-dev", b"bob"),
            ("other", b"1"),
        ];
        // Each header read from an rdkafka message is a call into librdkafka.
        let mut read = 0;
        let key = c.key(
            None,
            headers.iter().map(|&(k, v)| {
                read += 1;
                (k, v)
            }),
        );
        assert_eq!(read, 3, "x-dev, the last routing header, is the third");
        assert_eq!(
            key,
            c.key_of(None, &[("x-dev", Some(b"alice")), ("x-team", Some(b"t"))])
        );
    }

    #[test]
    fn a_lookup_answers_a_hit_and_hands_a_miss_its_key() {
        let c = cache(Duration::from_secs(60), 10);
        let alice: &[(&str, &[u8])] = &[("traceparent", b"00-1"), ("x-dev", b"alice")];
        let key = c.lookup(Some("/a"), alice.iter().copied()).unwrap_err();
        assert_eq!(key, c.key_of(Some("/a"), &[("x-dev", Some(b"alice"))]));
        c.insert(key, true);
        assert_eq!(c.lookup(Some("/a"), alice.iter().copied()), Ok(true));
        assert!(c.lookup(Some("/b"), alice.iter().copied()).is_err());
    }

    #[test]
    fn a_huge_key_does_not_stay_in_the_threads_key_buffer() {
        let c = cache(Duration::from_secs(60), 10);
        let huge = format!("/{}", "a".repeat(64 * 1024));
        let key = c
            .lookup(Some(&huge), [("x-dev", &b"alice"[..])])
            .unwrap_err();
        assert!(key.len() > huge.len());
        let kept = KEY_SCRATCH.with(|scratch| scratch.borrow().capacity());
        assert!(kept <= SCRATCH_KEEP, "{kept} bytes kept");
    }

    #[test]
    fn a_lookup_made_while_reading_the_headers_of_another_still_answers() {
        let c = cache(Duration::from_secs(60), 10);
        c.insert(c.key_of(None, &[("x-dev", Some(b"bob"))]), false);
        let mut inner = None;
        let outer = c.lookup(
            None,
            std::iter::once(("x-dev", &b"alice"[..])).inspect(|_| {
                inner = Some(c.lookup(None, [("x-dev", &b"bob"[..])]));
            }),
        );
        assert_eq!(inner, Some(Ok(false)));
        assert_eq!(
            outer.unwrap_err(),
            c.key_of(None, &[("x-dev", Some(b"alice"))])
        );
    }

    #[test]
    fn answers_expire_after_the_ttl() {
        let fresh = cache(Duration::from_secs(600), 10);
        fresh.insert(b"k".to_vec(), true);
        assert_eq!(fresh.get(b"k"), Some(true));
        assert_eq!(fresh.get(b"other"), None);
        // Well past the TTL, however coarse the clock (ticks of up to 10 ms).
        let short = cache(Duration::from_millis(30), 10);
        short.insert(b"k".to_vec(), true);
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(short.get(b"k"), None);
        // A TTL of zero expires an answer at once.
        let none = cache(Duration::ZERO, 10);
        none.insert(b"k".to_vec(), true);
        assert_eq!(none.get(b"k"), None);
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
