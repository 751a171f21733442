//! The extension host: typed services, the hook bus, filter chains, tool and provider
//! registration, and activation of extensions in dependency order.

mod api;
mod boot;
mod keys;
mod registry;

pub use api::HostApi;
pub use boot::{
    ActivationReport, CapabilityGrants, ExtensionState, ExtensionStatus, Host, HostConfig,
};
pub use keys::{
    Filter, FilterFn, FilterKey, Hook, HookFn, HookKey, ServiceKey, filter_fn, hook_fn,
};
pub use registry::{Bus, Catalog, Filters, RegistryCounts, Services};
