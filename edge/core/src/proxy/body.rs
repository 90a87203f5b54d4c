//! Bounded bodies: every body the edge reads goes through a [`BodyLimit`],
//! a byte counter that refuses the first chunk that takes it past its
//! limit, so an adapter stops reading at `limit + 1` bytes at the latest
//! and never holds more. Sans-IO: the adapter feeds it chunk lengths.
//!
//! ```
//! use offload_core::proxy::body::{BodyLimit, BodyKind};
//! let mut b = BodyLimit::new(BodyKind::Purge, 10);
//! assert!(b.take(6).is_ok());
//! let e = b.take(5).unwrap_err();
//! assert_eq!(e.to_string(), "purge request body: more than 10 bytes");
//! assert_eq!(b.seen(), 11);
//! ```

use std::fmt;

/// Which body is being read (named in errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// The purge endpoint's JSON.
    Purge,
    /// The presign endpoint's JSON.
    Presign,
    /// A viewer's request body kept for a retry to replay.
    Replay,
    /// The copy of a storable response kept for the cache.
    CacheCopy,
    /// A viewer's request body given in an event (Lambda@Edge).
    Viewer,
}

impl BodyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purge => "purge request body",
            Self::Presign => "presign request body",
            Self::Replay => "request body kept for retries",
            Self::CacheCopy => "response body copy for the cache",
            Self::Viewer => "request body",
        }
    }
}

/// A body went past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}: more than {limit} bytes", kind.as_str())]
pub struct BodyTooLarge {
    pub kind: BodyKind,
    pub limit: usize,
}

/// A byte counter with a limit. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit {
    kind: BodyKind,
    limit: usize,
    seen: usize,
}

impl fmt::Debug for BodyLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BodyLimit({}: {}/{})", self.kind.as_str(), self.seen, self.limit)
    }
}

impl BodyLimit {
    pub fn new(kind: BodyKind, limit: usize) -> Self {
        Self { kind, limit, seen: 0 }
    }
    /// Count a chunk of `len` bytes. `Err` once the total passes the
    /// limit: stop reading, and drop what was kept.
    pub fn take(&mut self, len: usize) -> Result<(), BodyTooLarge> {
        self.seen = self.seen.saturating_add(len);
        if self.seen > self.limit {
            Err(BodyTooLarge { kind: self.kind, limit: self.limit })
        } else {
            Ok(())
        }
    }
    /// Whether a body that declares `length` (e.g. `Content-Length`) is
    /// over the limit before a byte is read.
    pub fn refuses_declared(&self, length: Option<u64>) -> bool {
        length.is_some_and(|n| n > self.limit as u64)
    }
    /// Bytes counted so far.
    pub fn seen(&self) -> usize {
        self.seen
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// The `Content-Length` a request or response declares, if it is one
/// valid number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(http::header::CONTENT_LENGTH).iter();
    let (Some(v), None) = (values.next(), values.next()) else { return None };
    let s = v.to_str().ok()?.trim();
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counts_to_the_limit_and_refuses_the_byte_after() {
        let mut b = BodyLimit::new(BodyKind::Replay, 100);
        for _ in 0..10 {
            b.take(10).unwrap();
        }
        assert_eq!(b.seen(), 100);
        assert_eq!(b.take(1), Err(BodyTooLarge { kind: BodyKind::Replay, limit: 100 }));
        // Stays refused, and the count never wraps.
        assert!(b.take(usize::MAX).is_err());
        assert_eq!(b.seen(), usize::MAX);
        let mut zero = BodyLimit::new(BodyKind::Purge, 0);
        assert!(zero.take(0).is_ok());
        assert!(zero.take(1).is_err());
    }

    #[test]
    fn declared_lengths() {
        let b = BodyLimit::new(BodyKind::Presign, 10);
        assert!(!b.refuses_declared(None));
        assert!(!b.refuses_declared(Some(10)));
        assert!(b.refuses_declared(Some(11)));
        let h = |vs: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in vs {
                m.append(http::header::CONTENT_LENGTH, http::HeaderValue::from_str(v).unwrap());
            }
            declared_length(&m)
        };
        assert_eq!(h(&["42"]), Some(42));
        assert_eq!(h(&[" 7 "]), Some(7));
        for bad in [&["-1"][..], &["1e3"], &["", ""], &["1", "1"], &["99999999999999999999999"], &[]] {
            assert_eq!(h(bad), None, "{bad:?}");
        }
    }
}
