//! Offload's platform-free edge core.
//!
//! Every decision is a pure function of (request, stored state, config,
//! now): the core returns instructions ([`pipeline::Plan`]) and the
//! platform adapters (Workers, Lambda@Edge, native test host) perform them.
//! The core never reads the clock and never does I/O.

pub mod cache;
pub mod cloudfront;
pub mod config;
pub mod error;
pub mod machine;
pub mod pipeline;
pub mod proxy;
pub mod route;
pub mod secret;
pub mod sign;
mod sort;

pub use config::{Config, ConfigError};
pub use error::{Error, RequestError};
pub use pipeline::{Edge, EdgeState, Forward, Plan, Step, Upstream};
pub use proxy::Viewer;
