use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use semver::{Version, VersionReq};
use serde::Deserialize;

use crate::host::HostApi;
use crate::{BoxError, Error};

/// What an extension may touch on the host machine. Declared in its manifest, granted by
/// the host config, and checked again when it registers a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Read and write files.
    Fs,
    /// Run shell commands on the user's behalf.
    Shell,
    /// Open network connections (providers, web search, SSH).
    Network,
    /// Spawn long-lived helper processes (LSP and MCP servers).
    Process,
}

impl Capability {
    pub const ALL: [Capability; 4] = [
        Capability::Fs,
        Capability::Shell,
        Capability::Network,
        Capability::Process,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Fs => "fs",
            Capability::Shell => "shell",
            Capability::Network => "network",
            Capability::Process => "process",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Capability {
    type Err = String;

    fn from_str(s: &str) -> Result<Capability, String> {
        Capability::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown capability `{s}` (known: fs, shell, network, process)"))
    }
}

/// Whether the server can run without the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    /// Failing to activate stops boot.
    Core,
    /// Failing to activate disables it and its dependents; the server goes on.
    Standard,
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Core => "core",
            Tier::Standard => "standard",
        })
    }
}

/// An extension's `extension.toml`, embedded in its crate.
///
/// ```toml
/// id = "tool-shell"
/// version = "0.1.0"
/// kernel = "^0.4"
/// tier = "standard"
/// description = "run_shell"
/// capabilities = ["shell"]
/// [depends_on]
/// exec-backend = "^0.1"
/// [optional]
/// lsp = "^0.1"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub id: String,
    pub version: Version,
    /// The kernel API versions the extension was built for.
    pub kernel: VersionReq,
    pub tier: Tier,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: BTreeSet<Capability>,
    /// Hard dependencies: activated before this one, required present and compatible.
    #[serde(default)]
    pub depends_on: BTreeMap<String, VersionReq>,
    /// Soft dependencies: activated before this one when present and compatible.
    #[serde(default)]
    pub optional: BTreeMap<String, VersionReq>,
}

impl Manifest {
    /// Parses and validates a manifest (id must be a slug).
    pub fn parse(source: &str) -> Result<Manifest, Error> {
        let manifest: Manifest = toml::from_str(source).map_err(|err| Error::Manifest {
            message: err.to_string(),
        })?;
        if !is_slug(&manifest.id) {
            return Err(Error::Manifest {
                message: format!(
                    "extension id `{}` must be lowercase letters, digits and `-`",
                    manifest.id
                ),
            });
        }
        Ok(manifest)
    }
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Parses the calling crate's `extension.toml` at compile-time inclusion.
#[macro_export]
macro_rules! manifest {
    () => {
        $crate::abi::Manifest::parse(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/extension.toml"
        )))
    };
}

/// A unit of functionality the host activates: registers tools, providers, services, hooks
/// and filters through [`HostApi`].
#[async_trait]
pub trait Extension: Send + Sync {
    /// The embedded manifest, usually `dispatch_kernel::manifest!()`.
    fn manifest(&self) -> Result<Manifest, Error>;

    /// Reads config, builds state, registers everything. Anything spawned holds a child of
    /// `host.shutdown_token()`. Runs inside the extension's tracing span.
    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError>;

    /// Stops what `activate` started. Registrations are removed by the host afterwards.
    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        Ok(())
    }
}
