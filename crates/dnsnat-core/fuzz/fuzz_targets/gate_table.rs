//! The gate table (buffers for names whose NAT is being set up) driven by
//! arbitrary operations and packets: nothing panics, a buffer never holds
//! more than `BUFFER_PACKETS`, nothing comes out that did not go in, and a
//! flushed or removed key holds nothing.
#![no_main]

use dnsnat_core::gate::{Admit, BUFFER_PACKETS, GateMode, GateTable};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut table = GateTable::new(GateMode::Buffer);
    let (mut admitted, mut out) = (0usize, 0usize);
    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        let key = u32::from(op >> 4) % 4;
        let len = usize::from(tail.first().copied().unwrap_or(0)) % 80;
        let packet = tail.get(1..1 + len).unwrap_or(&[]);
        rest = tail.get(1 + packet.len()..).unwrap_or(&[]);
        match op & 0x0f {
            0..=5 => match table.admit(&key, packet) {
                Admit::Pass => assert_eq!(table.mode(&key), GateMode::Pass),
                Admit::Buffered { .. } => admitted += 1,
            },
            6 => table.set_mode(key, GateMode::Pass),
            7 => table.set_mode(key, GateMode::Buffer),
            8 => {
                out += table.flush(&key).len();
                assert_eq!(table.buffered(&key), 0);
            }
            9 => out += table.discard(&key),
            10 => {
                out += table.remove(&key);
                assert_eq!(table.buffered(&key), 0);
            }
            11 => out += table.remove_where(|k| *k == key),
            _ => {}
        }
        for k in 0..4 {
            assert!(table.buffered(&k) <= BUFFER_PACKETS);
        }
    }
    let held: usize = (0..4).map(|k| table.buffered(&k)).sum();
    // Replaced SYNs and the oldest dropped at a full buffer leave fewer, never more.
    assert!(out + held <= admitted);
});
