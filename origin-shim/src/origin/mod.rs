//! Origin mode: a regional web origin for the edge to talk to.
//!
//! Routes (see [`handlers`]):
//!
//! | route                  | cache-control                                   |
//! |------------------------|-------------------------------------------------|
//! | `GET /api/time`        | `public, max-age=5`                             |
//! | `GET /api/items/{id}`  | `public, max-age=60, stale-while-revalidate=30` + strong `ETag` / 304 |
//! | `GET /api/private`     | `private, no-store`                             |
//! | `POST /api/echo`       | `no-store` (also PUT/PATCH/DELETE)              |
//! | `GET /api/headers`     | `no-store`                                      |
//! | `GET /healthz`         | —                                               |
//! | `GET /_shim/stats`, `POST /_shim/reset` | `no-store` (not counted)       |
//!
//! Every response carries `X-Origin-Region`; every request is logged as one JSON
//! line on stdout. Middleware lives in [`layers`], which is also where fault
//! injection and HMAC origin-auth are meant to be added.

pub mod handlers;
pub mod layers;
pub mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::server::ServerHandle;
use crate::Error;

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
}

impl OriginConfig {
    #[must_use]
    pub fn new(region: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            access_log: true,
        }
    }
}

/// State shared by all handlers and layers.
#[derive(Debug, Clone)]
pub struct OriginState {
    pub region: Arc<str>,
    pub stats: Arc<Stats>,
    pub access_log: bool,
}

impl OriginState {
    #[must_use]
    pub fn new(config: &OriginConfig) -> Self {
        Self {
            region: Arc::from(config.region.as_str()),
            stats: Arc::new(Stats::default()),
            access_log: config.access_log,
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

/// Builds the full origin application (routes + middleware).
pub fn router(state: OriginState) -> Router {
    let app = Router::new()
        .route("/api/time", get(handlers::time))
        .route("/api/items/{id}", get(handlers::item))
        .route("/api/private", get(handlers::private))
        .route(
            "/api/echo",
            post(handlers::echo)
                .put(handlers::echo)
                .patch(handlers::echo)
                .delete(handlers::echo),
        )
        .route("/api/headers", get(handlers::headers))
        .route("/healthz", get(handlers::healthz))
        .route("/_shim/stats", get(handlers::stats))
        .route("/_shim/reset", post(handlers::reset))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state.clone());
    layers::apply(app, state)
}

/// Binds `listen` and serves the origin on the current tokio runtime.
pub async fn start(config: OriginConfig, listen: SocketAddr) -> Result<ServerHandle, Error> {
    validate_region(&config.region)
        .map_err(|e| Error::Config(format!("region {:?}: {e}", config.region)))?;
    let listener = crate::server::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = router(OriginState::new(&config));
    // Connection-level faults (refusing/resetting connections) would hook in here,
    // around the listener, rather than in the axum layers.
    Ok(ServerHandle::spawn(addr, move |shutdown| async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .await
            .map_err(Error::Io)
    }))
}
