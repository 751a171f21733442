//! Streaming bytes as text: chunks may end inside a multi-byte character, so an incomplete
//! trailing sequence waits for the next chunk; invalid bytes become U+FFFD.

/// One stream's decoder.
#[derive(Debug, Default)]
pub(crate) struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text of `bytes` after what was pending, holding back an incomplete trailing
    /// character.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let split = self.pending.len() - incomplete_suffix(&self.pending);
        let text = String::from_utf8_lossy(&self.pending[..split]).into_owned();
        self.pending.drain(..split);
        text
    }

    /// Whatever is still pending (an incomplete character at the very end of the stream).
    pub(crate) fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

/// The length of an incomplete (but so far valid) UTF-8 sequence ending `bytes`.
pub(crate) fn incomplete_suffix(bytes: &[u8]) -> usize {
    let mut start = 0;
    loop {
        match std::str::from_utf8(&bytes[start..]) {
            Ok(_) => return 0,
            Err(err) => match err.error_len() {
                None => return bytes.len() - start - err.valid_up_to(),
                Some(bad) => start += err.valid_up_to() + bad,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[track_caller]
    fn check(chunks: &[&[u8]], expect: &[&str]) {
        let mut stream = Utf8Stream::default();
        let mut out: Vec<String> = chunks.iter().map(|c| stream.push(c)).collect();
        out.push(stream.finish());
        assert_eq!(out, expect);
    }

    #[test]
    fn holds_back_a_split_character() {
        check(&[b"a\xc3", b"\xa9b"], &["a", "\u{e9}b", ""]);
        check(&[b"\xe2", b"\x82", b"\xac"], &["", "", "\u{20ac}", ""]);
    }

    #[test]
    fn replaces_invalid_bytes_and_flushes_a_cut_end() {
        check(&[b"a\xffb\xe2\x82"], &["a\u{fffd}b", "\u{fffd}"]);
        check(&[b"\xc3", b"x"], &["", "\u{fffd}x", ""]);
    }
}
