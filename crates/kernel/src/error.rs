use crate::abi::Capability;

/// Boxed error for extension entry points (`activate`, hooks), which fail with their own types.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the extension host can refuse. Boot errors are handled by host-bin (logged,
/// exit non-zero); registration and lookup errors by the extension that made the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An `extension.toml` that does not parse or validate. The extension author fixes it.
    #[error("invalid extension manifest: {message}")]
    Manifest { message: String },

    /// Two extensions claim one id. Fatal at boot.
    #[error("duplicate extension id `{id}`")]
    DuplicateId { id: String },

    /// `depends_on` forms a cycle; `members` is the chain, first member repeated at the end.
    #[error("dependency cycle: {}", members.join(" -> "))]
    Cycle { members: Vec<String> },

    /// A hard dependency is not in the extension list (or was disabled).
    #[error("extension `{extension}` depends on `{dependency}` ({required}), which is {why}")]
    MissingDependency {
        extension: String,
        dependency: String,
        required: String,
        why: String,
    },

    /// A hard dependency is present in an incompatible version.
    #[error(
        "extension `{extension}` requires `{dependency}` {required}, but version {found} is present"
    )]
    VersionMismatch {
        extension: String,
        dependency: String,
        required: String,
        found: String,
    },

    /// The extension needs a kernel API this kernel does not offer.
    #[error("extension `{extension}` requires kernel API {required}, this kernel is {kernel}")]
    KernelVersion {
        extension: String,
        required: String,
        kernel: String,
    },

    /// The manifest declares a capability the host config does not grant.
    #[error(
        "extension `{extension}` needs capability `{capability}`, which the host config does not grant"
    )]
    CapabilityDenied {
        extension: String,
        capability: Capability,
    },

    /// A tool uses a capability its extension's manifest does not declare.
    #[error(
        "extension `{extension}` registers tool `{tool}` using capability `{capability}`, which its manifest does not declare"
    )]
    ToolCapability {
        extension: String,
        tool: String,
        capability: Capability,
    },

    /// `activate` returned an error or panicked.
    #[error("extension `{extension}` failed to activate: {message}")]
    Activation { extension: String, message: String },

    /// A core extension could not be activated, so boot stops.
    #[error("core extension `{extension}` cannot run: {cause}")]
    CoreFailed {
        extension: String,
        cause: Box<Error>,
    },

    /// The extension's table in `dispatch.toml` does not fit its config type.
    #[error("invalid config for extension `{extension}`: {message}")]
    Config { extension: String, message: String },

    /// Nobody provides the service (yet, or any more). Handled by the caller.
    #[error("service `{key}` requested by `{requested_by}` is not provided")]
    MissingService {
        key: &'static str,
        requested_by: String,
    },

    /// A second provider for one service key.
    #[error("service `{key}` is already provided by `{owner}` (refused for `{requested_by}`)")]
    DuplicateService {
        key: &'static str,
        owner: String,
        requested_by: String,
    },

    /// A key name reused with another type: a programming error caught at lookup.
    #[error("service `{key}` holds a different type than requested by `{requested_by}`")]
    ServiceType {
        key: &'static str,
        requested_by: String,
    },

    /// A second tool with one name.
    #[error("tool `{name}` is already registered by `{owner}` (refused for `{requested_by}`)")]
    DuplicateTool {
        name: String,
        owner: String,
        requested_by: String,
    },

    /// A tool name the providers would reject.
    #[error("tool name `{name}` from `{extension}` must match [a-zA-Z0-9_-]{{1,64}}")]
    InvalidToolName { name: String, extension: String },

    /// A second provider with one id.
    #[error("provider `{id}` is already registered by `{owner}` (refused for `{requested_by}`)")]
    DuplicateProvider {
        id: String,
        owner: String,
        requested_by: String,
    },
}
