//! The edge cache. For now only its reporting (`Cache-Status`).

pub mod status;

pub use status::{CacheStatus, FwdReason};
