//! Domain patterns (configuration) and names (from the wire) on arbitrary
//! text: parsing never panics, a parsed pattern re-parses from its own text to
//! the same pattern, and the three ways of matching agree.
#![no_main]

use dnsnat_core::pattern::{Pattern, PatternSet, is_hostname};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A pattern, then names to match it against, separated by spaces.
    let mut parts = text.split(' ');
    let Some(first) = parts.next() else { return };
    let Ok(pattern) = Pattern::parse(first) else {
        return;
    };
    let again = Pattern::parse(pattern.as_str()).expect("a pattern's own text parses");
    assert_eq!(again.as_str(), pattern.as_str());
    let mut set = PatternSet::new();
    set.insert(pattern.clone(), ());
    for name in parts {
        let matched = pattern.matches(name);
        let bare = name.strip_suffix('.').unwrap_or(name);
        if !is_hostname(bare) {
            assert!(!matched, "only host names match");
            continue;
        }
        let lower = bare.to_ascii_lowercase();
        let labels: Vec<&[u8]> = lower.split('.').map(str::as_bytes).collect();
        assert_eq!(pattern.matches_labels(&labels), matched);
        assert_eq!(set.matches(&labels).len() == 1, matched);
    }
});
