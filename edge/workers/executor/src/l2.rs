//! The platform cache (`caches.default`), reached through
//! `js_sys::Reflect` so that a missing or failing Cache API (plain
//! `workerd serve` without a cache service) only means "no L2": every call
//! is caught, time-limited, and treated as a miss.

use std::cell::Cell;
use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::{Array, Reflect};
use offload_core::cache::edge::{L2Write, META_HEADER};
use wasm_bindgen::{JsCast, JsValue};
use worker::{web_sys, Delay};

use crate::body;

/// Longest wait for one platform-cache call before treating it as a miss.
const L2_TIMEOUT_MS: u64 = 1_000;

thread_local! {
    static L2_WARNED: Cell<bool> = const { Cell::new(false) };
}

/// Log the first L2 failure of the isolate (then stay quiet: without a
/// cache service every call fails the same way).
fn warn_once(what: &str) {
    if !L2_WARNED.with(|w| w.replace(true)) {
        worker::console_warn!("platform cache unavailable ({what}); serving from the in-isolate cache only");
    }
}

fn default_cache() -> Option<JsValue> {
    let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).ok().filter(JsValue::is_object)?;
    Reflect::get(&caches, &JsValue::from_str("default")).ok().filter(JsValue::is_object)
}

async fn call(method: &str, args: Array) -> Option<JsValue> {
    let Some(cache) = default_cache() else {
        warn_once("no caches.default");
        return None;
    };
    let Ok(promise) = body::call(&cache, method, &args) else {
        warn_once(method);
        return None;
    };
    let call = Box::pin(body::settle(promise));
    let timer = Box::pin(Delay::from(Duration::from_millis(L2_TIMEOUT_MS)));
    match select(call, timer).await {
        Either::Left((Ok(v), _)) => Some(v),
        Either::Left((Err(_), _)) => {
            warn_once(method);
            None
        }
        Either::Right(_) => {
            warn_once("timeout");
            None
        }
    }
}

/// The entry's metadata and body (at most `max` bytes: a larger one is
/// not read past the limit and counts as a miss).
pub(crate) async fn get(key: &str, max: usize) -> Option<(String, Vec<u8>)> {
    let v = call("match", Array::of1(&JsValue::from_str(key))).await?;
    let resp: web_sys::Response = v.dyn_into().ok()?;
    let meta = resp.headers().get(META_HEADER).ok().flatten()?;
    let body = body::read_capped(resp.body().map(Into::into), max).await.ok()?;
    Some((meta, body))
}

pub(crate) async fn put(w: L2Write) {
    let cc = format!("public, max-age={0}, s-maxage={0}", w.max_age);
    let (Ok(meta), Ok(cc)) = (http::HeaderValue::from_str(&w.meta), http::HeaderValue::from_str(&cc)) else { return };
    let mut headers = http::HeaderMap::new();
    headers.insert(http::HeaderName::from_static(META_HEADER), meta);
    headers.insert(http::header::CACHE_CONTROL, cc);
    // The stored body is copied once, from Wasm memory into a JS array.
    let body: JsValue = js_sys::Uint8Array::from(&w.body[..]).into();
    let Ok(js) = crate::js::response(200, &headers, &body) else { return };
    let _ = call("put", Array::of2(&JsValue::from_str(&w.key), &js.into())).await;
}

pub(crate) async fn delete(key: &str) {
    let _ = call("delete", Array::of1(&JsValue::from_str(key))).await;
}

