//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): every message is preceded
//! by its length as a 2-byte big-endian integer; a connection carries any number
//! of messages, and a read may end anywhere, even inside the length prefix.

/// A message longer than a 2-byte length can describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("DNS message of {0} bytes does not fit TCP framing (at most 65535)")]
pub struct FrameTooLong(pub usize);

/// Appends `message` with its length prefix to `out`.
pub fn encode_frame(message: &[u8], out: &mut Vec<u8>) -> Result<(), FrameTooLong> {
    let len = u16::try_from(message.len()).map_err(|_| FrameTooLong(message.len()))?;
    out.reserve(2 + message.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(())
}

/// Reassembles messages from the bytes of one TCP connection.
///
/// Usage: after each read, [`push`](Self::push) the bytes, then call
/// [`next_frame`](Self::next_frame) until it returns `None`. Memory stays bounded
/// by one partial message (at most 65,537 bytes) plus what one read delivered.
#[derive(Debug, Default)]
pub struct TcpFrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl TcpFrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, without its prefix. A zero-length frame yields
    /// an empty message (the stub drops it as unreadable).
    pub fn next_frame(&mut self) -> Option<&[u8]> {
        let rest = &self.buf[self.start..];
        if rest.len() < 2 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if rest.len() < 2 + len {
            return None;
        }
        let begin = self.start + 2;
        self.start = begin + len;
        Some(&self.buf[begin..begin + len])
    }

    /// Bytes received but not yet returned as a message (a partial frame when the
    /// connection closes is simply discarded).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn several_messages_in_one_read() {
        let mut wire = Vec::new();
        encode_frame(b"first", &mut wire).unwrap();
        encode_frame(b"", &mut wire).unwrap();
        encode_frame(b"second!", &mut wire).unwrap();
        assert_eq!(&wire[..2], &[0, 5]);
        let mut d = TcpFrameDecoder::new();
        d.push(&wire);
        assert_eq!(d.next_frame(), Some(&b"first"[..]));
        assert_eq!(d.next_frame(), Some(&b""[..]));
        assert_eq!(d.next_frame(), Some(&b"second!"[..]));
        assert_eq!(d.next_frame(), None);
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn split_inside_the_length_prefix_and_the_body() {
        let mut wire = Vec::new();
        encode_frame(&[7u8; 300], &mut wire).unwrap();
        let mut d = TcpFrameDecoder::new();
        d.push(&wire[..1]);
        assert_eq!(d.next_frame(), None);
        d.push(&wire[1..100]);
        assert_eq!(d.next_frame(), None);
        assert_eq!(d.pending(), 100);
        d.push(&wire[100..]);
        assert_eq!(d.next_frame().map(<[u8]>::len), Some(300));
    }

    #[test]
    fn oversized_messages_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            encode_frame(&vec![0; 65_536], &mut out),
            Err(FrameTooLong(65_536))
        );
        assert!(out.is_empty());
        assert!(encode_frame(&vec![0; 65_535], &mut out).is_ok());
    }

    proptest! {
        #[test]
        fn any_split_of_any_messages_reassembles(
            msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..8),
            cuts in prop::collection::vec(0usize..5000, 0..10),
        ) {
            let mut wire = Vec::new();
            for m in &msgs {
                encode_frame(m, &mut wire).unwrap();
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut d = TcpFrameDecoder::new();
            let mut got = Vec::new();
            for w in cuts.windows(2) {
                d.push(&wire[w[0]..w[1]]);
                while let Some(f) = d.next_frame() {
                    got.push(f.to_vec());
                }
            }
            prop_assert_eq!(got, msgs);
            prop_assert_eq!(d.pending(), 0);
        }
    }
}
