//! `[extensions.exec-backend]`: directories tools may touch besides the conversation's cwd.
//!
//! ```toml
//! [extensions.exec-backend]
//! allow = ["/srv/shared", "~/notes"]          # every conversation
//! [extensions.exec-backend.workspaces.blog]
//! allow = ["~/drafts"]                        # conversations of workspace `blog`
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Absolute or `~`-based directories allowed to every conversation.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Extra allowances per workspace id.
    #[serde(default)]
    pub workspaces: BTreeMap<String, WorkspaceConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceConfig {
    #[serde(default)]
    pub allow: Vec<String>,
}

/// The allowances with `~` expanded: absolute paths only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowances {
    pub global: Vec<PathBuf>,
    pub workspaces: BTreeMap<String, Vec<PathBuf>>,
}

impl Config {
    /// Expands `~` with `home` and refuses relative entries.
    pub fn allowances(&self, home: Option<&Path>) -> Result<Allowances> {
        let global = expand_all(&self.allow, home, "global")?;
        let mut workspaces = BTreeMap::new();
        for (id, workspace) in &self.workspaces {
            let scope = format!("workspace `{id}`");
            workspaces.insert(id.clone(), expand_all(&workspace.allow, home, &scope)?);
        }
        Ok(Allowances { global, workspaces })
    }
}

fn expand_all(entries: &[String], home: Option<&Path>, scope: &str) -> Result<Vec<PathBuf>> {
    entries
        .iter()
        .map(|entry| expand(entry, home, scope))
        .collect()
}

fn expand(entry: &str, home: Option<&Path>, scope: &str) -> Result<PathBuf> {
    if entry == "~" || entry.starts_with("~/") {
        let home = home.ok_or_else(|| Error::NoHome {
            entry: entry.to_string(),
            scope: scope.to_string(),
        })?;
        return Ok(home.join(entry[1..].trim_start_matches('/')));
    }
    let path = PathBuf::from(entry);
    if !path.is_absolute() {
        return Err(Error::RelativeAllowance {
            entry: entry.to_string(),
            scope: scope.to_string(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;

    #[track_caller]
    fn check(source: &str, expect: Result<Allowances>) {
        let config: Config = toml::from_str(source).unwrap();
        assert_eq!(config.allowances(Some(Path::new("/home/u"))), expect);
    }

    #[test]
    fn expands_home_and_keeps_absolute_entries() {
        check(
            r#"
            allow = ["/srv", "~/notes", "~"]
            [workspaces.blog]
            allow = ["~/drafts"]
            "#,
            Ok(Allowances {
                global: vec!["/srv".into(), "/home/u/notes".into(), "/home/u".into()],
                workspaces: BTreeMap::from([("blog".into(), vec!["/home/u/drafts".into()])]),
            }),
        );
    }

    #[test]
    fn refuses_relative_entries() {
        check(
            r#"
            [workspaces.blog]
            allow = ["drafts"]
            "#,
            Err(Error::RelativeAllowance {
                entry: "drafts".into(),
                scope: "workspace `blog`".into(),
            }),
        );
        check(
            r#"allow = ["~user/x"]"#,
            Err(Error::RelativeAllowance {
                entry: "~user/x".into(),
                scope: "global".into(),
            }),
        );
    }

    #[test]
    fn home_entries_need_a_home() {
        let config = Config {
            allow: vec!["~/x".into()],
            workspaces: BTreeMap::new(),
        };
        assert_eq!(
            config.allowances(None),
            Err(Error::NoHome {
                entry: "~/x".into(),
                scope: "global".into(),
            })
        );
    }
}
