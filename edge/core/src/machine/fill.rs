//! The cache copy of a storable response whose body streams to the
//! viewer: the executor passes each chunk through [`CacheFill::accept`]
//! and ends with [`CacheFill::finish`] or [`CacheFill::fail`]. The byte
//! limit, the decision to drop the copy and the store are here; the
//! executor only moves bytes.

use std::sync::Arc;

use crate::cache::edge::{L2Write, PendingStore};
use crate::proxy::body::{BodyKind, BodyLimit};

use super::Isolate;

/// What to do after a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Copied: go on (pass the chunk on to the viewer).
    Copied,
    /// The body is larger than an entry may be: the copy is dropped and
    /// the entry released. Pass this chunk and the rest to the viewer
    /// without copying (pipe it); nothing more to tell the fill.
    TooLarge,
}

/// A cache copy being collected.
#[derive(Debug)]
pub struct CacheFill {
    pending: Option<PendingStore>,
    copy: Vec<u8>,
    limit: BodyLimit,
}

impl CacheFill {
    pub(super) fn new(pending: PendingStore) -> Self {
        let limit = BodyLimit::new(BodyKind::CacheCopy, pending.max_bytes());
        Self { pending: Some(pending), copy: Vec::new(), limit }
    }

    /// The largest body that will be stored.
    pub fn max_bytes(&self) -> usize {
        self.limit.limit()
    }

    /// The length of the body being copied, as the upstream declared it
    /// and as the executor will read it (`None`: unknown, or decoded by
    /// the platform from an encoded length): an executor may read a body
    /// of known length in one call ([`PendingStore::declared_length`]).
    pub fn declared_length(&self) -> Option<u64> {
        self.pending.as_ref().and_then(PendingStore::declared_length)
    }

    /// Copy one chunk of the body.
    pub fn accept(&mut self, iso: &mut Isolate, chunk: &[u8], now_ms: u64) -> Chunk {
        self.accept_with(iso, chunk.len(), now_ms, |buf| buf.copy_from_slice(chunk))
    }

    /// Copy one chunk of `len` bytes that `write` puts straight into the
    /// cache copy (a platform buffer copied once, not first into a
    /// temporary: the Workers executor copies a JS `Uint8Array` this way).
    pub fn accept_with(&mut self, iso: &mut Isolate, len: usize, now_ms: u64, write: impl FnOnce(&mut [u8])) -> Chunk {
        if self.pending.is_none() {
            return Chunk::TooLarge;
        }
        if self.limit.take(len).is_err() {
            self.copy = Vec::new();
            if let Some(p) = self.pending.take() {
                iso.cache.not_stored(p, "too-large", now_ms);
            }
            return Chunk::TooLarge;
        }
        let start = self.copy.len();
        self.copy.resize(start + len, 0);
        write(&mut self.copy[start..]);
        Chunk::Copied
    }

    /// The body is complete: store it (L1 now). Write the returned entry
    /// to the platform cache.
    pub fn finish(self, iso: &mut Isolate, now_ms: u64) -> Option<L2Write> {
        let pending = self.pending?;
        iso.cache.store(pending, Arc::from(self.copy), now_ms).l2
    }

    /// The body failed: never stored (waiters are released).
    pub fn fail(self, iso: &mut Isolate, now_ms: u64) {
        if let Some(p) = self.pending {
            iso.cache.not_stored(p, "body-error", now_ms);
        }
    }
}
