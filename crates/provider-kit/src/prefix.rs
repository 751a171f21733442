//! Prompt-prefix records: hashes of what a prompt cache keys on, block by block, and the
//! first block that changed since the previous request of the same conversation.
//!
//! A provider feeds [`PrefixBuilder`] the bytes of each block in wire order as it
//! serializes the request, without cache markers (a marker is where a cache entry ends, not
//! part of what it holds; markers move so the newest messages are cached within
//! Anthropic's budget of four). [`PrefixTracker`] compares each record with the
//! conversation's previous one, so a cache miss is explained rather than guessed at.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use dispatch_wire::{Id, PrefixBlock, PrefixBlockRef, PromptPrefix};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// Conversations whose last record is kept for comparison.
const DEFAULT_CAPACITY: usize = 1024;

/// A 64-bit hash as 16 lowercase hex digits.
pub fn hex(hash: u64) -> String {
    format!("{hash:016x}")
}

/// Builds one request's record while the request is serialized.
#[derive(Default)]
pub struct PrefixBuilder {
    hasher: Xxh3,
    blocks: Vec<PrefixBlock>,
    total: u64,
}

impl PrefixBuilder {
    pub fn new() -> PrefixBuilder {
        PrefixBuilder::default()
    }

    /// Adds the next block: its bytes as the cache sees them, and whether the request marks
    /// a breakpoint after it.
    pub fn push(&mut self, at: PrefixBlockRef, bytes: &[u8], breakpoint: bool) {
        self.hasher.update(bytes);
        self.total += bytes.len() as u64;
        self.blocks.push(PrefixBlock {
            at,
            bytes: bytes.len() as u64,
            hash: hex(xxh3_64(bytes)),
            prefix_hash: hex(self.hasher.digest()),
            breakpoint,
        });
    }

    /// Breakpoints marked so far.
    pub fn breakpoints(&self) -> usize {
        self.blocks.iter().filter(|b| b.breakpoint).count()
    }

    pub fn finish(self, provider: &str, model: &str) -> PromptPrefix {
        PromptPrefix {
            provider: provider.to_owned(),
            model: model.to_owned(),
            blocks: self.blocks,
            total_bytes: self.total,
            first_difference: None,
        }
    }
}

/// What is kept of a conversation's last record: each block and its prefix hash.
type Kept = Vec<(PrefixBlockRef, String)>;

#[derive(Default)]
struct Last {
    by_conversation: HashMap<Id, Kept>,
    /// Insertion order, oldest first, for eviction.
    order: VecDeque<Id>,
}

/// The last record of each recent conversation, per provider instance.
pub struct PrefixTracker {
    capacity: usize,
    last: Mutex<Last>,
}

impl Default for PrefixTracker {
    fn default() -> PrefixTracker {
        PrefixTracker::new(DEFAULT_CAPACITY)
    }
}

impl PrefixTracker {
    pub fn new(capacity: usize) -> PrefixTracker {
        PrefixTracker {
            capacity: capacity.max(1),
            last: Mutex::default(),
        }
    }

    /// Fills `first_difference` from the conversation's previous record, remembers this one,
    /// and logs it (debug; info when the prefix changed, naming the block).
    pub fn record(&self, conversation: Option<&Id>, mut prefix: PromptPrefix) -> Arc<PromptPrefix> {
        let kept: Kept = prefix
            .blocks
            .iter()
            .map(|b| (b.at.clone(), b.prefix_hash.clone()))
            .collect();
        if let Some(conversation) = conversation {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(previous) = last.by_conversation.get(conversation) {
                prefix.first_difference = first_difference(previous, &prefix.blocks);
            } else {
                last.order.push_back(conversation.clone());
                if last.order.len() > self.capacity {
                    if let Some(oldest) = last.order.pop_front() {
                        last.by_conversation.remove(&oldest);
                    }
                }
            }
            last.by_conversation.insert(conversation.clone(), kept);
        }
        match &prefix.first_difference {
            Some(at) => tracing::info!(
                conversation_id = conversation.map(|c| &**c),
                first_difference = ?at,
                blocks = prefix.blocks.len(),
                total_bytes = prefix.total_bytes,
                "Prompt prefix changed since the previous request; the cache cannot be read past this block"
            ),
            None => tracing::debug!(
                conversation_id = conversation.map(|c| &**c),
                blocks = prefix.blocks.len(),
                total_bytes = prefix.total_bytes,
                "Prompt prefix recorded"
            ),
        }
        Arc::new(prefix)
    }
}

/// The first block whose prefix hash differs from the previous record's block at the same
/// position; when every shared block matches but the new request is shorter, the first
/// block it lost.
fn first_difference(previous: &Kept, blocks: &[PrefixBlock]) -> Option<PrefixBlockRef> {
    for (i, (at, hash)) in previous.iter().enumerate() {
        match blocks.get(i) {
            Some(block) if block.at == *at && block.prefix_hash == *hash => {}
            Some(block) => return Some(block.at.clone()),
            None => return Some(at.clone()),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;

    fn message(index: u32) -> PrefixBlockRef {
        PrefixBlockRef::Message {
            index,
            role: "user".to_owned(),
        }
    }

    fn record(system: &str, messages: &[&str]) -> PromptPrefix {
        let mut b = PrefixBuilder::new();
        b.push(PrefixBlockRef::Tools { count: 1 }, b"[tool]", true);
        b.push(
            PrefixBlockRef::System {
                index: 0,
                name: "stable".to_owned(),
            },
            system.as_bytes(),
            true,
        );
        for (i, m) in messages.iter().enumerate() {
            b.push(message(i as u32), m.as_bytes(), i + 1 == messages.len());
        }
        b.finish("p", "m")
    }

    #[test]
    fn hashes_are_stable_and_cumulative() {
        let r = record("sys", &["a", "b"]);
        assert_eq!(r.blocks[0].hash, hex(xxh3_64(b"[tool]")));
        assert_eq!(r.blocks[0].prefix_hash, r.blocks[0].hash);
        assert_eq!(r.blocks[2].prefix_hash, hex(xxh3_64(b"[tool]sysa")));
        assert_eq!(r.total_bytes, 11);
        assert_eq!(r, record("sys", &["a", "b"]), "deterministic");
    }

    #[test]
    fn the_tracker_names_the_first_changed_block() {
        let t = PrefixTracker::default();
        let c = Id::from("c1");
        assert_eq!(
            t.record(Some(&c), record("sys", &["a"])).first_difference,
            None
        );
        assert_eq!(
            t.record(Some(&c), record("sys", &["a", "b"]))
                .first_difference,
            None,
            "an extension of the previous request"
        );
        assert_eq!(
            t.record(Some(&c), record("sys", &["a", "X", "c"]))
                .first_difference,
            Some(message(1))
        );
        assert_eq!(
            t.record(Some(&c), record("SYS", &["a", "X", "c"]))
                .first_difference,
            Some(PrefixBlockRef::System {
                index: 0,
                name: "stable".to_owned()
            })
        );
        assert_eq!(
            t.record(Some(&c), record("SYS", &["a"])).first_difference,
            Some(message(1)),
            "a shorter request names the first block it lost"
        );
        let other = Id::from("c2");
        assert_eq!(
            t.record(Some(&other), record("x", &[])).first_difference,
            None
        );
        assert_eq!(t.record(None, record("y", &[])).first_difference, None);
    }

    #[test]
    fn old_conversations_are_evicted() {
        let t = PrefixTracker::new(2);
        for name in ["a", "b", "c"] {
            t.record(Some(&Id::from(name)), record("s", &["m"]));
        }
        assert_eq!(
            t.record(Some(&Id::from("a")), record("CHANGED", &["m"]))
                .first_difference,
            None,
            "a was evicted, so there is nothing to compare with"
        );
        assert!(
            t.record(Some(&Id::from("c")), record("CHANGED", &["m"]))
                .first_difference
                .is_some()
        );
    }
}
