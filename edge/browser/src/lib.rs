//! The Offload core for web pages, built with `wasm-pack build --target
//! web` (see README.md, "The browser package").
//!
//! - [`explain`]: what the edge decides for a request and its upstream
//!   response under a config — storable or not and why, the TTL, the
//!   stale-while-revalidate and stale-if-error windows, the cache key and
//!   the `Cache-Status` the edge sends — computed by the same core code the
//!   edge runs (natively here, in Wasm in the page).
//! - In the browser (`wasm32` only): `OffloadExplainer` and `parseHeaders`
//!   for pages, and `presign` / `uploadFile` / `presignAndUpload`: ask the
//!   edge's presign endpoint (`POST /_offload/presign`, with the grant the
//!   application issued) for a URL and upload a file straight to S3 with
//!   progress events. The page holds a grant, never a key: no secret
//!   reaches the browser.

pub mod explain;

pub use explain::{parse_header_block, Case, ExplainError, Explainer, Explanation, Outcome};

#[cfg(target_arch = "wasm32")]
mod web;
