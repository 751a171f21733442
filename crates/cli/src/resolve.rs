//! Conversation ids as people type them: a unique prefix of at least 4 characters stands
//! for the whole id, and listings show the shortest prefix (8 characters or more) that
//! stays unique.

use anyhow::Result;
use dispatch_wire::ConversationMeta;

use crate::client::Client;

/// Fewest characters accepted as a prefix.
pub const MIN_PREFIX: usize = 4;
/// An input this long is taken as a whole id without asking the server.
pub const FULL_ID: usize = 32;
/// Characters of an id shown in listings and the usage line.
pub const SHORT_ID: usize = 8;

/// What to do with a typed id.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Long enough to be a whole id: use it as-is.
    Full(&'a str),
    /// Ask the server which conversations start with it.
    Prefix(&'a str),
}

pub fn classify(input: &str) -> Result<Lookup<'_>> {
    let input = input.trim();
    let is_id_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if !input.chars().all(is_id_char) {
        anyhow::bail!("`{input}` is not a conversation id (ids use A-Z a-z 0-9 _ . : -)");
    }
    let chars = input.chars().count();
    if chars >= FULL_ID {
        Ok(Lookup::Full(input))
    } else if chars >= MIN_PREFIX {
        Ok(Lookup::Prefix(input))
    } else {
        anyhow::bail!(
            "`{input}` is too short: give a conversation id or at least {MIN_PREFIX} of its first characters"
        )
    }
}

/// Picks the one conversation a prefix names among the server's candidates. An exact match
/// wins even when longer ids share it as a prefix.
pub fn pick(prefix: &str, candidates: &[ConversationMeta]) -> Result<String> {
    let matching: Vec<&ConversationMeta> = candidates
        .iter()
        .filter(|c| c.id.starts_with(prefix))
        .collect();
    if let Some(exact) = matching.iter().find(|c| &*c.id == prefix) {
        return Ok(exact.id.to_string());
    }
    match matching.as_slice() {
        [] => anyhow::bail!("no conversation starts with `{prefix}` (see `dispatch list`)"),
        [one] => Ok(one.id.to_string()),
        several => {
            const SHOWN: usize = 10;
            let mut message = format!(
                "`{prefix}` matches {} conversations; give more characters:",
                several.len()
            );
            for c in several.iter().take(SHOWN) {
                message.push_str(&format!("\n  {}  {}", c.id, c.title));
            }
            if several.len() > SHOWN {
                message.push_str(&format!("\n  … and {} more", several.len() - SHOWN));
            }
            anyhow::bail!(message)
        }
    }
}

/// Resolves a typed id or prefix to a whole conversation id.
pub async fn resolve(client: &Client, input: &str) -> Result<String> {
    match classify(input)? {
        Lookup::Full(id) => Ok(id.to_owned()),
        Lookup::Prefix(prefix) => {
            let candidates = client.conversations(Some(prefix), None, None).await?;
            pick(prefix, &candidates)
        }
    }
}

/// The shortest prefix (of at least [`SHORT_ID`] characters) naming `id` alone on the
/// server, for showing an id someone may type back; the whole id when the server cannot be
/// asked. Ids that start with a timestamp (UUIDv7) share their first 8 characters with every
/// conversation created in the same minute, so asking matters.
pub async fn display_id(client: &Client, id: &str) -> String {
    let head = short(id);
    if head.len() == id.len() {
        return id.to_owned();
    }
    match client.conversations(Some(head), None, None).await {
        Ok(list) => {
            let all: Vec<&str> = list.iter().map(|c| &*c.id).collect();
            unique_prefixes(&[id], &all)
                .pop()
                .unwrap_or_else(|| id.to_owned())
        }
        Err(_) => id.to_owned(),
    }
}

/// The first [`SHORT_ID`] characters of an id.
pub fn short(id: &str) -> &str {
    match id.char_indices().nth(SHORT_ID) {
        Some((end, _)) => &id[..end],
        None => id,
    }
}

/// For each id, the shortest prefix of at least [`SHORT_ID`] characters that no other id in
/// `all` shares, so every id a listing shows resolves back to its conversation.
pub fn unique_prefixes(ids: &[&str], all: &[&str]) -> Vec<String> {
    let mut sorted: Vec<&str> = all.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    ids.iter()
        .map(|id| {
            let shared = sorted
                .iter()
                .filter(|other| *other != id)
                .map(|other| common_prefix_chars(id, other))
                .max()
                .unwrap_or(0);
            id.chars().take(SHORT_ID.max(shared + 1)).collect()
        })
        .collect()
}

fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use dispatch_wire::ConversationStatus;
    use expect_test::{Expect, expect};

    use super::*;

    fn meta(id: &str, title: &str) -> ConversationMeta {
        ConversationMeta {
            id: id.into(),
            title: title.to_owned(),
            created_at: 0,
            last_activity_at: 0,
            status: ConversationStatus::Idle,
            workspace_id: "default".to_owned(),
            model: None,
            compacted_from: None,
        }
    }

    #[track_caller]
    fn check(input: &str, candidates: &[(&str, &str)], expect: Expect) {
        let candidates: Vec<ConversationMeta> =
            candidates.iter().map(|(id, t)| meta(id, t)).collect();
        let actual = match classify(input) {
            Err(err) => format!("error: {err}"),
            Ok(Lookup::Full(id)) => format!("full: {id}"),
            Ok(Lookup::Prefix(prefix)) => match pick(prefix, &candidates) {
                Ok(id) => format!("picked: {id}"),
                Err(err) => format!("error: {err}"),
            },
        };
        expect.assert_eq(&actual);
    }

    const UUID: &str = "0199a5c2-7f3e-7c1a-9b2d-4e5f6a7b8c9d";

    #[test]
    fn too_short_is_refused() {
        check(
            "abc",
            &[("abcdef", "x")],
            expect![
                "error: `abc` is too short: give a conversation id or at least 4 of its first characters"
            ],
        );
    }

    #[test]
    fn characters_no_id_has_are_refused() {
        check(
            "ab/cd",
            &[],
            expect!["error: `ab/cd` is not a conversation id (ids use A-Z a-z 0-9 _ . : -)"],
        );
    }

    #[test]
    fn a_full_length_id_is_used_as_is() {
        check(
            UUID,
            &[],
            expect!["full: 0199a5c2-7f3e-7c1a-9b2d-4e5f6a7b8c9d"],
        );
    }

    #[test]
    fn one_match_is_picked() {
        check(
            "0199",
            &[(UUID, "fix the bug")],
            expect!["picked: 0199a5c2-7f3e-7c1a-9b2d-4e5f6a7b8c9d"],
        );
    }

    #[test]
    fn candidates_the_server_sent_that_do_not_match_are_ignored() {
        check(
            "0199",
            &[("abcd-1", "other"), (UUID, "fix the bug")],
            expect!["picked: 0199a5c2-7f3e-7c1a-9b2d-4e5f6a7b8c9d"],
        );
    }

    #[test]
    fn no_match_is_an_error() {
        check(
            "ffff",
            &[],
            expect!["error: no conversation starts with `ffff` (see `dispatch list`)"],
        );
    }

    #[test]
    fn several_matches_list_the_candidates() {
        check(
            "0199",
            &[("0199a5c2-1", "first"), ("0199a5c2-2", "second")],
            expect![[r#"
                error: `0199` matches 2 conversations; give more characters:
                  0199a5c2-1  first
                  0199a5c2-2  second"#]],
        );
    }

    #[test]
    fn an_exact_match_beats_longer_ids_sharing_it() {
        check(
            "conv-1",
            &[("conv-1", "a"), ("conv-10", "b")],
            expect!["picked: conv-1"],
        );
    }

    #[test]
    fn short_ids_grow_until_unique() {
        let all = ["0199a5c2-aaaa", "0199a5c2-aabb", "0199ffff-0000", "short"];
        let shown = unique_prefixes(&all, &all);
        expect![[r#"
            [
                "0199a5c2-aaa",
                "0199a5c2-aab",
                "0199ffff",
                "short",
            ]"#]]
        .assert_eq(&format!("{shown:#?}"));
        assert_eq!(short(UUID), "0199a5c2");
        assert_eq!(short("abc"), "abc");
    }
}
