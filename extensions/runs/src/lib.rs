//! The `runs` standard extension: the runs control plane. A run is a chat turn with a
//! durable handle — `POST /runs` answers 202 before the model does, and the run can then
//! be watched (`GET /runs/{id}/events`, Server-Sent Events replayed from seq 1 or from
//! `Last-Event-ID`, ending with `run-end`), checked (`GET /runs/{id}`, `GET /runs`),
//! cancelled for real (`POST /runs/{id}/cancel`: queued runs are dropped, running ones are
//! stopped through `SESSION.stop`, which aborts the provider request and tools and waits for
//! the seal) and inspected (`GET /runs/{id}/artifacts`). See [`routes`].
//!
//! It registers the routes in `transport_kit::ROUTES` and two hook handlers: `STEP_COMPLETED`
//! (each step of a run's turn, prompt-prefix record included) and `TURN_SETTLED` (the turn's
//! system-prompt records); both only hand a write to the writer task and return. Runs queue
//! FIFO with a recorded reason: one run per conversation, a chat turn already running on the
//! conversation (`conversation-busy`, waited out with `SESSION.settled`), and at most
//! `max_concurrent` runs at once (`concurrency-limit`). See [`registry`].
//!
//! The registry, each run's event log (committed once per step, not per delta), step and
//! prompt artifacts and the `Idempotency-Key` map live in the storage scope `runs` (see
//! [`store`]). At activation every run stored as `queued` or `running` is marked
//! `failed`/`interrupted`: its process is gone, and so is a queued run's caller, so it is not
//! re-queued. Deactivation stops following runs (their turns belong to the session and run
//! on) and waits until every write handed to the writer committed; whatever a run buffered
//! since its last step boundary is not committed, as after a crash.
//!
//! It must never start, stop or watch a turn other than through `SESSION`, never abort a
//! turn because an SSE client went away, never re-serialize an event (SSE `data:` is the
//! session's `EventFrame.json`), never answer bad input with a 5xx, and never leave a run
//! `running` across a restart.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use dispatch_kernel::abi::{
    CLOCK, CONVERSATION_STORE, Extension, Manifest, SESSION, STEP_COMPLETED, STORAGE,
    StepCompleted, TURN_SETTLED, TurnSettled,
};
use dispatch_kernel::host::{HostApi, hook_fn};
use dispatch_kernel::{BoxError, Error as KernelError};
use dispatch_transport_kit::{ROUTES, RouteRegistry};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub mod config;
pub mod error;
pub mod registry;
pub mod request;
pub mod routes;
pub mod store;

pub use config::Config;
pub use error::{Error, Result};
pub use registry::Runs;
pub use request::send_request;

/// The extension id, also its owner name in the route registry.
const ID: &str = "runs";

/// How long deactivation waits for run tasks and pending writes.
const DRAIN: Duration = Duration::from_secs(10);

/// Mounts the runs routes and follows runs.
#[derive(Default)]
pub struct RunsExtension {
    active: Mutex<Option<Active>>,
}

/// What deactivation undoes.
struct Active {
    routes: Arc<RouteRegistry>,
    runs: Arc<Runs>,
    writer: CancellationToken,
}

impl std::fmt::Debug for RunsExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunsExtension").finish_non_exhaustive()
    }
}

#[async_trait]
impl Extension for RunsExtension {
    fn manifest(&self) -> Result<Manifest, KernelError> {
        dispatch_kernel::manifest!()
    }

    async fn activate(&self, host: &mut HostApi) -> Result<(), BoxError> {
        let config: Config = host.config()?;
        config.validate()?;
        let session = host.service(&SESSION)?;
        let conversations = host.service(&CONVERSATION_STORE)?;
        let storage = host.service(&STORAGE)?;
        let routes = host.service(&ROUTES)?;
        // An optional dependency: activated first when present.
        let clock = host.service(&CLOCK).ok();
        let scope = storage
            .scope(store::SCOPE, store::MIGRATIONS)
            .await
            .map_err(Error::from)?;

        let token = host.shutdown_token();
        let (jobs, rx) = mpsc::unbounded_channel();
        let services = registry::Services {
            session,
            store: conversations,
            scope: scope.clone(),
            clock,
        };
        let runs = Arc::new(Runs::new(
            services,
            config.clone(),
            token.child_token(),
            host.span().clone(),
            jobs,
        ));
        let swept = store::sweep(&*scope, runs.now_ms()).await?;
        if swept > 0 {
            tracing::warn!(swept, "Runs interrupted by a restart marked failed");
        }
        let writer = token.child_token();
        runs.tracker.spawn(tracing::Instrument::instrument(
            registry::write_loop(scope, rx, writer.clone()),
            host.span().clone(),
        ));

        let on_step = runs.clone();
        host.on(
            &STEP_COMPLETED,
            Arc::new(hook_fn(move |completed: &StepCompleted| {
                on_step.on_step(completed);
                Ok(())
            })),
        );
        let on_settled = runs.clone();
        host.on(
            &TURN_SETTLED,
            Arc::new(hook_fn(move |settled: &TurnSettled| {
                on_settled.on_settled(settled);
                Ok(())
            })),
        );
        routes
            .mount(ID, routes::router(runs.clone()))
            .map_err(|err| Error::Mount(err.to_string()))?;
        tracing::info!(
            max_concurrent = config.max_concurrent,
            keep_alive_secs = config.keep_alive_secs,
            "Runs routes mounted"
        );
        let previous = self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(Active {
                routes,
                runs,
                writer,
            });
        debug_assert!(previous.is_none(), "activated twice without deactivation");
        Ok(())
    }

    async fn deactivate(&self, _host: &mut HostApi) -> Result<(), BoxError> {
        let active = self
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Active {
            routes,
            runs,
            writer,
        }) = active
        else {
            return Ok(());
        };
        routes.unmount(ID);
        // Run tasks and SSE streams stop; then every write they handed over commits.
        runs.token.cancel();
        if tokio::time::timeout(DRAIN, runs.flush()).await.is_err() {
            tracing::warn!("Run writes did not commit in time");
        }
        writer.cancel();
        runs.tracker.close();
        if tokio::time::timeout(DRAIN, runs.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("Run tasks did not finish in time");
        }
        tracing::info!("Runs routes unmounted");
        Ok(())
    }
}
