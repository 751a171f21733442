#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The boot sweep: conversations a crash left `active` are `idle` after the next boot.

mod common;

use std::sync::Arc;

use common::*;
use dispatch_kernel::abi::{CONVERSATION_STORE, Extension};
use dispatch_kernel::host::Host;
use dispatch_wire::ConversationStatus;
use tempfile::TempDir;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_left_active_are_idle_after_boot() {
    let dir = Arc::new(TempDir::new().unwrap());
    {
        // A previous run that died mid-turn: statuses written, never reset.
        let extensions: Vec<Arc<dyn Extension>> = supporting();
        let mut host = Host::new(extensions, host_config(dir.path(), "")).unwrap();
        host.activate().await.unwrap();
        let store = host.services().get(&CONVERSATION_STORE).unwrap();
        for id in ["stuck-1", "stuck-2", "fine"] {
            store.ensure(id, None).await.unwrap();
        }
        store
            .set_status("stuck-1", ConversationStatus::Active)
            .await
            .unwrap();
        store
            .set_status("stuck-2", ConversationStatus::Active)
            .await
            .unwrap();
        store
            .set_status("fine", ConversationStatus::Closed)
            .await
            .unwrap();
        host.deactivate().await;
    }
    let world = World::in_dir(dir, "").await;
    for (id, status) in [
        ("stuck-1", ConversationStatus::Idle),
        ("stuck-2", ConversationStatus::Idle),
        ("fine", ConversationStatus::Closed),
    ] {
        let meta = world.store.meta(id).await.unwrap().unwrap();
        assert_eq!(meta.status, status, "{id}");
    }
    let repaired = world
        .hooks
        .events()
        .into_iter()
        .filter(|e| matches!(e, HookEvent::Status(s) if s.status == ConversationStatus::Idle))
        .count();
    assert_eq!(repaired, 2);
    world.stop().await;
}
