//! Kafka headers to HTTP headers: never a panic, and what comes out is
//! always valid HTTP within the byte limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepresence_kafka::HeaderForwarding;

fuzz_target!(|input: (Vec<(String, Option<Vec<u8>>)>, u16)| {
    let (headers, max) = input;
    let pairs: Vec<(&str, Option<&[u8]>)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
    let forwarded = HeaderForwarding::default().max_bytes(usize::from(max)).forward(pairs);
    let mut total = 0;
    for (name, value) in &forwarded.headers {
        assert!(http_valid(name.as_str().as_bytes(), value.as_bytes()));
        total += name.as_str().len() + value.len();
    }
    assert!(total <= usize::from(max));
    assert_eq!(forwarded.headers.len() + forwarded.dropped, headers.len());
});

fn http_valid(name: &[u8], value: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(b))
        && value.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}
