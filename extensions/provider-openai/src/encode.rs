//! What both request encoders share: [`Encoded`], a body written key by key together with
//! the prompt-prefix record of its blocks (tools, system sections, history items), and the
//! reasoning-effort mapping.

use dispatch_kernel::abi::{SystemSection, ToolSpec};
use dispatch_provider_kit::PrefixBuilder;
use dispatch_wire::{PrefixBlockRef, ReasoningEffort};
use serde::Serialize;

/// A request body being written (compact JSON, keys in a fixed order) and the prompt-prefix
/// record of its blocks.
pub struct Encoded {
    pub body: Vec<u8>,
    pub prefix: PrefixBuilder,
    /// Items written to the open history array, system message included.
    items: u32,
}

impl Encoded {
    /// A body opened with `{"model":<model>`.
    pub(crate) fn open(model: &str) -> serde_json::Result<Encoded> {
        let mut encoded = Encoded {
            body: Vec::with_capacity(1024),
            prefix: PrefixBuilder::new(),
            items: 0,
        };
        encoded.raw(b"{\"model\":");
        encoded.json(model)?;
        Ok(encoded)
    }

    /// Appends `bytes` as they are (constant keys and values).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    /// Appends `value` as compact JSON.
    pub(crate) fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> serde_json::Result<()> {
        serde_json::to_writer(&mut self.body, value)
    }

    /// Appends `,"<key>":<value>`.
    pub(crate) fn field<T: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &T,
    ) -> serde_json::Result<()> {
        self.body.push(b',');
        self.json(key)?;
        self.body.push(b':');
        self.json(value)
    }

    /// Appends the reasoning effort (`(key, value)`) when there is one, else the temperature
    /// when there is one: reasoning models refuse a temperature.
    pub(crate) fn effort_or_temperature<T: Serialize>(
        &mut self,
        effort: Option<(&str, T)>,
        temperature: Option<f32>,
    ) -> serde_json::Result<()> {
        match (effort, temperature) {
            (Some((key, effort)), _) => self.field(key, &effort),
            (None, Some(temperature)) => self.field("temperature", &temperature),
            (None, None) => Ok(()),
        }
    }

    /// Appends `,"tools":[...]` (nothing when there are none), each spec in the API's
    /// `shape`, and records the array as the `tools` block (empty when there are none).
    pub(crate) fn tools<'a, T: Serialize>(
        &mut self,
        specs: &'a [ToolSpec],
        shape: impl Fn(&'a ToolSpec) -> T,
    ) -> serde_json::Result<()> {
        let tools: Vec<T> = specs.iter().map(shape).collect();
        let start = if tools.is_empty() {
            self.body.len()
        } else {
            self.raw(b",\"tools\":");
            let start = self.body.len();
            self.json(&tools)?;
            start
        };
        self.prefix.push(
            PrefixBlockRef::Tools {
                count: u32::try_from(tools.len()).unwrap_or(u32::MAX),
            },
            &self.body[start..],
            false,
        );
        Ok(())
    }

    /// Records one block per system section, with the section's text as its bytes (the
    /// body carries the sections joined, in the API's own place).
    pub(crate) fn system_blocks(&mut self, sections: &[SystemSection]) {
        for (i, section) in sections.iter().enumerate() {
            self.prefix.push(
                PrefixBlockRef::System {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    name: section.name.to_string(),
                },
                section.text.as_bytes(),
                false,
            );
        }
    }

    /// Opens the history array: `,"<key>":[`.
    pub(crate) fn open_items(&mut self, key: &str) -> serde_json::Result<()> {
        self.body.push(b',');
        self.json(key)?;
        self.raw(b":[");
        Ok(())
    }

    /// Appends `item` to the history array, after a comma unless it is the first; a block
    /// named `role` records its bytes unless it is the system message (`role` `None`),
    /// whose sections have their own blocks.
    pub(crate) fn item<T: Serialize>(
        &mut self,
        role: Option<&str>,
        item: &T,
    ) -> serde_json::Result<()> {
        if self.items > 0 {
            self.body.push(b',');
        }
        let start = self.body.len();
        self.json(item)?;
        if let Some(role) = role {
            self.prefix.push(
                PrefixBlockRef::Message {
                    index: self.items,
                    role: role.to_owned(),
                },
                &self.body[start..],
                false,
            );
        }
        self.items += 1;
        Ok(())
    }

    /// Closes the history array and the body.
    pub(crate) fn close(mut self) -> Encoded {
        self.raw(b"]}");
        self
    }
}

/// OpenAI's effort names: `xhigh` and `max` have no equivalent beyond `high`.
pub(crate) fn effort_name(effort: ReasoningEffort) -> &'static str {
    match effort {
        ReasoningEffort::Low => "low",
        ReasoningEffort::Medium => "medium",
        ReasoningEffort::High | ReasoningEffort::Xhigh | ReasoningEffort::Max => "high",
    }
}
