//! The edge cache: HTTP caching policy (RFC 9111, RFC 9213, RFC 5861),
//! cache keys, an in-memory store, request coalescing and `Cache-Status`
//! reporting (RFC 9211). Everything here is pure data and decisions; the
//! adapters do the I/O and pass `now` in.
//!
//! The flow an adapter follows:
//! 1. [`key::UrlKey`] + [`key::PrimaryKey`] for the request (forward the
//!    key's normalized path and query upstream).
//! 2. [`store::Store::lookup`] → miss, vary miss, or an entry; for an entry
//!    [`CachePolicy::before_request`] → [`Lookup`].
//! 3. On a miss, [`coalesce::Coalescer::begin`] decides who fetches.
//! 4. After the origin answers, [`CachePolicy::new`] (or
//!    [`after_revalidation`] for a revalidation) says what to store.
//! 5. [`CachePhase::cache_status`] reports what happened.
//!
//! [`edge::EdgeCache`] runs this flow as one facade for the adapters: it
//! owns the store and the coalescer, answers the purge endpoint, and
//! returns each decision as data ([`edge::CacheDecision`]).

pub mod coalesce;
pub mod conditional;
pub mod control;
pub mod edge;
pub mod key;
pub mod phase;
pub mod policy;
pub mod revalidate;
pub mod settings;
pub mod status;
pub mod store;
pub mod time;

pub use edge::{CacheDecision, CacheQuery, EdgeCache};
pub use phase::CachePhase;
pub use policy::{
    CachePolicy, CacheRules, CacheRulesError, Exchange, FreshnessSource, Lookup, NoCacheReason, RevalidateReason,
    Revalidation,
};
pub use revalidate::{after_revalidation, on_origin_error, Revalidated};
pub use settings::{CacheSettings, RouteCache, RouteKeys};
pub use status::{cache_status_name, CacheStatus, FwdReason};
pub use time::Timestamp;
