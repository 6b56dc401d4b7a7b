//! The client's state file (the proxy-IP table as JSON) on arbitrary text,
//! then the allocator seeded from it: nothing panics; whatever was accepted
//! never gives one address to two domains; and export → JSON → seed is a
//! fixed point (a restart never renumbers what the last run wrote).
#![no_main]

use std::collections::HashMap;

use dnsnat_core::dns::ProxyIpAllocator;
use dnsnat_core::dns::proxy_ip_json::{table_from_json, table_to_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = table_from_json(text) else {
        return;
    };
    let (mut allocator, _rejected) = ProxyIpAllocator::seed(&table);
    allocator.set_max_domains(64);
    // Use it a little: new names (evicting), and an idle sweep.
    for i in 0..8 {
        allocator.set_now(i * 1_000);
        let _ = allocator.get_or_allocate(&format!("n{i}.fuzz.example"));
    }
    allocator.release_idle(4_000);
    let exported = allocator.export();
    let mut owner = HashMap::new();
    for e in &exported.entries {
        for ip in e.ips.iter() {
            if let Some(other) = owner.insert(ip, e.domain.clone()) {
                panic!("{ip} belongs to {other} and {}", e.domain);
            }
        }
    }
    let json = table_to_json(&exported);
    let reread = table_from_json(&json).expect("our own JSON reads back");
    assert_eq!(reread, exported);
    let (reseeded, rejected) = ProxyIpAllocator::seed(&reread);
    assert!(rejected.is_empty(), "{rejected:?}");
    assert_eq!(reseeded.export().entries, exported.entries);
});
