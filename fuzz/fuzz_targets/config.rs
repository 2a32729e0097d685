//! Any text as a configuration file: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telepresence_mock_server::{ConfigFile, ConfigOrigin};

fuzz_target!(|text: &str| {
    let _ = ConfigFile::parse(text, &ConfigOrigin::Env);
});
