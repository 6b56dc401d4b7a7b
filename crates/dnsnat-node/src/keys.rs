//! WireGuard keys: standard base64 Curve25519 keys, interchangeable with
//! `wg genkey` / `wg pubkey`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use boringtun::x25519::{PublicKey, StaticSecret};
use napi_derive::napi;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("{what}: expected a base64 WireGuard key (44 characters encoding 32 bytes)")]
    Malformed { what: &'static str },
}

fn decode32(text: &str, what: &'static str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|_| KeyError::Malformed { what })?;
    bytes.try_into().map_err(|_| KeyError::Malformed { what })
}

pub fn parse_private(text: &str) -> Result<StaticSecret, KeyError> {
    decode32(text, "private key").map(StaticSecret::from)
}

pub fn parse_public(text: &str) -> Result<PublicKey, KeyError> {
    decode32(text, "public key").map(PublicKey::from)
}

pub fn encode(bytes: &[u8; 32]) -> String {
    STANDARD.encode(bytes)
}

/// A new private key from the operating system's CSPRNG, clamped as
/// `wg genkey` clamps it, so the text is byte-identical in form.
pub fn generate_private() -> StaticSecret {
    let mut bytes = StaticSecret::random_from_rng(rand_core::OsRng).to_bytes();
    // x25519-dalek clamps when it multiplies, not when it stores; clamp here
    // so the key we print is the one `wg genkey` would have printed.
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
    StaticSecret::from(bytes)
}

fn to_napi(e: KeyError) -> napi::Error {
    napi::Error::new(napi::Status::InvalidArg, e.to_string())
}

/// A private key and its public key, base64.
#[napi(object)]
pub struct KeyPair {
    pub private_key: String,
    pub public_key: String,
}

/// Generates a WireGuard key pair (`dnsnat keygen`).
#[napi]
pub fn generate_keypair() -> KeyPair {
    let secret = generate_private();
    KeyPair {
        private_key: encode(&secret.to_bytes()),
        public_key: encode(PublicKey::from(&secret).as_bytes()),
    }
}

/// The public key of a base64 private key (`dnsnat pubkey`).
#[napi]
pub fn public_key_of(private_key: String) -> napi::Result<String> {
    let secret = parse_private(&private_key).map_err(to_napi)?;
    Ok(encode(PublicKey::from(&secret).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_base64() {
        let s = generate_private();
        let text = encode(&s.to_bytes());
        assert_eq!(text.len(), 44);
        assert_eq!(parse_private(&text).unwrap().to_bytes(), s.to_bytes());
    }

    #[test]
    fn generated_keys_are_clamped_like_wg_genkey() {
        let b = generate_private().to_bytes();
        assert_eq!(b[0] & 7, 0);
        assert_eq!(b[31] & 0x80, 0);
        assert_eq!(b[31] & 0x40, 0x40);
    }

    #[test]
    fn rejects_wrong_lengths_and_alphabets() {
        assert!(parse_public("AAAA").is_err());
        assert!(parse_public(&"*".repeat(44)).is_err());
        assert!(parse_private(&encode(&[1; 32])[..43]).is_err());
    }

    #[test]
    fn known_vector_matches_rfc7748() {
        // RFC 7748 §6.1: Alice's private key and public key.
        let private = [
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2,
            0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5,
            0x1d, 0xb9, 0x2c, 0x2a,
        ];
        let public = PublicKey::from(&StaticSecret::from(private));
        assert_eq!(
            public.as_bytes()[..4],
            [0x85, 0x20, 0xf0, 0x09],
            "x25519 base-point multiplication"
        );
    }
}
