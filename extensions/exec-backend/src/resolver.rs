//! [`Resolver`]: the `EXEC` service — backends by computer id and path allowances.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use dispatch_kernel::abi::{ExecBackend, ExecError, ExecResolver};

use crate::config::Allowances;

/// The id of this machine's backend; `None` means it too.
pub const LOCAL: &str = "local";

/// The local backend, remote backends registered later (SSH), and the configured
/// allowances.
pub struct Resolver {
    local: Arc<dyn ExecBackend>,
    remotes: RwLock<BTreeMap<String, Arc<dyn ExecBackend>>>,
    allowances: Allowances,
}

impl Resolver {
    pub fn new(local: Arc<dyn ExecBackend>, allowances: Allowances) -> Resolver {
        Resolver {
            local,
            remotes: RwLock::new(BTreeMap::new()),
            allowances,
        }
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let remotes: Vec<String> = match self.remotes.read() {
            Ok(map) => map.keys().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().keys().cloned().collect(),
        };
        f.debug_struct("Resolver")
            .field("remotes", &remotes)
            .field("allowances", &self.allowances)
            .finish_non_exhaustive()
    }
}

impl ExecResolver for Resolver {
    fn backend(&self, computer_id: Option<&str>) -> Result<Arc<dyn ExecBackend>, ExecError> {
        let id = match computer_id {
            None | Some(LOCAL) => return Ok(self.local.clone()),
            Some(id) => id,
        };
        // A poisoned lock only means a writer panicked mid-insert; the map is still usable.
        let remotes = self.remotes.read().unwrap_or_else(|p| p.into_inner());
        remotes
            .get(id)
            .cloned()
            .ok_or_else(|| ExecError::UnknownComputer(id.to_string()))
    }

    fn register(&self, computer_id: &str, backend: Arc<dyn ExecBackend>) {
        if computer_id == LOCAL {
            tracing::warn!(
                computer = computer_id,
                "Refusing to replace the local backend"
            );
            return;
        }
        let mut remotes = self.remotes.write().unwrap_or_else(|p| p.into_inner());
        remotes.insert(computer_id.to_string(), backend);
    }

    fn allowed_roots(&self, workspace_id: Option<&str>) -> Vec<PathBuf> {
        let mut roots = self.allowances.global.clone();
        let extra = workspace_id
            .and_then(|id| self.allowances.workspaces.get(id))
            .into_iter()
            .flatten();
        for root in extra {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        roots
    }
}
