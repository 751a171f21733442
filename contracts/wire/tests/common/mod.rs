//! Helpers shared by the integration tests of `dispatch-wire`.

use std::fmt::Write as _;

/// A readable line diff from `old` (committed) to `new` (generated): `-`/`+` lines with two
/// lines of context and the 1-based line numbers of each hunk.
pub fn line_diff(old: &str, new: &str) -> String {
    let old: Vec<&str> = old.lines().collect();
    let new: Vec<&str> = new.lines().collect();
    // Longest common subsequence table, from the ends.
    let mut lcs = vec![vec![0u32; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // (tag, old line number, new line number, text)
    let mut ops: Vec<(char, usize, usize, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            ops.push((' ', i + 1, j + 1, old[i]));
            i += 1;
            j += 1;
        } else if i < old.len() && (j == new.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', i + 1, j + 1, old[i]));
            i += 1;
        } else {
            ops.push(('+', i + 1, j + 1, new[j]));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let near_change = |k: usize| {
        ops[k.saturating_sub(CONTEXT)..(k + CONTEXT + 1).min(ops.len())]
            .iter()
            .any(|op| op.0 != ' ')
    };
    let mut out = String::new();
    let mut in_hunk = false;
    for (k, &(tag, old_line, new_line, text)) in ops.iter().enumerate() {
        if !near_change(k) {
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            let _ = writeln!(
                out,
                "@@ committed line {old_line}, generated line {new_line} @@"
            );
            in_hunk = true;
        }
        let _ = writeln!(out, "{tag}{text}");
    }
    out
}
