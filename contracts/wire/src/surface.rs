//! UI surfaces: small declarative panels an extension offers to every frontend (controls,
//! stats) without the frontend knowing the extension.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SurfaceScope {
    Global,
    Conversation,
    /// A scope this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SurfaceSpec {
    pub id: String,
    pub title: String,
    pub scope: SurfaceScope,
    pub fields: Vec<SurfaceField>,
}

/// One field of a surface, tagged by `kind`. `action` names what `surface.invoke` triggers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
pub enum SurfaceField {
    Toggle {
        id: String,
        label: String,
        value: bool,
        action: String,
    },
    Number {
        id: String,
        label: String,
        value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
        action: String,
    },
    Stat {
        id: String,
        label: String,
        value: String,
    },
    Button {
        id: String,
        label: String,
        action: String,
    },
    /// Rendered by a frontend component registered under `rendererId`.
    Custom {
        id: String,
        renderer_id: String,
        data: serde_json::Value,
    },
    /// A field kind this build does not know (sent by a newer server).
    /// Parse-only: never sent by this build, left out of the JSON Schema.
    #[serde(other)]
    #[schemars(skip)]
    Unknown,
}
