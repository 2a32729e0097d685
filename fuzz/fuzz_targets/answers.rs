//! Any status and body from an API server: never a panic; an answer only for
//! a success status and a body that is `true` or `false`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepresence_kafka::ErrorKind;
use telepresence_kafka::fuzzing;

fuzz_target!(|input: (u16, &[u8])| {
    let (status, body) = input;
    let success = (200..300).contains(&status);
    match fuzzing::consume_here(status, body) {
        Ok(answer) => {
            assert!(success);
            assert_eq!(body.trim_ascii(), if answer { &b"true"[..] } else { &b"false"[..] });
        }
        Err(e) if success => assert_eq!(e.kind(), ErrorKind::BadAnswer),
        Err(e) => assert_eq!(e.status(), Some(status)),
    }
    if let Ok(_) = fuzzing::intercept_info(status, body) {
        assert!(success);
    }
});
