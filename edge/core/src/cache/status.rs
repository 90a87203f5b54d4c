//! RFC 9211 `Cache-Status` response header.
//!
//! ```
//! use offload_core::cache::{CacheStatus, FwdReason};
//! let s = CacheStatus::forward("Offload", FwdReason::UriMiss);
//! assert_eq!(s.to_string(), "Offload; fwd=uri-miss");
//! ```

use std::fmt;

use http::HeaderName;

/// The `Cache-Status` header name (RFC 9211).
pub fn cache_status_name() -> HeaderName {
    HeaderName::from_static("cache-status")
}

/// Why the request went forward to the origin (RFC 9211 §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FwdReason {
    /// The cache was configured not to handle this request.
    Bypass,
    /// The cache had no entry for the URI.
    UriMiss,
    /// The cache had the URI but not the variant.
    VaryMiss,
    /// The cache had a response but it was stale.
    Stale,
    /// The cache had a response but the request asked for a new one.
    Request,
    /// Miss (other).
    Miss,
}

impl FwdReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bypass => "bypass",
            Self::UriMiss => "uri-miss",
            Self::VaryMiss => "vary-miss",
            Self::Stale => "stale",
            Self::Request => "request",
            Self::Miss => "miss",
        }
    }
}

/// One cache's entry in `Cache-Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    cache: String,
    hit: bool,
    fwd: Option<FwdReason>,
    fwd_status: Option<u16>,
    ttl: Option<i64>,
    stored: bool,
    collapsed: bool,
    detail: Option<String>,
}

impl CacheStatus {
    /// A response served from cache.
    pub fn hit(cache: &str) -> Self {
        Self { cache: cache.to_owned(), hit: true, ..Self::forward(cache, FwdReason::Miss) }
    }
    /// A response that went forward to the origin.
    pub fn forward(cache: &str, reason: FwdReason) -> Self {
        Self {
            cache: cache.to_owned(),
            hit: false,
            fwd: Some(reason),
            fwd_status: None,
            ttl: None,
            stored: false,
            collapsed: false,
            detail: None,
        }
    }
    pub fn with_fwd_status(mut self, status: u16) -> Self {
        self.fwd_status = Some(status);
        self
    }
    pub fn with_ttl(mut self, ttl: i64) -> Self {
        self.ttl = Some(ttl);
        self
    }
    pub fn with_stored(mut self, stored: bool) -> Self {
        self.stored = stored;
        self
    }
    pub fn with_collapsed(mut self, collapsed: bool) -> Self {
        self.collapsed = collapsed;
        self
    }
    /// `detail` must be a token; anything else is dropped.
    pub fn with_detail(mut self, detail: &str) -> Self {
        if !detail.is_empty()
            && detail.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!#$%&'*+^`|".contains(&b))
        {
            self.detail = Some(detail.to_owned());
        }
        self
    }
    pub fn is_hit(&self) -> bool {
        self.hit
    }
    pub fn fwd(&self) -> Option<FwdReason> {
        if self.hit {
            None
        } else {
            self.fwd
        }
    }
}

impl fmt::Display for CacheStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cache)?;
        if self.hit {
            f.write_str("; hit")?;
        } else if let Some(fwd) = self.fwd {
            write!(f, "; fwd={}", fwd.as_str())?;
        }
        if let Some(s) = self.fwd_status {
            write!(f, "; fwd-status={s}")?;
        }
        if let Some(ttl) = self.ttl {
            write!(f, "; ttl={ttl}")?;
        }
        if self.stored {
            f.write_str("; stored")?;
        }
        if self.collapsed {
            f.write_str("; collapsed")?;
        }
        if let Some(d) = &self.detail {
            write!(f, "; detail={d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn formats_per_rfc_9211() {
        assert_eq!(CacheStatus::hit("Offload").with_ttl(30).to_string(), "Offload; hit; ttl=30");
        assert_eq!(
            CacheStatus::forward("Offload", FwdReason::Stale)
                .with_fwd_status(304)
                .with_stored(true)
                .with_collapsed(true)
                .to_string(),
            "Offload; fwd=stale; fwd-status=304; stored; collapsed"
        );
        assert_eq!(CacheStatus::forward("E", FwdReason::Bypass).to_string(), "E; fwd=bypass");
    }

    #[test]
    fn detail_must_be_a_token() {
        let s = CacheStatus::forward("E", FwdReason::Bypass).with_detail("bad value\r\n");
        assert_eq!(s.to_string(), "E; fwd=bypass");
        let s = CacheStatus::forward("E", FwdReason::Bypass).with_detail("method");
        assert_eq!(s.to_string(), "E; fwd=bypass; detail=method");
    }
}
