//! Regional origin selection, passive health, failover and origin auth.
//!
//! All of it is plain data and pure functions; `now` (Unix milliseconds,
//! or seconds for auth) and randomness are arguments.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | `[regions.*]` and `[routing]`: raw serde structs → validated [`Routing`] |
//! | [`geo`] | [`ViewerLocation`] from Workers `cf`, CloudFront headers or the `x-offload-geo` test header; haversine distance |
//! | [`select`] | [`select()`]: ordered (region, origin) attempts and the [`Reason`] |
//! | [`health`] | [`HealthTable`]: passive, per-origin circuit breaker with half-open probes |
//! | [`retry`] | [`RetryPolicy`] rules and the [`RetryBudget`] |
//! | [`failover`] | [`Failover`]: the attempt loop as a state machine; [`GiveUp`] = stale else 503 + `Retry-After` |
//! | [`auth`] | origin auth header: `v1,ts=..,kid=..,sig=..` (HMAC-SHA256) sign and verify |
//! | [`log`] | [`RouteLog`] record and its `Server-Timing` value |
//!
//! Per request, the adapter (or pipeline) does:
//!
//! 1. `let viewer = geo::locate(platform_location, test_header, routing.trust_test_header())?;`
//! 2. `let sel = select(&routing, pool, &viewer, &health, sticky_cookie, rand_u32, now_ms);`
//! 3. `Failover::start(..)` then, per attempt, sign with [`auth::sign_origin_request`],
//!    send, and `report(..)` until `Deliver` or `GiveUp`.
//! 4. Log `run.log()`, optionally add `Server-Timing`, and set the sticky
//!    cookie ([`config::Sticky::set_cookie`]) to the region that served.

pub mod auth;
pub mod config;
pub mod failover;
pub mod geo;
pub mod health;
pub mod log;
pub mod retry;
pub mod select;

pub use config::{Pool, RawPool, RawRegions, RawRouting, RouteConfigError, Routing};
pub use failover::{Failover, GiveUp, GiveUpReason, Next};
pub use geo::ViewerLocation;
pub use health::{HealthTable, OriginStatus};
pub use log::{AttemptRecord, RouteLog};
pub use retry::{Outcome, RetryBudget, RetryDecision, RetryPolicy};
pub use select::{select, Attempt, AttemptHealth, Reason, Selection};
