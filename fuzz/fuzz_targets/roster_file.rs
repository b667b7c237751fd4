//! The `file` roster decoder never panics, and what it accepts is a well-formed snapshot.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = leasegate::pms::parse_roster(data) {
        let mut ids = std::collections::BTreeSet::new();
        for r in &s.residents {
            assert!(!r.id.trim().is_empty());
            assert!(ids.insert(r.id.clone()), "duplicate id accepted");
        }
    }
});
