use std::fmt;
use std::marker::PhantomData;

use async_trait::async_trait;

use crate::BoxError;

/// The typed name of a service: `const CONVERSATION_STORE: ServiceKey<dyn ConversationStore>`.
/// Defined in the kernel next to the trait it carries.
pub struct ServiceKey<T: ?Sized + 'static> {
    name: &'static str,
    _type: PhantomData<fn() -> Box<T>>,
}

impl<T: ?Sized> ServiceKey<T> {
    pub const fn new(name: &'static str) -> ServiceKey<T> {
        ServiceKey {
            name,
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<T: ?Sized> fmt::Debug for ServiceKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceKey({})", self.name)
    }
}

/// The typed name of a bus event carrying payload `P`.
pub struct HookKey<P: 'static> {
    name: &'static str,
    _type: PhantomData<fn() -> P>,
}

impl<P> HookKey<P> {
    pub const fn new(name: &'static str) -> HookKey<P> {
        HookKey {
            name,
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<P> fmt::Debug for HookKey<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HookKey({})", self.name)
    }
}

/// The typed name of a filter chain transforming `V` with context `C`.
pub struct FilterKey<V: 'static, C: 'static> {
    name: &'static str,
    _type: PhantomData<fn(V, C) -> V>,
}

impl<V, C> FilterKey<V, C> {
    pub const fn new(name: &'static str) -> FilterKey<V, C> {
        FilterKey {
            name,
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl<V, C> fmt::Debug for FilterKey<V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FilterKey({})", self.name)
    }
}

/// A bus subscriber. Handlers of one event run one after another in registration order;
/// an error or a panic is logged with the subscriber's extension id and never reaches the
/// emitter or the other subscribers.
#[async_trait]
pub trait Hook<P>: Send + Sync {
    async fn handle(&self, payload: &P) -> Result<(), BoxError>;
}

/// A synchronous closure as a hook.
pub fn hook_fn<P, F>(f: F) -> HookFn<F>
where
    F: Fn(&P) -> Result<(), BoxError> + Send + Sync,
{
    HookFn(f)
}

/// See [`hook_fn`].
pub struct HookFn<F>(F);

#[async_trait]
impl<P, F> Hook<P> for HookFn<F>
where
    P: Send + Sync + 'static,
    F: Fn(&P) -> Result<(), BoxError> + Send + Sync,
{
    async fn handle(&self, payload: &P) -> Result<(), BoxError> {
        (self.0)(payload)
    }
}

/// One link of a filter chain. Filters run in (priority ascending, registration order); a
/// panicking filter is logged and skipped (the value it received passes on unchanged).
#[async_trait]
pub trait Filter<V, C>: Send + Sync {
    async fn apply(&self, value: V, ctx: &C) -> V;
}

/// A synchronous closure as a filter.
pub fn filter_fn<V, C, F>(f: F) -> FilterFn<F>
where
    F: Fn(V, &C) -> V + Send + Sync,
{
    FilterFn(f)
}

/// See [`filter_fn`].
pub struct FilterFn<F>(F);

#[async_trait]
impl<V, C, F> Filter<V, C> for FilterFn<F>
where
    V: Send + 'static,
    C: Sync + 'static,
    F: Fn(V, &C) -> V + Send + Sync,
{
    async fn apply(&self, value: V, ctx: &C) -> V {
        (self.0)(value, ctx)
    }
}
