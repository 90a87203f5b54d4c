//! The cache layer of the Workers adapter: I/O only. Decisions come from
//! [`offload_core::cache::EdgeCache`] (the per-isolate L1, kept in the
//! isolate state); this module performs them:
//!
//! - the purge endpoint (answered before routing);
//! - L2: the platform cache (`caches.default`), reached through
//!   `js_sys::Reflect` so that a missing or failing Cache API (plain
//!   `workerd serve` without a cache service) only means "no L2": every
//!   call is caught, time-limited, and treated as a miss;
//! - coalescing waits (short `Delay` sleeps between polls);
//! - `stale-while-revalidate` revalidations in `ctx.wait_until`;
//! - storable bodies stream to the viewer while a copy of at most
//!   `max_entry_bytes` is kept for the cache ([`fill_cache`]); everything
//!   else streams through untouched.

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{select, Either};
use js_sys::{Array, Function, Promise, Reflect};
use offload_core::cache::edge::{
    Adopted, AfterResponse, CacheDecision, CachedResponse, L2Write, PendingStore, META_HEADER,
};
use offload_core::proxy::body::{BodyKind, BodyLimit};
use offload_core::proxy::canonical::CanonicalRequest;
use offload_core::{Error, Forward, Plan, Viewer};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{Context, Delay, Headers, Response, ResponseBody};

use crate::body::{self, Upload};
use crate::{
    final_status, from_worker_headers, now_ms, respond_error, run_steps, to_worker_headers,
    to_worker_response, with_cache, with_isolate, Upstreamed,
};

pub(crate) use offload_core::cache::edge::CacheFetch as Fetch;

/// Sleep between polls of a coalesced wait.
const POLL_MS: u64 = 10;
/// Longest wait for one platform-cache call before treating it as a miss.
const L2_TIMEOUT_MS: u64 = 1_000;

fn not_initialized() -> worker::Result<Response> {
    respond_error(&Error::Upstream("edge not initialized".into()))
}

/// `POST <purge_path>`: purge L1 (and delete the purged URLs' L2 entries).
pub(crate) async fn purge(head: &CanonicalRequest, body: &[u8]) -> worker::Result<Response> {
    let now = now_ms();
    let Some(result) = with_cache(|edge, _, c| c.purge(edge.config(), head, body, now)) else {
        return not_initialized();
    };
    for key in &result.l2_delete {
        l2::delete(key).await;
    }
    to_worker_response(&result.response)
}

/// A `GET`/`HEAD` the pipeline planned: answer through the cache.
pub(crate) async fn serve(
    ctx: &Context,
    head: CanonicalRequest,
    viewer: Viewer,
    mut fwd: Box<Forward>,
) -> worker::Result<Response> {
    let now = now_ms();
    let Some(mut decision) = with_cache(|edge, _, c| c.lookup(edge.config(), &fwd, now)) else {
        return not_initialized();
    };
    let mut tried_l2 = false;
    loop {
        decision = match decision {
            CacheDecision::Bypass(status) => {
                if let Some(s) = status {
                    fwd.cache_status = s;
                }
                return crate::forward_plain(fwd, Upload::None).await;
            }
            CacheDecision::Respond(c) => return respond(&c),
            CacheDecision::RespondAndRevalidate(c, fetch) => {
                let (h, v) = (head.clone(), viewer.clone());
                ctx.wait_until(async move { revalidate_in_background(h, v, fetch).await });
                return respond(&c);
            }
            CacheDecision::Wait(waiting) => loop {
                Delay::from(Duration::from_millis(POLL_MS)).await;
                let now = now_ms();
                match with_cache(|_, _, c| c.poll(&waiting, now)) {
                    Some(Some(next)) => break next,
                    Some(None) => {}
                    None => return not_initialized(),
                }
            },
            CacheDecision::Fetch(fetch) => {
                let fetch = if tried_l2 {
                    fetch
                } else {
                    tried_l2 = true;
                    match try_l2(fetch).await {
                        Ok(next) => {
                            decision = next;
                            continue;
                        }
                        Err(fetch) => fetch,
                    }
                };
                return fetch_upstream(Some(ctx), &head, &viewer, fwd, fetch).await;
            }
        };
    }
}

/// Look the miss up in the platform cache; an entry found there is put
/// into L1 and decided on again. `Err` gives the fetch back.
async fn try_l2(fetch: Fetch) -> Result<CacheDecision, Fetch> {
    let Some(key) = fetch.l2_key() else { return Err(fetch) };
    let max = with_cache(|_, _, c| c.max_entry_bytes()).unwrap_or(0);
    let Some((meta, body)) = l2::get(&key, max).await else { return Err(fetch) };
    let now = now_ms();
    let mut slot = Some(fetch);
    let adopted = with_cache(|_, _, c| slot.take().map(|f| c.adopt_l2(f, &meta, body, now)));
    match (adopted.flatten(), slot) {
        (Some(Adopted::Decision(d)), _) => Ok(d),
        (Some(Adopted::Rejected(f)), _) | (None, Some(f)) => Err(f),
        // Unreachable once the isolate is initialized.
        (None, None) => Ok(CacheDecision::Bypass(None)),
    }
}

/// Re-plan the request (a fresh failover walk) and revalidate the stored
/// response; the result only updates the cache.
async fn revalidate_in_background(head: CanonicalRequest, viewer: Viewer, fetch: Fetch) {
    let plan = with_isolate(|edge, _| edge.plan(&head, &viewer, now_ms()));
    match plan {
        Some(Plan::Forward(fwd)) => {
            let _ = fetch_upstream(None, &head, &viewer, fwd, fetch).await;
        }
        _ => {
            let now = now_ms();
            with_cache(|_, _, c| c.abandon(fetch, now));
        }
    }
}

/// Send the fetch upstream (walking the failover steps) and store or pass
/// on what comes back. `ctx`: schedule the L2 write after the response
/// (background revalidations have none and write inline). `viewer`: to
/// re-plan a refetch.
async fn fetch_upstream(
    ctx: Option<&Context>,
    head: &CanonicalRequest,
    viewer: &Viewer,
    mut fwd: Box<Forward>,
    fetch: Fetch,
) -> worker::Result<Response> {
    match run_steps(&mut fwd, &mut Upload::None, Some(&fetch)).await {
        Upstreamed::Response(resp, sent_at) => {
            let status = resp.status_code();
            let Some(status_code) = final_status(status) else {
                let now = now_ms();
                with_cache(|_, _, c| c.abandon(fetch, now));
                return crate::unrelayable_status(status);
            };
            let mut headers = from_worker_headers(resp.headers());
            let now = now_ms();
            let Some(after) = with_cache(|_, _, c| c.on_response(fetch, status, &headers, sent_at, now)) else {
                return not_initialized();
            };
            match after {
                AfterResponse::Serve(c) => respond(&c),
                AfterResponse::Refetch(fetch) => {
                    // The 304 answered a question the viewer never asked:
                    // a fresh failover walk, now unconditional.
                    let plan = with_isolate(|edge, _| edge.plan(head, viewer, now_ms()));
                    match plan {
                        Some(Plan::Forward(fwd)) => Box::pin(fetch_upstream(ctx, head, viewer, fwd, fetch)).await,
                        _ => {
                            let now = now_ms();
                            with_cache(|_, _, c| c.abandon(fetch, now));
                            respond_error(&Error::Upstream("refetch not planned".into()))
                        }
                    }
                }
                AfterResponse::Deliver(d) => {
                    d.apply(&mut fwd, &mut headers);
                    with_isolate(|edge, _| edge.finish(&fwd, status_code, &mut headers));
                    let (_, body) = resp.into_parts();
                    Ok(Response::builder().with_status(status).with_headers(to_worker_headers(&headers)).body(body))
                }
                AfterResponse::Store(pending) => {
                    // The body streams to the viewer as it arrives; a copy
                    // of at most `max_entry_bytes` is kept for the cache
                    // and stored once the body is complete (after the
                    // response, in `wait_until`).
                    let (_, body) = resp.into_parts();
                    let stream: Option<JsValue> = match body {
                        ResponseBody::Stream(s) => Some(s.into()),
                        ResponseBody::Body(b) => Some(js_sys::Uint8Array::from(b.as_slice()).into()),
                        ResponseBody::Empty => None,
                    };
                    let now = now_ms();
                    let Some(delivery) = with_cache(|_, _, c| c.streaming_delivery(&pending, now)) else {
                        return not_initialized();
                    };
                    delivery.apply(&mut fwd, &mut headers);
                    with_isolate(|edge, _| edge.finish(&fwd, status_code, &mut headers));
                    let out = delivery.status(status);
                    let to_viewer = ctx.is_some()
                        && stream.is_some()
                        && !delivery.is_not_modified()
                        && head.method() != http::Method::HEAD
                        && !matches!(out, 204 | 205 | 304);
                    let Some(ctx) = ctx.filter(|_| to_viewer) else {
                        // No body for the viewer (or none waiting: a
                        // background revalidation): fill the cache only.
                        match ctx {
                            Some(ctx) => ctx.wait_until(fill_cache(pending, stream, None)),
                            None => fill_cache(pending, stream, None).await,
                        }
                        return Ok(with_body(out, &headers, Vec::new()));
                    };
                    let (readable, writer, writable) = match body::identity() {
                        Ok(t) => t,
                        Err(e) => {
                            let now = now_ms();
                            with_cache(|_, _, c| c.not_stored(pending, "stream", now));
                            worker::console_error!("identity stream: {}", body::js_reason(&e));
                            return respond_error(&Error::Upstream("response stream unavailable".into()));
                        }
                    };
                    ctx.wait_until(fill_cache(pending, stream, Some((writer, writable))));
                    let readable: worker::web_sys::ReadableStream = readable.unchecked_into();
                    Ok(Response::builder()
                        .with_status(out)
                        .with_headers(to_worker_headers(&headers))
                        .body(ResponseBody::Stream(readable)))
                }
            }
        }
        Upstreamed::GiveUp(response, stale_ok) => {
            let now = now_ms();
            match with_cache(|_, _, c| c.on_give_up(fetch, stale_ok, now)).flatten() {
                Some(c) => respond(&c),
                None => to_worker_response(&response),
            }
        }
        Upstreamed::Failed(e) => {
            let now = now_ms();
            with_cache(|_, _, c| c.abandon(fetch, now));
            respond_error(&e)
        }
    }
}

/// Read the upstream body of a storable response: each chunk goes to the
/// viewer (`viewer`: the writer of its response body, and that body's
/// writable end) and into the cache copy while the copy fits
/// `max_entry_bytes`. Past it, the copy is dropped (not stored) and the
/// rest of the body is piped to the viewer without passing through Wasm.
/// A complete body is stored (L1 now, L2 after); a failed one is never
/// stored, and the viewer's body fails too (it never looks complete). A
/// viewer that goes away does not stop the cache copy.
async fn fill_cache(pending: PendingStore, stream: Option<JsValue>, viewer: Option<(body::Writer, JsValue)>) {
    let mut viewer = viewer;
    let max = pending.max_bytes();
    let mut copy: Vec<u8> = Vec::new();
    if let Some(stream) = stream {
        let reader = match body::Reader::new(&stream) {
            Ok(r) => r,
            Err(e) => return body_failed(pending, viewer, &e),
        };
        let mut counter = BodyLimit::new(BodyKind::CacheCopy, max);
        loop {
            let chunk = match reader.read().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return body_failed(pending, viewer, &e),
            };
            if let Err(e) = counter.take(chunk.length() as usize) {
                drop(std::mem::take(&mut copy));
                let now = now_ms();
                with_cache(|_, _, c| c.not_stored(pending, "too-large", now));
                worker::console_log!("not stored: {e}");
                let Some((writer, writable)) = viewer.take() else {
                    reader.cancel().await;
                    return;
                };
                if writer.write(&chunk).await.is_err() {
                    reader.cancel().await;
                    return;
                }
                writer.release();
                reader.release();
                if let Err(e) = body::pipe(&stream, &writable).await {
                    worker::console_warn!("upstream body: {}", body::js_reason(&e));
                }
                return;
            }
            copy.extend_from_slice(&chunk.to_vec());
            if let Some((writer, _)) = &viewer {
                if writer.write(&chunk).await.is_err() {
                    viewer = None;
                }
            }
        }
    }
    if let Some((writer, _)) = viewer.take() {
        if let Err(e) = writer.close().await {
            worker::console_warn!("viewer body: {}", body::js_reason(&e));
        }
    }
    let now = now_ms();
    let body: Arc<[u8]> = Arc::from(copy);
    if let Some(w) = with_cache(|_, _, c| c.store(pending, body, now)).and_then(|r| r.l2) {
        l2::put(w).await;
    }
}

fn body_failed(pending: PendingStore, viewer: Option<(body::Writer, JsValue)>, e: &JsValue) {
    let now = now_ms();
    with_cache(|_, _, c| c.not_stored(pending, "body-error", now));
    worker::console_warn!("upstream body: {}", body::js_reason(e));
    if let Some((writer, _)) = viewer {
        writer.abort("upstream body failed");
    }
}

fn respond(c: &CachedResponse) -> worker::Result<Response> {
    Ok(with_body(c.status, &c.headers, c.body.to_vec()))
}

/// A response with a buffered body. Null-body statuses (204, 205, 304) and
/// empty bodies get no body at all: the platform refuses (and the `worker`
/// crate would panic on) a 304 with one.
fn with_body(status: u16, headers: &http::HeaderMap, body: Vec<u8>) -> Response {
    let builder = Response::builder().with_status(status).with_headers(to_worker_headers(headers));
    if body.is_empty() || matches!(status, 204 | 205 | 304) {
        builder.empty()
    } else {
        builder.fixed(body)
    }
}

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

/// The platform cache, every call caught: `None` is a miss.
mod l2 {
    use super::*;

    fn default_cache() -> Option<JsValue> {
        let caches = Reflect::get(&js_sys::global(), &JsValue::from_str("caches")).ok().filter(JsValue::is_object)?;
        Reflect::get(&caches, &JsValue::from_str("default")).ok().filter(JsValue::is_object)
    }

    async fn call(method: &str, args: Array) -> Option<JsValue> {
        let Some(cache) = default_cache() else {
            warn_once("no caches.default");
            return None;
        };
        let f: Function = Reflect::get(&cache, &JsValue::from_str(method)).ok()?.dyn_into().ok()?;
        let promise = match Reflect::apply(&f, &cache, &args) {
            Ok(p) => Promise::resolve(&p),
            Err(_) => {
                warn_once(method);
                return None;
            }
        };
        let call = Box::pin(JsFuture::from(promise));
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

    /// The entry's metadata and body.
    /// The entry's metadata and body (at most `max` bytes: a larger one is
    /// not read past the limit and counts as a miss).
    pub(super) async fn get(key: &str, max: usize) -> Option<(String, Vec<u8>)> {
        let v = call("match", Array::of1(&JsValue::from_str(key))).await?;
        let resp: web_sys::Response = v.dyn_into().ok()?;
        let meta = resp.headers().get(META_HEADER).ok().flatten()?;
        let body = body::read_capped(resp.body().map(Into::into), BodyKind::CacheCopy, max).await.ok()?;
        Some((meta, body))
    }

    pub(super) async fn put(w: L2Write) {
        let headers = Headers::new();
        let cc = format!("public, max-age={0}, s-maxage={0}", w.max_age);
        if headers.set(META_HEADER, &w.meta).is_err() || headers.set("cache-control", &cc).is_err() {
            return;
        }
        let resp = Response::builder().with_status(200).with_headers(headers).fixed(w.body.to_vec());
        let js: web_sys::Response = resp.into();
        let _ = call("put", Array::of2(&JsValue::from_str(&w.key), &js.into())).await;
    }

    pub(super) async fn delete(key: &str) {
        let _ = call("delete", Array::of1(&JsValue::from_str(key))).await;
    }

    use worker::web_sys;
}
