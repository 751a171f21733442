//! Per-conversation async locks, so read-modify-write updates of one conversation's
//! records (metadata on append, settings) never lose each other. An entry lives only while
//! someone holds or waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedMutexGuard;

type Entry = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub(crate) struct ConversationLocks {
    map: Mutex<HashMap<String, Entry>>,
}

/// Holds one conversation's lock; removes the map entry when nobody else needs it.
pub(crate) struct ConversationGuard<'a> {
    locks: &'a ConversationLocks,
    id: String,
    entry: Entry,
    guard: Option<OwnedMutexGuard<()>>,
}

impl ConversationLocks {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // The map is only touched in short non-panicking sections; a poisoned lock still
        // holds a consistent map.
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for the lock of `conversation_id`.
    pub async fn lock(&self, conversation_id: &str) -> ConversationGuard<'_> {
        let entry = self
            .map()
            .entry(conversation_id.to_owned())
            .or_default()
            .clone();
        // Built before awaiting, so a cancelled wait still cleans the entry up.
        let mut guard = ConversationGuard {
            locks: self,
            id: conversation_id.to_owned(),
            entry: entry.clone(),
            guard: None,
        };
        guard.guard = Some(entry.lock_owned().await);
        guard
    }

    /// Locks two conversations in a fixed order (deadlock-free); one lock if they are equal.
    pub async fn lock_two(
        &self,
        a: &str,
        b: &str,
    ) -> (ConversationGuard<'_>, Option<ConversationGuard<'_>>) {
        if a == b {
            return (self.lock(a).await, None);
        }
        let (first, second) = if a < b { (a, b) } else { (b, a) };
        let first = self.lock(first).await;
        let second = self.lock(second).await;
        (first, Some(second))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

impl Drop for ConversationGuard<'_> {
    fn drop(&mut self) {
        self.guard.take();
        let mut map = self.locks.map();
        // Ours and the map's: nobody else holds or waits for this entry.
        if Arc::strong_count(&self.entry) == 2 {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_conversation_is_serialized_and_entries_are_removed() {
        let locks = Arc::new(ConversationLocks::default());
        let inside = Arc::new(AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (locks, inside) = (locks.clone(), inside.clone());
            tasks.push(tokio::spawn(async move {
                let _guard = locks.lock("c").await;
                assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for task in tasks {
            assert!(task.await.is_ok());
        }
        assert_eq!(locks.len(), 0);
        let (_a, b) = locks.lock_two("x", "x").await;
        assert!(b.is_none());
        assert_eq!(locks.len(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_no_entry() {
        let locks = ConversationLocks::default();
        let held = locks.lock("c").await;
        let waiting = locks.lock("c");
        drop(waiting);
        {
            let mut waiting = Box::pin(locks.lock("c"));
            assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        }
        drop(held);
        assert_eq!(locks.len(), 0);
    }

    async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = fut => Some(out),
            () = std::future::ready(()) => None,
        }
    }
}
