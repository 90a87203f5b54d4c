//! Large bodies for memory and streaming tests.
//!
//! - `GET /api/blob/{bytes}?seed=N[&cc=...][&drip_ms=M]`: `bytes` bytes
//!   of a deterministic pattern ([`pattern_byte`]), sent chunked (no
//!   `Content-Length`) in 64 KiB chunks as they are generated, with
//!   `Cache-Control: public, max-age=300` (or `cc`); with `drip_ms`, a
//!   pause of M ms (at most 2000) before each chunk after the first (a
//!   body slower than the edge's per-try timeout). Nothing is held in
//!   memory.
//! - `GET /api/blob/{bytes}?seed=N&gzip=1` (at most 16 MiB): the same
//!   bytes gzip-encoded whole, with `Content-Encoding: gzip` and the
//!   compressed `Content-Length` (what a compressing origin sends; the
//!   pattern compresses a few hundred times, so a small declared length
//!   stands for a large decoded body).
//! - `POST /api/sink?seed=N` (also PUT): reads the body as a stream and
//!   answers its length, SHA-256 and, with `seed`, whether every byte
//!   matched the pattern — byte-exact uploads of any size, in constant
//!   memory.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt as _;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::handlers::json_error;

/// Chunk size of generated bodies.
const CHUNK: usize = 64 * 1024;
/// Largest blob served (16 GiB).
const MAX_BLOB: u64 = 16 << 30;

/// Byte `offset` of the pattern for `seed`: `(offset + seed) mod 251` (a
/// prime, so chunks never line up with power-of-two buffer sizes).
pub fn pattern_byte(offset: u64, seed: u64) -> u8 {
    (offset.wrapping_add(seed) % 251) as u8
}

/// Bytes `offset..offset + n` of the pattern for `seed`.
fn pattern(offset: u64, n: u64, seed: u64) -> Vec<u8> {
    (offset..offset + n).map(|i| pattern_byte(i, seed)).collect()
}

/// The `seed` query parameter; `Err` is the 400 for a bad one (boxed:
/// a response is large).
fn seed_of(q: &HashMap<String, String>) -> Result<Option<u64>, Box<Response>> {
    match q.get("seed") {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            Box::new(json_error(StatusCode::BAD_REQUEST, "seed: expected a number", json!({"field": "seed"})))
        }),
    }
}

/// Largest blob served gzip-encoded (built in memory).
const MAX_GZIP_BLOB: u64 = 16 << 20;

/// `GET /api/blob/{bytes}`
pub async fn blob(Path(bytes): Path<String>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(total) = bytes.parse::<u64>().ok().filter(|n| *n <= MAX_BLOB) else {
        return json_error(StatusCode::BAD_REQUEST, "bytes: expected 0..=17179869184", json!({"field": "bytes"}));
    };
    let gzip = match q.get("gzip").map(String::as_str) {
        None | Some("0") => false,
        Some("1") if total <= MAX_GZIP_BLOB => true,
        Some(_) => {
            return json_error(StatusCode::BAD_REQUEST, "gzip: expected 0 or 1, with bytes <= 16777216", json!({"field": "gzip"}));
        }
    };
    let seed = match seed_of(&q) {
        Ok(s) => s.unwrap_or(0),
        Err(r) => return *r,
    };
    let cc = q.get("cc").cloned().unwrap_or_else(|| "public, max-age=300".to_owned());
    let drip = match q.get("drip_ms").map(|v| v.parse::<u64>().ok().filter(|ms| *ms <= 2000)) {
        None => 0,
        Some(Some(ms)) => ms,
        Some(None) => {
            return json_error(StatusCode::BAD_REQUEST, "drip_ms: expected 0..=2000", json!({"field": "drip_ms"}));
        }
    };
    if gzip {
        return gzip_blob(total, seed, &cc);
    }
    let chunks = futures_util::stream::unfold(0u64, move |offset| async move {
        if offset >= total {
            return None;
        }
        if offset > 0 && drip > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(drip)).await;
        }
        let n = (total - offset).min(CHUNK as u64);
        Some((Ok::<Bytes, std::convert::Infallible>(Bytes::from(pattern(offset, n, seed))), offset + n))
    });
    let mut resp = Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, axum::http::HeaderValue::from_static("application/octet-stream"));
    match axum::http::HeaderValue::from_str(&cc) {
        Ok(v) => {
            h.insert(CACHE_CONTROL, v);
        }
        Err(_) => return json_error(StatusCode::BAD_REQUEST, "cc: not a header value", json!({"field": "cc"})),
    }
    resp
}

/// The blob gzip-encoded whole, with its compressed `Content-Length`.
fn gzip_blob(total: u64, seed: u64, cc: &str) -> Response {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut offset = 0;
    while offset < total {
        let n = (total - offset).min(CHUNK as u64);
        if enc.write_all(&pattern(offset, n, seed)).is_err() {
            return json_error(StatusCode::INTERNAL_SERVER_ERROR, "gzip: encoding failed", json!({}));
        }
        offset += n;
    }
    let Ok(body) = enc.finish() else {
        return json_error(StatusCode::INTERNAL_SERVER_ERROR, "gzip: encoding failed", json!({}));
    };
    let Ok(cc) = axum::http::HeaderValue::from_str(cc) else {
        return json_error(StatusCode::BAD_REQUEST, "cc: not a header value", json!({"field": "cc"}));
    };
    let mut resp = Body::from(body).into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, axum::http::HeaderValue::from_static("application/octet-stream"));
    h.insert(axum::http::header::CONTENT_ENCODING, axum::http::HeaderValue::from_static("gzip"));
    h.insert(CACHE_CONTROL, cc);
    resp
}

/// `POST /api/sink`
pub async fn sink(Query(q): Query<HashMap<String, String>>, body: Body) -> Response {
    let seed = match seed_of(&q) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let mut stream = body.into_data_stream();
    let mut hash = Sha256::new();
    let mut len: u64 = 0;
    let mut matches = true;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("body failed after {len} bytes: {e}");
                return json_error(StatusCode::BAD_REQUEST, &msg, json!({"body_len": len}));
            }
        };
        if let Some(seed) = seed {
            matches &= chunk.iter().enumerate().all(|(i, b)| *b == pattern_byte(len + i as u64, seed));
        }
        hash.update(&chunk);
        len += chunk.len() as u64;
    }
    let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let body = json!({ "body_len": len, "sha256": sha, "pattern_ok": seed.map(|_| matches) });
    ([(CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_seeded() {
        assert_eq!(pattern_byte(0, 0), 0);
        assert_eq!(pattern_byte(250, 0), 250);
        assert_eq!(pattern_byte(251, 0), 0);
        assert_eq!(pattern_byte(0, 7), 7);
        assert_ne!(pattern_byte(5, 1), pattern_byte(5, 2));
    }
}
