//! `dispatch.toml`: where it is looked for and what it may contain.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dispatch_kernel::abi::Capability;
use dispatch_kernel::host::{CapabilityGrants, HostConfig};
use serde::Deserialize;

/// The whole file. Unknown keys are errors, so a typo never silently does nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub host: HostSection,
    /// `[extensions.<id>]`: each extension's own table, handed to it untouched.
    #[serde(default)]
    pub extensions: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSection {
    /// Capabilities granted to every extension without a `grants` entry; absent = all.
    #[serde(default)]
    pub capabilities: Option<BTreeSet<Capability>>,
    /// Per-extension grants, replacing the default for that extension.
    #[serde(default)]
    pub grants: BTreeMap<String, BTreeSet<Capability>>,
    /// A tracing filter such as `info` or `dispatch_kernel=debug`; `DISPATCH_LOG` wins.
    #[serde(default)]
    pub log: Option<String>,
}

impl FileConfig {
    pub fn parse(text: &str, origin: &Path) -> Result<FileConfig> {
        toml::from_str(text).with_context(|| format!("invalid config file {}", origin.display()))
    }

    /// Reads `explicit` (from `--config`/`DISPATCH_CONFIG`, which must exist) or else the first
    /// of `./dispatch.toml` and `$XDG_CONFIG_HOME/dispatch/dispatch.toml` (default
    /// `~/.config/dispatch/dispatch.toml`) that exists; none = defaults.
    pub fn load(explicit: Option<&Path>) -> Result<(FileConfig, Option<PathBuf>)> {
        let path = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => default_locations().into_iter().find(|p| p.is_file()),
        };
        let Some(path) = path else {
            return Ok((FileConfig::default(), None));
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Ok((FileConfig::parse(&text, &path)?, Some(path)))
    }

    pub fn host_config(&self) -> HostConfig {
        HostConfig {
            grants: CapabilityGrants {
                default: self.host.capabilities.clone(),
                per_extension: self.host.grants.clone(),
            },
            extensions: self.extensions.clone(),
            data_dir: PathBuf::new(),
        }
    }
}

/// `$XDG_DATA_HOME/dispatch`, else `~/.local/share/dispatch`, else `./dispatch-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
        .map_or_else(
            || PathBuf::from("dispatch-data"),
            |dir| dir.join("dispatch"),
        )
}

fn default_locations() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("dispatch.toml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("dispatch").join("dispatch.toml"));
    }
    paths
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_grants_and_extension_tables() {
        let config = FileConfig::parse(
            "[host]\ncapabilities = [\"fs\"]\n[host.grants]\ntool-shell = [\"fs\", \"shell\"]\n[extensions.tool-shell]\ntimeout = 5\n",
            Path::new("t.toml"),
        )
        .unwrap();
        let host = config.host_config();
        assert!(host.grants.grants("tool-shell", Capability::Shell));
        assert!(!host.grants.grants("other", Capability::Shell));
        assert!(host.grants.grants("other", Capability::Fs));
        assert_eq!(
            host.extensions["tool-shell"]["timeout"].as_integer(),
            Some(5)
        );
    }

    #[test]
    fn unknown_keys_and_capabilities_are_errors() {
        let err = FileConfig::parse("[hots]\n", Path::new("t.toml")).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `hots`"),
            "{err:#}"
        );
        let err = FileConfig::parse(
            "[host]\ncapabilities = [\"teleport\"]\n",
            Path::new("t.toml"),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("teleport"), "{err:#}");
    }
}
