//! Text helpers shared by the tools: bounded output, binary sniffing, line cutting.

/// Bytes at the start of a file that decide whether it is text.
pub(crate) const SNIFF_BYTES: usize = 8 * 1024;

/// Room kept at the end of a bounded output for the closing note.
const NOTE_ROOM: usize = 512;

/// An output that refuses lines once it reaches its cap (less room for a closing note).
#[derive(Debug)]
pub(crate) struct Bounded {
    text: String,
    cap: usize,
}

impl Bounded {
    pub(crate) fn new(cap: usize) -> Bounded {
        Bounded {
            text: String::new(),
            cap: cap.saturating_sub(NOTE_ROOM),
        }
    }

    /// Appends `line` and a newline, or returns `false` (appending nothing) when it does not
    /// fit.
    pub(crate) fn push_line(&mut self, line: &str) -> bool {
        if self.text.len() + line.len() + 1 > self.cap {
            return false;
        }
        self.text.push_str(line);
        self.text.push('\n');
        true
    }

    /// The text with `note` (one line, short) appended.
    pub(crate) fn finish(mut self, note: Option<String>) -> String {
        if let Some(note) = note {
            self.text.push_str(&note);
            self.text.push('\n');
        }
        if self.text.ends_with('\n') {
            self.text.pop();
        }
        self.text
    }
}

/// Whether a file starting with `sample` is binary: it has a NUL byte, or more invalid UTF-8
/// than a stray byte or two (about 3%). `complete` says `sample` is the whole file; if not,
/// a character cut at its end is not held against it.
pub(crate) fn looks_binary(sample: &[u8], complete: bool) -> bool {
    if sample.contains(&0) {
        return true;
    }
    let mut invalid = 0usize;
    let mut chunks = sample.utf8_chunks().peekable();
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let cut_at_end = last && !complete && chunk.invalid().len() < 4;
        if !cut_at_end {
            invalid += chunk.invalid().len();
        }
    }
    invalid > 4 && invalid * 32 > sample.len()
}

/// A line as shown: `kept` is its start (terminator removed), `total` its length in bytes
/// (so far, when `goes_on`). Lossy UTF-8, a trailing `\r` dropped, cut after `max_chars`
/// characters (or where `kept` ends short of it) with a marker giving the length.
pub(crate) fn show_line(kept: &[u8], total: u64, goes_on: bool, max_chars: usize) -> String {
    let cut_short = goes_on || (kept.len() as u64) < total;
    let over = if goes_on { "over " } else { "" };
    let body = match cut_short {
        true => kept,
        false => kept.strip_suffix(b"\r").unwrap_or(kept),
    };
    let text = String::from_utf8_lossy(body);
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}… [line truncated: {over}{total} bytes]", &text[..at]),
        None if cut_short => format!("{text}… [line truncated: {over}{total} bytes]"),
        None => text.into_owned(),
    }
}

/// `n` bytes for a human: `812 bytes`, `4.0 KiB`, `100.0 MiB`.
pub(crate) fn size(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if n < 1024 {
        format!("{n} bytes")
    } else if f < KIB * KIB {
        format!("{:.1} KiB", f / KIB)
    } else if f < KIB * KIB * KIB {
        format!("{:.1} MiB", f / (KIB * KIB))
    } else {
        format!("{:.1} GiB", f / (KIB * KIB * KIB))
    }
}

/// `1 line` / `3 lines`.
pub(crate) fn plural(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

/// `1 more line` / `3 more lines`.
pub(crate) fn more(n: u64, one: &str, many: &str) -> String {
    format!("{n} more {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_sniffing_tolerates_a_stray_byte_but_not_nul_or_noise() {
        assert!(!looks_binary(b"plain text\n", true));
        assert!(looks_binary(b"text\0more", true));
        assert!(!looks_binary(
            b"caf\xe9 ok and a long enough sentence",
            true
        ));
        assert!(looks_binary(&[0xff; 64], true));
        // A character cut by the sample's end is fine.
        assert!(!looks_binary("abc€".as_bytes().split_at(5).0, false));
    }

    #[test]
    fn long_lines_are_cut_with_their_length() {
        assert_eq!(
            show_line(b"abcdef\r", 7, false, 3),
            "abc… [line truncated: 7 bytes]"
        );
        assert_eq!(show_line(b"abc\r", 4, false, 3), "abc");
        assert_eq!(
            show_line(b"abc", 900, false, 10),
            "abc… [line truncated: 900 bytes]"
        );
        assert_eq!(
            show_line(b"abc", 3, true, 10),
            "abc… [line truncated: over 3 bytes]"
        );
    }
}
