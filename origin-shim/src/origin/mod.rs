//! Origin mode: a regional web origin for the edge to talk to.
//!
//! Routes (see [`handlers`]):
//!
//! | route                  | cache-control                                   |
//! |------------------------|-------------------------------------------------|
//! | `GET /api/time`        | `public, max-age=5`                             |
//! | `GET /api/items/{id}`  | `public, max-age=60, stale-while-revalidate=30` + strong `ETag` / 304, `Surrogate-Key: items item-{id}` |
//! | `POST /api/items/{id}` | `no-store` (echo; lets tests invalidate an item at the edge) |
//! | `GET /api/private`     | `private, no-store`                             |
//! | `POST /api/echo`       | `no-store` (also PUT/PATCH/DELETE; `X-Origin-Uri`: the path and query received) |
//! | `GET /api/headers`     | `no-store` (request headers as JSON; `X-Origin-Uri`: the path and query received) |
//! | `GET /healthz`         | `no-store`                                      |
//! | `GET /api/blob/{bytes}`| `public, max-age=300` (or `?cc=`): a chunked pattern body of any size ([`blob`]) |
//! | `POST /api/sink`       | `no-store`: streams the body, answers its length, SHA-256 and pattern check ([`blob`]) |
//!
//! Control plane (`/_shim/*`, never counted, never behind origin auth or faults):
//!
//! | route                                   | what                                  |
//! |-----------------------------------------|---------------------------------------|
//! | `GET /_shim/stats`, `POST /_shim/reset` | counters ([`stats`])                  |
//! | `GET/POST/DELETE /_shim/faults`         | fault injection ([`faults`])          |
//! | `POST /_shim/stop`, `POST /_shim/start` | same as `POST /_shim/faults` with `{"refuse":true}` / `{"refuse":false}` |
//!
//! Without [`OriginConfig::control_listen`] the control plane is served on the
//! main port. With it, the control plane moves to that second port only (the
//! main port answers `/_shim/*` with a 404 pointing there), which is what makes
//! `refuse` possible: the main listener can close while the control port stays.
//!
//! Every response carries `X-Origin-Region`; every request is logged as one JSON
//! line on stdout. Middleware (origin auth, faults, counters) lives in [`layers`].

pub mod auth;
pub mod blob;
pub mod faults;
pub mod handlers;
pub mod layers;
pub mod listener;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{any, get, post};
use axum::Router;
use tokio::sync::watch;

use crate::server::ServerHandle;
use crate::Error;

pub use self::auth::OriginAuth;
pub use self::faults::{FaultPatch, FaultSettings, Faults, FaultsError};
pub use self::listener::ListenerControl;
pub use self::stats::{Stats, StatsSnapshot};

/// Header naming the region that answered.
pub const REGION_HEADER: &str = "x-origin-region";

/// Configuration of an origin server.
#[derive(Debug, Clone)]
pub struct OriginConfig {
    /// Region name reported in bodies, logs and `X-Origin-Region`.
    pub region: String,
    /// Write one JSON access-log line per request to stdout.
    pub access_log: bool,
    /// Require the edge's origin-auth header on every non-`/_shim/*` request.
    pub auth: Option<OriginAuth>,
    /// Serve `/_shim/*` on this second address (and only there).
    pub control_listen: Option<SocketAddr>,
}

impl OriginConfig {
    #[must_use]
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            access_log: true,
            auth: None,
            control_listen: None,
        }
    }
}

/// State shared by all handlers and layers.
#[derive(Debug, Clone)]
pub struct OriginState {
    pub region: Arc<str>,
    pub stats: Arc<Stats>,
    pub access_log: bool,
    pub auth: Option<Arc<OriginAuth>>,
    pub faults: Arc<Faults>,
    /// Present when the control plane has its own listener, so the main one
    /// may be closed (`refuse`).
    pub listener: Option<ListenerControl>,
}

impl OriginState {
    #[must_use]
    pub fn new(config: &OriginConfig) -> Self {
        Self {
            region: Arc::from(config.region.as_str()),
            stats: Arc::new(Stats::default()),
            access_log: config.access_log,
            auth: config.auth.clone().map(Arc::new),
            faults: Arc::new(Faults::default()),
            listener: None,
        }
    }
}

/// Checks a region name: 1..=64 chars of `[a-z0-9-]`.
pub fn validate_region(region: &str) -> Result<(), String> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err("expected 1-64 characters of [a-z0-9-], e.g. us-east-1".to_owned())
    }
}

fn api_routes() -> Router<OriginState> {
    Router::new()
        .route("/api/time", get(handlers::time))
        .route("/api/items/{id}", get(handlers::item).post(handlers::echo))
        .route("/api/private", get(handlers::private))
        .route(
            "/api/echo",
            post(handlers::echo)
                .put(handlers::echo)
                .patch(handlers::echo)
                .delete(handlers::echo),
        )
        .route("/api/headers", get(handlers::headers))
        .route("/api/blob/{bytes}", get(blob::blob))
        .route("/api/sink", post(blob::sink).put(blob::sink))
        .route("/healthz", get(handlers::healthz))
}

fn control_routes() -> Router<OriginState> {
    Router::new()
        .route("/_shim/stats", get(handlers::stats))
        .route("/_shim/reset", post(handlers::reset))
        .route(
            "/_shim/faults",
            get(handlers::faults_get)
                .post(handlers::faults_post)
                .delete(handlers::faults_delete),
        )
        .route("/_shim/stop", post(handlers::stop))
        .route("/_shim/start", post(handlers::start))
}

fn finish(app: Router<OriginState>, state: OriginState) -> Router {
    let app = app
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state.clone());
    layers::apply(app, state)
}

/// Builds the full origin application (routes + control plane + middleware) for
/// a single port.
pub fn router(state: OriginState) -> Router {
    finish(api_routes().merge(control_routes()), state)
}

/// The main-port application when the control plane has its own listener.
pub fn main_router(state: OriginState) -> Router {
    let app = api_routes()
        .route("/_shim", any(handlers::control_elsewhere))
        .route("/_shim/{*rest}", any(handlers::control_elsewhere));
    finish(app, state)
}

/// The control-port application: `/_shim/*` only.
pub fn control_router(state: OriginState) -> Router {
    finish(control_routes(), state)
}

/// Binds `listen` (and `config.control_listen`, if any) and serves the origin on
/// the current tokio runtime.
pub async fn start(config: OriginConfig, listen: SocketAddr) -> Result<ServerHandle, Error> {
    validate_region(&config.region)
        .map_err(|e| Error::Config(format!("region {:?}: {e}", config.region)))?;
    let listener = crate::server::bind(listen).await?;
    let addr = listener.local_addr()?;
    let control = match config.control_listen {
        Some(c) => Some(crate::server::bind(c).await?),
        None => None,
    };
    let control_addr = control.as_ref().map(|l| l.local_addr()).transpose()?;

    let (commands_tx, commands) = ListenerControl::channel();
    let mut state = OriginState::new(&config);
    let control = control.map(|l| {
        state.listener = Some(commands_tx);
        (l, control_router(state.clone()))
    });
    let app = if control.is_some() {
        main_router(state)
    } else {
        router(state)
    };

    let handle = ServerHandle::spawn(addr, move |shutdown| async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let main = listener::run_main(listener, addr, app, commands, stop_rx.clone());
        let ctl = async move {
            match control {
                Some((l, app)) => listener::run_plain(l, app, stop_rx).await,
                None => Ok(()),
            }
        };
        let relay = async move {
            shutdown.wait().await;
            let _ = stop_tx.send(true);
        };
        let ((), main, ctl) = tokio::join!(relay, main, ctl);
        main.and(ctl)
    });
    Ok(handle.with_control_addr(control_addr))
}
