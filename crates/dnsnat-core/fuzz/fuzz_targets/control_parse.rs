//! Control packets (what a peer holding a key can put in the tunnel) on
//! arbitrary bytes: parsing never panics, a parsed body respects the limits,
//! and building what was parsed gives a packet that parses to the same message.
#![no_main]

use dnsnat_core::control::{MAX_BODY_LEN, build, is_control, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let control = is_control(data);
    if let Ok(msg) = parse(data) {
        assert!(control, "only a control packet parses");
        assert!(msg.body.len() <= MAX_BODY_LEN);
        let again = build(msg.kind, msg.body).expect("a parsed body fits");
        let back = parse(&again).expect("a built packet parses");
        assert_eq!(back.kind.to_byte(), msg.kind.to_byte());
        assert_eq!(back.body, msg.body);
    }
    // The same bytes as a body of every kind.
    if let Some((&kind, rest)) = data.split_first() {
        let body = String::from_utf8_lossy(rest);
        match build(dnsnat_core::control::MessageType::from_byte(kind), &body) {
            Ok(packet) => {
                assert!(is_control(&packet));
                assert_eq!(parse(&packet).expect("a built packet parses").body, body);
            }
            Err(_) => assert!(body.len() > MAX_BODY_LEN),
        }
    }
});
