use dispatch_wire::ModelInfo;

use crate::abi::Pricing;
use crate::host::ServiceKey;

/// The model catalog (`model-catalog` extension): context windows, output limits and prices.
pub const MODEL_CATALOG: ServiceKey<dyn ModelCatalog> = ServiceKey::new("model-catalog");

/// What the server knows about models, and their prices ([`Pricing`]).
///
/// Lookups never fail: a model the catalog does not list gets conservative defaults
/// (`known: false`: a small context window and output limit, no prices, so its cost is
/// unknown rather than zero) and one warning per model. Models served by an instance
/// declared local ([`ModelCatalog::register_local`]) are priced at zero.
pub trait ModelCatalog: Pricing {
    /// Facts about `model` as served by provider instance `provider`.
    fn model(&self, provider: &str, model: &str) -> ModelInfo;

    /// Every model the catalog lists, for provider instance `provider` (the catalog's
    /// entries carry a provider *kind*, e.g. `anthropic`; `provider` names the instance the
    /// returned infos say they are served by).
    fn list(&self, provider: &str, kind: &str) -> Vec<ModelInfo>;

    /// Declares provider instance `provider` local (Ollama, llama.cpp, LM Studio on this
    /// machine): what it serves costs nothing.
    fn register_local(&self, provider: &str);
}
