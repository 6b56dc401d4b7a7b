//! The stub resolver's query path on arbitrary bytes, as UDP and as a TCP stream.
//!
//! Run: `cd crates/dnsnat-core && cargo +nightly fuzz run dns_query`.
#![no_main]

use dnsnat_core::dns::{
    IpStack, ProxyIpAllocator, Resource, ResourceTable, Stub, StubAction, StubOptions,
    TcpFrameDecoder, Transport,
};
use dnsnat_core::pattern::Pattern;
use libfuzzer_sys::fuzz_target;

fn stub() -> Stub {
    let resources = [
        ("web", "*.corp.example", IpStack::Dual),
        ("v4", "legacy.corp.example", IpStack::Ipv4),
        ("deep", "**.deep.example", IpStack::Ipv6),
        ("build", "build-?.ci.example", IpStack::Dual),
    ]
    .map(|(id, pattern, ip_stack)| Resource {
        id: id.into(),
        gateway_id: "gw".into(),
        pattern: Pattern::parse(pattern).expect("valid pattern"),
        ip_stack,
    });
    let table = ResourceTable::new(resources).expect("unique ids");
    Stub::new(table, ProxyIpAllocator::new(), StubOptions::default())
}

fuzz_target!(|data: &[u8]| {
    let mut s = stub();
    let mut out = Vec::new();
    for transport in [Transport::Udp, Transport::Tcp] {
        if s.handle_query(data, transport, &mut out) == StubAction::Answer {
            assert!(out.len() >= 12, "an answer has a header");
            assert_eq!(out[..2], data[..2], "the id is echoed");
            assert!(out[2] & 0x80 != 0, "an answer is a response");
        } else {
            assert!(out.is_empty());
        }
    }
    // The same bytes as a TCP stream of length-prefixed queries.
    let mut decoder = TcpFrameDecoder::new();
    decoder.push(data);
    while let Some(frame) = decoder.next_frame() {
        let frame = frame.to_vec();
        s.handle_query(&frame, Transport::Tcp, &mut out);
    }
    let _ = s.take_events();
    let _ = s.export_proxy_ips();
});
