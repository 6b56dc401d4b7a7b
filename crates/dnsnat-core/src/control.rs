//! Control packets: how client and gateway talk inside the tunnel (docs/architecture.md#control-protocol).
//!
//! A control packet is an IPv6 packet with source and destination `::` and
//! next-header `0xFF` (reserved). No real packet can carry that combination, so
//! recognising one costs a few byte comparisons on the hot path and can never
//! misclassify user traffic. A control packet must never reach a TUN device.
//!
//! Payload: byte 0 the message type, byte 1 the version (1), bytes 2–7 zero,
//! then a UTF-8 JSON body of at most [`MAX_BODY_LEN`] bytes. The core frames
//! and unframes; the body is validated where its meaning lives (TypeScript),
//! which also counts the bodies it rejects.

use thiserror::Error;

/// Length of the fixed IPv6 header that carries a control message.
pub const IPV6_HEADER_LEN: usize = 40;
/// Type, version and six reserved zero bytes.
pub const CONTROL_HEADER_LEN: usize = 8;
/// Largest body accepted or produced: keeps every control packet well below
/// the tunnel MTU of 1280, so it is never fragmented.
pub const MAX_BODY_LEN: usize = 1200;
/// The only version this build speaks.
pub const VERSION: u8 = 1;
/// The reserved IPv6 next-header value that marks a control packet.
pub const NEXT_HEADER: u8 = 0xFF;

/// Message types. Unknown types are carried as [`MessageType::Unknown`] so the
/// receiver can count and ignore them (a newer peer must not be an error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    AssignedIps,
    DomainStatus,
    Goodbye,
    Unknown(u8),
}

impl MessageType {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0 => Self::AssignedIps,
            1 => Self::DomainStatus,
            2 => Self::Goodbye,
            other => Self::Unknown(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            Self::AssignedIps => 0,
            Self::DomainStatus => 1,
            Self::Goodbye => 2,
            Self::Unknown(b) => b,
        }
    }
}

/// Why a packet could not be read as a control packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ControlError {
    #[error("not a control packet (version, next header or addresses)")]
    NotControl,
    #[error("control packet shorter than its headers")]
    Truncated,
    #[error("control packet payload length {declared} disagrees with its size {actual}")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("unsupported control version {0}")]
    Version(u8),
    #[error("reserved control header bytes are not zero")]
    Reserved,
    #[error("control body of {0} bytes exceeds {MAX_BODY_LEN}")]
    BodyTooLarge(usize),
    #[error("control body is not UTF-8")]
    NotUtf8,
}

/// A control message as read from a packet, borrowing its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMessage<'a> {
    pub kind: MessageType,
    pub body: &'a str,
}

/// Whether `packet` is a control packet. Cheap: checks version, next header and
/// the two all-zero addresses, nothing else.
pub fn is_control(packet: &[u8]) -> bool {
    packet.len() >= IPV6_HEADER_LEN
        && packet[0] >> 4 == 6
        && packet[6] == NEXT_HEADER
        && packet[8..40].iter().all(|&b| b == 0)
}

/// Reads a control packet; any other packet is an error, never a panic.
pub fn parse(packet: &[u8]) -> Result<ControlMessage<'_>, ControlError> {
    if !is_control(packet) {
        return Err(ControlError::NotControl);
    }
    if packet.len() < IPV6_HEADER_LEN + CONTROL_HEADER_LEN {
        return Err(ControlError::Truncated);
    }
    let declared = usize::from(u16::from_be_bytes([packet[4], packet[5]]));
    let payload = &packet[IPV6_HEADER_LEN..];
    if declared != payload.len() {
        return Err(ControlError::LengthMismatch {
            declared,
            actual: payload.len(),
        });
    }
    let kind = MessageType::from_byte(payload[0]);
    if payload[1] != VERSION {
        return Err(ControlError::Version(payload[1]));
    }
    if payload[2..CONTROL_HEADER_LEN].iter().any(|&b| b != 0) {
        return Err(ControlError::Reserved);
    }
    let body = &payload[CONTROL_HEADER_LEN..];
    if body.len() > MAX_BODY_LEN {
        return Err(ControlError::BodyTooLarge(body.len()));
    }
    let body = std::str::from_utf8(body).map_err(|_| ControlError::NotUtf8)?;
    Ok(ControlMessage { kind, body })
}

/// Builds a control packet carrying `body`.
pub fn build(kind: MessageType, body: &str) -> Result<Vec<u8>, ControlError> {
    if body.len() > MAX_BODY_LEN {
        return Err(ControlError::BodyTooLarge(body.len()));
    }
    let payload_len = CONTROL_HEADER_LEN + body.len();
    let mut packet = vec![0u8; IPV6_HEADER_LEN + payload_len];
    packet[0] = 0x60;
    // Bounded by MAX_BODY_LEN above, so the payload length fits in 16 bits.
    packet[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    packet[6] = NEXT_HEADER;
    packet[7] = 64;
    packet[IPV6_HEADER_LEN] = kind.to_byte();
    packet[IPV6_HEADER_LEN + 1] = VERSION;
    packet[IPV6_HEADER_LEN + CONTROL_HEADER_LEN..].copy_from_slice(body.as_bytes());
    Ok(packet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_packet_is_recognised_and_round_trips() {
        let body = r#"{"resource":"web","domain":"app.corp.example","proxy_ips":[],"seq":1}"#;
        let p = build(MessageType::AssignedIps, body).unwrap();
        assert!(is_control(&p));
        let m = parse(&p).unwrap();
        assert_eq!(m.kind, MessageType::AssignedIps);
        assert_eq!(m.body, body);
    }

    #[test]
    fn a_real_ipv6_packet_is_not_control() {
        let mut p = build(MessageType::Goodbye, "{}").unwrap();
        p[6] = 17; // UDP
        assert!(!is_control(&p));
        let mut p = build(MessageType::Goodbye, "{}").unwrap();
        p[23] = 1; // source ::1
        assert!(!is_control(&p));
        let mut p = build(MessageType::Goodbye, "{}").unwrap();
        p[0] = 0x45; // IPv4
        assert!(!is_control(&p));
    }

    #[test]
    fn unknown_types_are_carried_not_rejected() {
        let p = build(MessageType::Unknown(9), "{}").unwrap();
        assert_eq!(parse(&p).unwrap().kind, MessageType::Unknown(9));
    }

    #[test]
    fn oversized_bodies_are_refused_both_ways() {
        let big = "x".repeat(MAX_BODY_LEN + 1);
        assert_eq!(
            build(MessageType::DomainStatus, &big),
            Err(ControlError::BodyTooLarge(MAX_BODY_LEN + 1))
        );
        let ok = "x".repeat(MAX_BODY_LEN);
        let mut p = build(MessageType::DomainStatus, &ok).unwrap();
        p.push(b'x');
        let len = (p.len() - IPV6_HEADER_LEN) as u16;
        p[4..6].copy_from_slice(&len.to_be_bytes());
        assert_eq!(parse(&p), Err(ControlError::BodyTooLarge(MAX_BODY_LEN + 1)));
    }

    #[test]
    fn malformed_headers_are_errors() {
        let p = build(MessageType::Goodbye, "{}").unwrap();
        let mut v = p.clone();
        v[IPV6_HEADER_LEN + 1] = 2;
        assert_eq!(parse(&v), Err(ControlError::Version(2)));
        let mut r = p.clone();
        r[IPV6_HEADER_LEN + 5] = 1;
        assert_eq!(parse(&r), Err(ControlError::Reserved));
        let mut l = p.clone();
        l[5] += 1;
        assert!(matches!(
            parse(&l),
            Err(ControlError::LengthMismatch { .. })
        ));
        let mut u = build(MessageType::Goodbye, "ab").unwrap();
        let n = u.len();
        u[n - 1] = 0xFF;
        assert_eq!(parse(&u), Err(ControlError::NotUtf8));
        assert_eq!(
            parse(&p[..IPV6_HEADER_LEN + 3]),
            Err(ControlError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1400)) {
            let _ = is_control(&bytes);
            let _ = parse(&bytes);
        }

        #[test]
        fn any_body_within_limit_round_trips(kind in any::<u8>(), body in "\\PC{0,300}") {
            prop_assume!(body.len() <= MAX_BODY_LEN);
            let p = build(MessageType::from_byte(kind), &body).unwrap();
            prop_assert!(is_control(&p));
            let m = parse(&p).unwrap();
            prop_assert_eq!(m.kind.to_byte(), kind);
            prop_assert_eq!(m.body, body.as_str());
        }
    }
}
