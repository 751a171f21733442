//! Head-and-tail capture of one output stream within a byte cap: the first half of the cap
//! is kept as it arrives, the last half as a sliding tail, and everything between is only
//! counted.

use std::collections::VecDeque;

use dispatch_kernel::abi::CapturedOutput;

#[derive(Debug)]
pub(crate) struct Capture {
    head_cap: usize,
    tail_cap: usize,
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
}

impl Capture {
    /// Keeps at most `cap` bytes: `cap / 2` (rounded up) of head, the rest of tail.
    pub(crate) fn new(cap: usize) -> Capture {
        let head_cap = cap - cap / 2;
        Capture {
            head_cap,
            tail_cap: cap / 2,
            head: Vec::new(),
            tail: VecDeque::new(),
            total: 0,
        }
    }

    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.head.len() < self.head_cap {
            let take = (self.head_cap - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        if bytes.len() >= self.tail_cap {
            self.tail.clear();
            self.tail
                .extend(bytes[bytes.len() - self.tail_cap..].iter().copied());
            return;
        }
        self.tail.extend(bytes.iter().copied());
        let excess = self.tail.len().saturating_sub(self.tail_cap);
        self.tail.drain(..excess);
    }

    pub(crate) fn finish(self) -> CapturedOutput {
        let kept = (self.head.len() + self.tail.len()) as u64;
        let omitted = self.total - kept;
        let cut_at = (omitted > 0).then_some(self.head.len());
        let mut bytes = self.head;
        bytes.extend(self.tail);
        CapturedOutput {
            bytes,
            cut_at,
            omitted,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use proptest::prelude::*;

    use super::*;

    #[track_caller]
    fn check(cap: usize, chunks: &[&[u8]], expect: CapturedOutput) {
        let mut capture = Capture::new(cap);
        for chunk in chunks {
            capture.push(chunk);
        }
        assert_eq!(capture.finish(), expect);
    }

    #[test]
    fn keeps_everything_within_the_cap() {
        check(
            8,
            &[b"abc", b"def"],
            CapturedOutput {
                bytes: b"abcdef".to_vec(),
                cut_at: None,
                omitted: 0,
                total: 6,
            },
        );
    }

    #[test]
    fn keeps_head_and_tail_over_the_cap() {
        check(
            6,
            &[b"0123", b"456789"],
            CapturedOutput {
                bytes: b"012789".to_vec(),
                cut_at: Some(3),
                omitted: 4,
                total: 10,
            },
        );
    }

    #[test]
    fn a_zero_cap_only_counts() {
        check(
            0,
            &[b"abc"],
            CapturedOutput {
                bytes: Vec::new(),
                cut_at: Some(0),
                omitted: 3,
                total: 3,
            },
        );
    }

    proptest! {
        #[test]
        fn head_and_tail_are_the_input_ends(
            data in proptest::collection::vec(any::<u8>(), 0..2000),
            cap in 0usize..600,
            splits in proptest::collection::vec(1usize..300, 0..20),
        ) {
            let mut capture = Capture::new(cap);
            let mut rest: &[u8] = &data;
            for split in splits {
                let n = split.min(rest.len());
                capture.push(&rest[..n]);
                rest = &rest[n..];
            }
            capture.push(rest);
            let out = capture.finish();
            prop_assert_eq!(out.total, data.len() as u64);
            if data.len() <= cap {
                prop_assert_eq!(&out.bytes, &data);
                prop_assert_eq!(out.cut_at, None);
            } else {
                prop_assert_eq!(out.bytes.len(), cap);
                let cut = out.cut_at.unwrap_or(usize::MAX);
                prop_assert_eq!(&out.bytes[..cut], &data[..cut]);
                prop_assert_eq!(&out.bytes[cut..], &data[data.len() - (cap - cut)..]);
                prop_assert_eq!(out.omitted, (data.len() - cap) as u64);
            }
        }
    }
}
