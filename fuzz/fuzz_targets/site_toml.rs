//! The site file parser never panics; what it accepts passes the site's own checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(site) = leasegate::config::parse_site(text, std::path::Path::new("site.toml")) {
        assert!(site.problems().is_empty());
        // Export and re-import give the same site.
        let again = leasegate::config::parse_site(
            &leasegate::config::site_to_toml(&site),
            std::path::Path::new("site.toml"),
        )
        .expect("exported site re-imports");
        assert_eq!(again, site);
    }
});
