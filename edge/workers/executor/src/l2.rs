//! The platform cache (`caches.default`), reached from the executor's JS
//! (`offload_l2_match`/`offload_l2_put`/`offload_l2_delete` in [`crate::js`])
//! so that a missing or failing Cache API (plain `workerd serve` without a
//! cache service) only means "no L2": every call is caught, time-limited,
//! and treated as a miss. A lookup is one JS promise (match, metadata,
//! capped body read), continued by the machine in one callback
//! ([`get_then`]) or awaited by the Rust loop ([`get`]).

use std::cell::Cell;

use js_sys::{Array, Promise, Uint8Array};
use offload_core::cache::edge::{L2Write, META_HEADER};
use wasm_bindgen::{JsCast, JsValue};

use crate::{body, js};

/// Longest wait for one platform-cache call before treating it as a miss.
const L2_TIMEOUT_MS: f64 = 1_000.0;

thread_local! {
    static L2_WARNED: Cell<bool> = const { Cell::new(false) };
}

/// Log the first L2 failure of the isolate (then stay quiet: without a
/// cache service every call fails the same way).
fn warn_once(e: &JsValue) {
    if !L2_WARNED.with(|w| w.replace(true)) {
        worker::console_warn!("platform cache unavailable ({}); serving from the in-isolate cache only", body::js_reason(e));
    }
}

/// An entry as the lookup's promise settled: `[meta, bytes]`, or `null`
/// for a miss (no entry, no metadata, a body over the limit).
fn entry_of(settled: Result<JsValue, JsValue>) -> Option<(String, Vec<u8>)> {
    let v = settled.map_err(|e| warn_once(&e)).ok()?;
    let pair: Array = v.dyn_into().ok()?;
    let meta = pair.get(0).as_string()?;
    let bytes: Uint8Array = pair.get(1).dyn_into().ok()?;
    Some((meta, bytes.to_vec()))
}

/// The entry's metadata and body (at most `max` bytes: a larger one is
/// not read past the limit and counts as a miss), then `done` with it.
pub(crate) fn get_then(key: &str, max: usize, done: impl FnOnce(Option<(String, Vec<u8>)>) -> JsValue + 'static) -> JsValue {
    js::then(js::l2_match(key, META_HEADER, max as f64, L2_TIMEOUT_MS), move |r| done(entry_of(r)))
}

/// [`get_then`] awaited.
pub(crate) async fn get(key: &str, max: usize) -> Option<(String, Vec<u8>)> {
    entry_of(js::settled(js::l2_match(key, META_HEADER, max as f64, L2_TIMEOUT_MS)).await)
}

/// The put of `w` as a promise that never rejects (a failure is logged
/// once).
pub(crate) fn put_promise(w: L2Write) -> Promise {
    let cc = format!("public, max-age={0}, s-maxage={0}", w.max_age);
    let (Ok(meta), Ok(cc)) = (http::HeaderValue::from_str(&w.meta), http::HeaderValue::from_str(&cc)) else {
        return Promise::resolve(&JsValue::UNDEFINED);
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::HeaderName::from_static(META_HEADER), meta);
    headers.insert(http::header::CACHE_CONTROL, cc);
    // The stored body is copied once, from Wasm memory into a JS array.
    let body = Uint8Array::from(&w.body[..]);
    let put = js::l2_put(&w.key, &headers, &body, L2_TIMEOUT_MS);
    Promise::resolve(&js::then(put, |r| {
        if let Err(e) = r {
            warn_once(&e);
        }
        JsValue::UNDEFINED
    }))
}

pub(crate) async fn put(w: L2Write) {
    let _ = js::settled(Ok(put_promise(w))).await;
}

/// The put of `w` after the response, in `ctx.waitUntil`.
pub(crate) fn put_later(ctx: &worker::Context, w: L2Write) {
    let _ = ctx.as_ref().wait_until(&put_promise(w));
}

pub(crate) async fn delete(key: &str) {
    if let Err(e) = js::settled(js::l2_delete(key, L2_TIMEOUT_MS)).await {
        warn_once(&e);
    }
}
