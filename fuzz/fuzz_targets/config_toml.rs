//! The deployment config parser never panics, and a refusal always says why.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(errors) =
        leasegate::config::parse(text, std::path::Path::new("/etc/leasegate/leasegate.toml"))
    {
        assert!(!errors.0.is_empty());
        assert!(errors.0.iter().all(|e| !e.reason.is_empty()));
    }
});
