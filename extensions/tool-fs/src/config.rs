//! `[extensions.tool-fs]`: the tools' limits. Every field has a default, so an absent table
//! works.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Bytes of file content `read_file` consumes for one answer (after skipping to
    /// `offset`); it stops there and says where to continue.
    pub max_read_bytes: usize,
    /// Lines `read_file` shows when the call gives no `limit` (also the largest `limit`).
    pub read_lines: usize,
    /// Characters of one line `read_file` shows before cutting it with a marker.
    pub max_line_chars: usize,
    /// Bytes of any one tool output (the kernel's own cap is larger, so our notes survive).
    pub max_output_bytes: usize,
    /// The largest file `edit_file` loads.
    pub max_edit_bytes: u64,
    /// Bytes of the diff `edit_file` returns.
    pub max_diff_bytes: usize,
    /// Paths `glob` lists.
    pub glob_limit: usize,
    /// Matching lines `grep` reports when the call gives no `maxResults` (also the most).
    pub grep_max_results: usize,
    /// Characters of one line `grep` shows.
    pub grep_line_chars: usize,
    /// The most context lines `grep` shows on each side of a match.
    pub grep_max_context: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_read_bytes: 256 * 1024,
            read_lines: 2000,
            max_line_chars: 2000,
            max_output_bytes: 60 * 1024,
            max_edit_bytes: 8 * 1024 * 1024,
            max_diff_bytes: 16 * 1024,
            glob_limit: 1000,
            grep_max_results: 500,
            grep_line_chars: 500,
            grep_max_context: 10,
        }
    }
}
