//! Activation: manifests → dependency DAG → activation in topological order (ties by list
//! position), deactivation in reverse.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use semver::Version;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::abi::{Capability, Extension, Manifest, Tier};
use crate::host::registry::{Registry, RegistryCounts};
use crate::host::{Bus, Catalog, Filters, HostApi, Services};
use crate::{Error, KERNEL_API_VERSION, Result};
use dispatch_stdx::panic_message;

/// Which capabilities the host grants. `default` applies to every extension without an entry
/// in `per_extension`; `None` grants all.
///
/// In `dispatch.toml`:
/// ```toml
/// [host]
/// capabilities = ["fs", "network"]          # default grant
/// [host.grants]
/// tool-shell = ["fs", "shell"]              # per extension
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CapabilityGrants {
    #[serde(default, rename = "capabilities")]
    pub default: Option<BTreeSet<Capability>>,
    #[serde(default, rename = "grants")]
    pub per_extension: BTreeMap<String, BTreeSet<Capability>>,
}

impl CapabilityGrants {
    /// Grants every capability to everyone.
    pub fn all() -> CapabilityGrants {
        CapabilityGrants::default()
    }

    pub fn grants(&self, extension: &str, capability: Capability) -> bool {
        match self.per_extension.get(extension).or(self.default.as_ref()) {
            Some(set) => set.contains(&capability),
            None => true,
        }
    }
}

/// The host's share of `dispatch.toml`: capability grants and each extension's table.
#[derive(Debug, Clone, Default)]
pub struct HostConfig {
    pub grants: CapabilityGrants,
    /// Where extensions keep their files (databases, journals). Resolved by host-bin from
    /// `--data-dir`, `DISPATCH_DATA_DIR`, else `$XDG_DATA_HOME/dispatch` or
    /// `~/.local/share/dispatch`; empty in tests that do not set it.
    pub data_dir: std::path::PathBuf,
    /// `[extensions.<id>]` tables.
    pub extensions: BTreeMap<String, toml::Table>,
}

/// Where an extension stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionState {
    /// Planned, not activated yet.
    Pending,
    Active,
    /// Not running: it or a dependency failed; `reason` says which and why.
    Disabled {
        reason: String,
    },
    /// Was active, deactivated at shutdown.
    Deactivated,
}

impl std::fmt::Display for ExtensionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExtensionState::Pending => f.write_str("pending"),
            ExtensionState::Active => f.write_str("active"),
            ExtensionState::Disabled { reason } => write!(f, "disabled ({reason})"),
            ExtensionState::Deactivated => f.write_str("deactivated"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionStatus {
    pub id: String,
    pub version: Version,
    pub tier: Tier,
    pub state: ExtensionState,
}

/// What boot did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationReport {
    /// Extensions activated, in activation order.
    pub activated: Vec<String>,
    /// Standard extensions left out, with the reason.
    pub disabled: Vec<(String, String)>,
}

struct Slot {
    ext: Arc<dyn Extension>,
    manifest: Manifest,
    state: ExtensionState,
    token: Option<CancellationToken>,
}

/// The extension host: owns the extensions, the registry and the root cancellation token.
pub struct Host {
    kernel: Version,
    registry: Arc<Registry>,
    root: CancellationToken,
    config: HostConfig,
    slots: Vec<Slot>,
    /// Planned activation order (indexes into `slots`); empty until planned.
    plan: Vec<usize>,
    /// Indexes actually activated, in order.
    activated: Vec<usize>,
}

impl Host {
    /// A host for `extensions` (in `CORE_EXTENSIONS` order). Manifests are parsed here; an
    /// unreadable one or a duplicate id is an error before anything runs.
    pub fn new(extensions: Vec<Arc<dyn Extension>>, config: HostConfig) -> Result<Host> {
        let kernel = Version::parse(KERNEL_API_VERSION).map_err(|err| Error::Manifest {
            message: format!("kernel version: {err}"),
        })?;
        let mut slots = Vec::with_capacity(extensions.len());
        let mut seen = BTreeSet::new();
        for ext in extensions {
            let manifest = ext.manifest()?;
            if !seen.insert(manifest.id.clone()) {
                return Err(Error::DuplicateId { id: manifest.id });
            }
            slots.push(Slot {
                ext,
                manifest,
                state: ExtensionState::Pending,
                token: None,
            });
        }
        Ok(Host {
            kernel,
            registry: Arc::new(Registry::default()),
            root: CancellationToken::new(),
            config,
            slots,
            plan: Vec::new(),
            activated: Vec::new(),
        })
    }

    /// Pretends to be another kernel API version (for tests of version checks).
    pub fn with_kernel_version(mut self, kernel: Version) -> Host {
        self.kernel = kernel;
        self
    }

    /// Validates the graph and computes the activation order. Fatal problems (a cycle, a
    /// core extension that cannot run) are errors; a standard extension that cannot run is
    /// disabled together with its dependents. Returns the planned order.
    pub fn plan(&mut self) -> Result<Vec<String>> {
        // Edges dependency → dependent, for hard and satisfiable optional dependencies.
        let mut graph = DiGraph::<usize, ()>::with_capacity(self.slots.len(), 0);
        let nodes: Vec<NodeIndex> = (0..self.slots.len()).map(|i| graph.add_node(i)).collect();
        for (i, slot) in self.slots.iter().enumerate() {
            for dep in slot.manifest.depends_on.keys() {
                if let Some(d) = self.index_of(dep) {
                    graph.add_edge(nodes[d], nodes[i], ());
                }
            }
            for (dep, req) in &slot.manifest.optional {
                match self.index_of(dep) {
                    Some(d) if req.matches(&self.slots[d].manifest.version) => {
                        graph.add_edge(nodes[d], nodes[i], ());
                    }
                    Some(d) => tracing::warn!(
                        ext = %slot.manifest.id,
                        dependency = %dep,
                        required = %req,
                        found = %self.slots[d].manifest.version,
                        "Optional dependency has an incompatible version; ignored"
                    ),
                    None => {}
                }
            }
        }

        if let Some(members) = find_cycle(&graph) {
            return Err(Error::Cycle {
                members: members
                    .into_iter()
                    .map(|i| self.slots[i].manifest.id.clone())
                    .collect(),
            });
        }

        // Kahn's algorithm, ties to the earliest list position.
        let mut indegree: Vec<usize> = nodes
            .iter()
            .map(|&n| graph.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> = (0..self.slots.len())
            .filter(|&i| indegree[i] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(self.slots.len());
        while let Some(Reverse(i)) = ready.pop() {
            order.push(i);
            for next in graph.neighbors_directed(nodes[i], Direction::Outgoing) {
                let j = graph[next];
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }

        for &i in &order {
            if let Some(problem) = self.problem(i) {
                self.refuse(i, problem)?;
            }
        }
        self.plan = order;
        Ok(self
            .plan
            .iter()
            .filter(|&&i| self.slots[i].state == ExtensionState::Pending)
            .map(|&i| self.slots[i].manifest.id.clone())
            .collect())
    }

    /// Why slot `i` cannot run given the states decided so far, if it cannot.
    fn index_of(&self, id: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.manifest.id == id)
    }

    fn problem(&self, i: usize) -> Option<Error> {
        let m = &self.slots[i].manifest;
        if !m.kernel.matches(&self.kernel) {
            return Some(Error::KernelVersion {
                extension: m.id.clone(),
                required: m.kernel.to_string(),
                kernel: self.kernel.to_string(),
            });
        }
        if let Some(&capability) = m
            .capabilities
            .iter()
            .find(|&&c| !self.config.grants.grants(&m.id, c))
        {
            return Some(Error::CapabilityDenied {
                extension: m.id.clone(),
                capability,
            });
        }
        for (dep, req) in &m.depends_on {
            let Some(d) = self.index_of(dep) else {
                return Some(Error::MissingDependency {
                    extension: m.id.clone(),
                    dependency: dep.clone(),
                    required: req.to_string(),
                    why: "not installed".to_string(),
                });
            };
            let found = &self.slots[d].manifest.version;
            if !req.matches(found) {
                return Some(Error::VersionMismatch {
                    extension: m.id.clone(),
                    dependency: dep.clone(),
                    required: req.to_string(),
                    found: found.to_string(),
                });
            }
            if let ExtensionState::Disabled { .. } = self.slots[d].state {
                return Some(Error::MissingDependency {
                    extension: m.id.clone(),
                    dependency: dep.clone(),
                    required: req.to_string(),
                    why: "disabled".to_string(),
                });
            }
        }
        None
    }

    /// Disables a standard extension, or fails boot for a core one.
    fn refuse(&mut self, i: usize, problem: Error) -> Result<()> {
        let slot = &mut self.slots[i];
        match slot.manifest.tier {
            Tier::Core => Err(Error::CoreFailed {
                extension: slot.manifest.id.clone(),
                cause: Box::new(problem),
            }),
            Tier::Standard => {
                tracing::warn!(ext = %slot.manifest.id, error = %problem, "Extension disabled");
                slot.state = ExtensionState::Disabled {
                    reason: problem.to_string(),
                };
                Ok(())
            }
        }
    }

    /// Plans (if not yet) and activates every runnable extension in order. On a core
    /// failure, what was already activated is deactivated again and the error returned.
    pub async fn activate(&mut self) -> Result<ActivationReport> {
        if self.plan.is_empty() && !self.slots.is_empty() {
            self.plan()?;
        }
        for i in self.plan.clone() {
            if self.slots[i].state != ExtensionState::Pending {
                continue;
            }
            // A dependency may have failed during activation since planning.
            if let Some(problem) = self.problem(i) {
                if let Err(fatal) = self.refuse(i, problem) {
                    self.deactivate().await;
                    return Err(fatal);
                }
                continue;
            }
            if let Err(failure) = self.activate_one(i).await {
                if let Err(fatal) = self.refuse(i, failure) {
                    self.deactivate().await;
                    return Err(fatal);
                }
            }
        }
        let report = ActivationReport {
            activated: self
                .activated
                .iter()
                .map(|&i| self.slots[i].manifest.id.clone())
                .collect(),
            disabled: self
                .slots
                .iter()
                .filter_map(|s| match &s.state {
                    ExtensionState::Disabled { reason } => {
                        Some((s.manifest.id.clone(), reason.clone()))
                    }
                    _ => None,
                })
                .collect(),
        };
        tracing::info!(order = %report.activated.join(", "), disabled = report.disabled.len(), "Extensions activated");
        Ok(report)
    }

    fn api(&self, i: usize, token: CancellationToken) -> HostApi {
        let manifest = self.slots[i].manifest.clone();
        let id: Arc<str> = Arc::from(manifest.id.as_str());
        HostApi {
            span: tracing::info_span!("ext", ext = %id),
            data_dir: self.config.data_dir.clone(),
            config: self
                .config
                .extensions
                .get(&manifest.id)
                .cloned()
                .unwrap_or_default(),
            id,
            manifest,
            registry: self.registry.clone(),
            token,
        }
    }

    async fn activate_one(&mut self, i: usize) -> Result<()> {
        let token = self.root.child_token();
        let mut api = self.api(i, token.clone());
        let span = api.span.clone();
        let ext = self.slots[i].ext.clone();
        let activation = async {
            tracing::debug!("Extension activating");
            ext.activate(&mut api).await
        };
        let outcome = AssertUnwindSafe(activation)
            .catch_unwind()
            .instrument(span)
            .await;
        let message = match outcome {
            Ok(Ok(())) => {
                let slot = &mut self.slots[i];
                slot.state = ExtensionState::Active;
                slot.token = Some(token);
                self.activated.push(i);
                tracing::info!(ext = %slot.manifest.id, version = %slot.manifest.version, "Extension activated");
                return Ok(());
            }
            Ok(Err(err)) => err.to_string(),
            Err(panic) => format!("panicked: {}", panic_message(&*panic)),
        };
        // Undo whatever it registered before failing.
        token.cancel();
        self.registry.remove_owner(&self.slots[i].manifest.id);
        Err(Error::Activation {
            extension: self.slots[i].manifest.id.clone(),
            message,
        })
    }

    /// Deactivates every active extension in reverse activation order, then cancels the root
    /// token. Failures are logged and returned; deactivation always completes.
    pub async fn deactivate(&mut self) -> Vec<(String, String)> {
        let mut failures = Vec::new();
        while let Some(i) = self.activated.pop() {
            let token = self.slots[i].token.take().unwrap_or_default();
            let mut api = self.api(i, token.clone());
            let span = api.span.clone();
            let ext = self.slots[i].ext.clone();
            let id = self.slots[i].manifest.id.clone();
            let outcome = AssertUnwindSafe(ext.deactivate(&mut api))
                .catch_unwind()
                .instrument(span)
                .await;
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err.to_string()),
                Err(panic) => Some(format!("panicked: {}", panic_message(&*panic))),
            };
            if let Some(message) = failure {
                tracing::error!(ext = %id, error = %message, "Extension failed to deactivate");
                failures.push((id.clone(), message));
            }
            token.cancel();
            self.registry.remove_owner(&id);
            self.slots[i].state = ExtensionState::Deactivated;
            tracing::info!(ext = %id, "Extension deactivated");
        }
        self.root.cancel();
        failures
    }

    /// Every extension in list order with its state.
    pub fn statuses(&self) -> Vec<ExtensionStatus> {
        self.slots
            .iter()
            .map(|s| ExtensionStatus {
                id: s.manifest.id.clone(),
                version: s.manifest.version.clone(),
                tier: s.manifest.tier,
                state: s.state.clone(),
            })
            .collect()
    }

    /// The root token: cancelling it shuts every turn and extension task down.
    pub fn root_token(&self) -> CancellationToken {
        self.root.clone()
    }

    pub fn services(&self) -> Services {
        Services {
            registry: self.registry.clone(),
            requester: Arc::from("host"),
        }
    }

    pub fn bus(&self) -> Bus {
        Bus {
            registry: self.registry.clone(),
        }
    }

    pub fn filters(&self) -> Filters {
        Filters {
            registry: self.registry.clone(),
        }
    }

    pub fn catalog(&self) -> Catalog {
        Catalog {
            registry: self.registry.clone(),
        }
    }

    /// What is registered, by everyone (`None`) or by one extension.
    pub fn counts(&self, extension: Option<&str>) -> RegistryCounts {
        self.registry.counts(extension)
    }
}

/// A cycle in the graph as a chain of slot indexes in "depends on" direction, first repeated
/// at the end (`a -> b -> a` means a depends on b depends on a).
fn find_cycle(graph: &DiGraph<usize, ()>) -> Option<Vec<usize>> {
    let scc = petgraph::algo::tarjan_scc(graph)
        .into_iter()
        .filter(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .min_by_key(|c| c.iter().map(|n| graph[*n]).min())?;
    // Walk "depends on" edges (incoming edges here) inside the component from its earliest
    // member until a node repeats.
    let start = *scc.iter().min_by_key(|n| graph[**n])?;
    let mut chain = vec![start];
    let mut current = start;
    loop {
        let next = graph
            .neighbors_directed(current, Direction::Incoming)
            .filter(|n| scc.contains(n))
            .min_by_key(|n| graph[*n])?;
        if let Some(pos) = chain.iter().position(|&n| n == next) {
            let mut cycle: Vec<usize> = chain[pos..].iter().map(|n| graph[*n]).collect();
            cycle.push(graph[next]);
            return Some(cycle);
        }
        chain.push(next);
        current = next;
    }
}
