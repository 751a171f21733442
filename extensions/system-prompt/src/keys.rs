//! The layout of the `system-prompt` storage scope and the records stored in it.
//!
//! | name                    | kind | holds                                                   |
//! |-------------------------|------|---------------------------------------------------------|
//! | `layout`                | key  | the layout version (`{"layout":1}`), written by migration 1 |
//! | `template`              | key  | `TemplateRecord`: the template set through the service; absent = the default |
//! | `prompt/<conversation>` | key  | `PromptRecord`: the prompt last built for the conversation, with its cwd |
//!
//! Every value is JSON. A value that does not parse is logged and read as absent (a prompt:
//! rebuilt on the next turn; a template: the default is used), never an error.

use std::path::PathBuf;
use std::sync::Arc;

use dispatch_kernel::abi::{BuiltPrompt, Migration, MigrationTx, StorageError, SystemSection};
use dispatch_wire::{SectionTier, SystemSectionRecord};
use serde::{Deserialize, Serialize};

use crate::template::RenderedSection;

/// The storage scope of this extension (its id).
pub const SCOPE: &str = "system-prompt";

pub(crate) const TEMPLATE: &str = "template";

pub(crate) fn prompt(conversation_id: &str) -> String {
    format!("prompt/{conversation_id}")
}

/// The scope's migrations, in version order.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "layout v1: template and prompt/ keys",
    apply: layout_v1,
}];

fn layout_v1(tx: &mut dyn MigrationTx) -> Result<(), StorageError> {
    tx.put("layout", br#"{"layout":1}"#)
}

/// The template set through the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TemplateRecord {
    pub template: String,
}

/// A built prompt as stored: the cwd it was built for and its sections in send order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptRecord {
    /// Lossy UTF-8 of the cwd; a non-UTF-8 cwd never matches, so it is rebuilt each turn.
    pub cwd: String,
    pub sections: Vec<SectionRecord>,
}

/// One section as stored: its record (name, tier, bytes, hash) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SectionRecord {
    pub name: String,
    pub tier: SectionTier,
    pub bytes: u64,
    pub hash: String,
    pub text: String,
}

/// xxh3-64 of `text`, 16 lowercase hex digits.
pub fn hash(text: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

impl PromptRecord {
    pub fn new(cwd: &std::path::Path, rendered: Vec<RenderedSection>) -> PromptRecord {
        PromptRecord {
            cwd: cwd.to_string_lossy().into_owned(),
            sections: rendered
                .into_iter()
                .map(|section| SectionRecord {
                    bytes: u64::try_from(section.text.len()).unwrap_or(u64::MAX),
                    hash: hash(&section.text),
                    name: section.name,
                    tier: section.tier,
                    text: section.text,
                })
                .collect(),
        }
    }

    pub fn to_built(&self, rebuilt: bool) -> BuiltPrompt {
        let sections: Vec<SystemSection> = self
            .sections
            .iter()
            .map(|section| SystemSection::new(section.name.as_str(), section.text.as_str()))
            .collect();
        BuiltPrompt {
            sections: Arc::from(sections),
            records: self
                .sections
                .iter()
                .map(|section| SystemSectionRecord {
                    name: section.name.clone(),
                    tier: section.tier,
                    bytes: section.bytes,
                    hash: section.hash.clone(),
                })
                .collect(),
            cwd: PathBuf::from(&self.cwd),
            rebuilt,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use expect_test::expect;

    use super::*;

    #[test]
    fn hashes_are_xxh3_in_sixteen_lowercase_hex_digits() {
        assert_eq!(hash(""), "2d06800538d394c2");
        assert_eq!(hash("a").len(), 16);
        assert_ne!(hash("a"), hash("b"));
    }

    #[test]
    fn a_prompt_record_round_trips_and_keeps_its_records() {
        let record = PromptRecord::new(
            std::path::Path::new("/src"),
            vec![RenderedSection {
                name: "base".into(),
                tier: SectionTier::Stable,
                text: "héllo".into(),
            }],
        );
        let json = serde_json::to_string(&record).unwrap();
        expect![[r#"{"cwd":"/src","sections":[{"name":"base","tier":"stable","bytes":6,"hash":"6a45b79a7b549b1f","text":"héllo"}]}"#]]
        .assert_eq(&json);
        let back: PromptRecord = serde_json::from_str(&json).unwrap();
        let built = back.to_built(false);
        assert_eq!(built.records[0].hash, hash("héllo"));
        assert_eq!(&*built.sections[0].name, "base");
        assert_eq!(built.cwd, PathBuf::from("/src"));
    }
}
