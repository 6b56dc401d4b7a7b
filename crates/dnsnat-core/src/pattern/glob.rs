//! A wildcard pattern for one label: `?` is one byte, `*` any run of bytes.

/// A label glob over lower-case bytes. Constructed only from labels that
/// contain at least one `?` or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Glob {
    bytes: Box<[u8]>,
    literal_len: usize,
    has_star: bool,
    /// Bytes before the first wildcard: a cheap reject before the full match.
    prefix_len: usize,
    /// Bytes after the last wildcard.
    suffix_len: usize,
}

impl Glob {
    pub(crate) fn new(bytes: &[u8]) -> Self {
        let literal_len = bytes.iter().filter(|b| !matches!(b, b'?' | b'*')).count();
        let prefix_len = bytes
            .iter()
            .position(|b| matches!(b, b'?' | b'*'))
            .unwrap_or(bytes.len());
        let suffix_len = bytes
            .iter()
            .rev()
            .position(|b| matches!(b, b'?' | b'*'))
            .unwrap_or(bytes.len());
        Self {
            bytes: bytes.into(),
            literal_len,
            has_star: bytes.contains(&b'*'),
            prefix_len,
            suffix_len,
        }
    }

    /// The literal bytes before the first wildcard.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.bytes[..self.prefix_len]
    }

    /// The literal bytes after the last wildcard.
    pub(crate) fn suffix(&self) -> &[u8] {
        &self.bytes[self.bytes.len() - self.suffix_len..]
    }

    pub(crate) fn has_star(&self) -> bool {
        self.has_star
    }

    pub(crate) fn literal_len(&self) -> usize {
        self.literal_len
    }

    pub(crate) fn is_lone_star(&self) -> bool {
        &*self.bytes == b"*"
    }

    /// Iterative matching with single-star backtracking: O(len(label) · len(glob))
    /// in the worst case, linear in practice. Labels are at most 63 bytes.
    pub(crate) fn matches(&self, label: &[u8]) -> bool {
        let pat = &*self.bytes;
        if !self.has_star && label.len() != pat.len() {
            return false;
        }
        if label.len() < self.prefix_len || label[..self.prefix_len] != pat[..self.prefix_len] {
            return false;
        }
        let (mut p, mut l) = (self.prefix_len, self.prefix_len);
        let mut star: Option<(usize, usize)> = None;
        while l < label.len() {
            match pat.get(p) {
                Some(b'*') => {
                    star = Some((p, l));
                    p += 1;
                }
                Some(&c) if c == b'?' || c == label[l] => {
                    p += 1;
                    l += 1;
                }
                _ => match star {
                    Some((sp, sl)) => {
                        p = sp + 1;
                        l = sl + 1;
                        star = Some((sp, sl + 1));
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|b| *b == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(p: &str, l: &str) -> bool {
        Glob::new(p.as_bytes()).matches(l.as_bytes())
    }

    #[test]
    fn question_mark_is_exactly_one_byte() {
        assert!(m("build-?", "build-1"));
        assert!(!m("build-?", "build-"));
        assert!(!m("build-?", "build-12"));
        assert!(m("??", "ab"));
        assert!(!m("??", "a"));
    }

    #[test]
    fn star_is_any_run() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*", "a"));
        assert!(m("a*z", "abcz"));
        assert!(!m("a*z", "abcza"));
        assert!(m("*-prod", "web-prod"));
        assert!(!m("*-prod", "web-prod2"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
    }

    #[test]
    fn properties() {
        let g = Glob::new(b"ab?*");
        assert!(g.has_star());
        assert_eq!(g.literal_len(), 2);
        assert!(!g.is_lone_star());
        assert!(Glob::new(b"*").is_lone_star());
        let g = Glob::new(b"web-*-?x");
        assert_eq!(g.prefix(), b"web-");
        assert_eq!(g.suffix(), b"x");
        assert_eq!(Glob::new(b"*").prefix(), b"");
        assert_eq!(Glob::new(b"*").suffix(), b"");
    }
}
