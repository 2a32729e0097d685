//! `path` and `containerPort` read like Go's `FormValue`, from a URL query
//! and a form body: never a panic, and a port is accepted only when it is
//! plain digits up to 65535.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepresence_mock_server::fuzzing;

fuzz_target!(|input: (&[u8], &[u8])| {
    let (query, body) = input;
    let (_path, port) = fuzzing::form_values(query, body);
    if let Ok(number) = fuzzing::parse_container_port(&port) {
        assert!(port.iter().all(u8::is_ascii_digit));
        let digits = std::str::from_utf8(&port).unwrap();
        assert_eq!(digits.parse::<u32>().unwrap_or(0), u32::from(number));
    }
});
