//! Cloudflare Workers adapter: conversion and I/O only. Every decision is
//! made by `offload_core`; this crate turns `worker` types into `http` types
//! and back, performs the fetches the core's plan asks for (with per-try
//! timeouts), reports each outcome back, and keeps the per-isolate state.
//! The cache layer (L1 in the isolate, L2 in the platform cache) is in
//! [`cache`].

mod body;
mod cache;

use std::cell::RefCell;
use std::time::Duration;

use futures_util::future::{select, Either};
use http::{HeaderMap, HeaderName, HeaderValue};
use offload_core::route::geo::WorkersCf;
use offload_core::route::Outcome;
use offload_core::secret::{Platform, Secret, SecretMap};
use offload_core::cache::EdgeCache;
use offload_core::proxy::body::BodyKind;
use offload_core::{Config, Edge, EdgeState, Error, Forward, Plan, Step, Viewer};

use crate::body::Upload;
use worker::{
    event, AbortController, Context, Delay, Env, Fetch, Headers, Method, Request, RequestInit,
    RequestRedirect, Response,
};

/// The config bundled at build time (validated by build.rs, so a bad
/// config never deploys).
const CONFIG_TOML: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.toml"));

/// The isolate's edge and its shared state (health, retry budget, the L1
/// cache). Wasm in Workers is single-threaded; borrows never live across
/// an `.await`.
struct Isolate {
    edge: Edge,
    state: EdgeState,
    cache: EdgeCache,
}

thread_local! {
    static ISOLATE: RefCell<Option<Result<Isolate, Error>>> = const { RefCell::new(None) };
}

/// Build the edge on the first request, with the secrets the config
/// references read from the Worker's secret bindings. A missing binding
/// is an error naming it (never a value): the edge answers 500 and does
/// not run without its keys.
fn init(env: &Env) -> Result<(), Error> {
    ISOLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(build(env));
        }
        match slot.as_ref() {
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(Error::Upstream("edge not initialized".into())),
        }
    })
}

fn build(env: &Env) -> Result<Isolate, Error> {
    let config = Config::from_toml(CONFIG_TOML)?;
    let edge = Edge::new(config.clone(), &secrets(&config, env)).map_err(Error::from)?;
    let state = EdgeState::new(edge.config());
    let cache = EdgeCache::new(&edge);
    Ok(Isolate { edge, state, cache })
}

/// The values of the secret bindings the config names (`wrangler secret
/// put NAME`; `.dev.vars` under `wrangler dev`). Absent ones stay absent:
/// [`Edge::new`] reports the first by field and binding name.
fn secrets(config: &Config, env: &Env) -> SecretMap {
    let mut map = SecretMap::new(Platform::Workers);
    for (_, r) in config.secret_refs() {
        if let Some(name) = r.binding_name() {
            if let Ok(v) = env.secret(name) {
                map.insert_binding(name, Secret::new(v.to_string().into_bytes()));
            }
        }
    }
    map
}

fn with_isolate<T>(f: impl FnOnce(&Edge, &mut EdgeState) -> T) -> Option<T> {
    ISOLATE.with(|cell| match cell.borrow_mut().as_mut() {
        Some(Ok(iso)) => Some(f(&iso.edge, &mut iso.state)),
        _ => None,
    })
}

fn with_cache<T>(f: impl FnOnce(&Edge, &mut EdgeState, &mut EdgeCache) -> T) -> Option<T> {
    ISOLATE.with(|cell| match cell.borrow_mut().as_mut() {
        Some(Ok(iso)) => Some(f(&iso.edge, &mut iso.state, &mut iso.cache)),
        _ => None,
    })
}

fn now_ms() -> u64 {
    let ms = js_sys::Date::now();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

fn random_u32() -> u32 {
    (js_sys::Math::random() * f64::from(u32::MAX)) as u32
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    if let Err(e) = init(&env) {
        worker::console_error!("{e}");
        return to_worker_response(&e.to_response());
    }
    let raw = match to_http_head(&req) {
        Ok(h) => h,
        Err(e) => return respond_error(&e),
    };
    // One canonical form of the request decides everything below.
    let head = match with_isolate(|edge, _| edge.canonicalize(&raw)) {
        Some(Ok(head)) => head,
        Some(Err(refusal)) => return to_worker_response(&refusal),
        None => return respond_error(&Error::Upstream("edge not initialized".into())),
    };
    // The cache layer's own endpoint, answered before routing. Its token
    // is checked before a byte of body is read; the body is capped.
    if with_cache(|_, _, c| c.is_purge(&head)) == Some(true) {
        if let Some(Some(refused)) = with_cache(|_, _, c| c.purge_precheck(&head)) {
            return to_worker_response(&refused);
        }
        let limit = offload_core::cache::edge::PURGE_MAX_BODY;
        return match body::read_capped(req.inner().body().map(Into::into), BodyKind::Purge, limit).await {
            Ok(body) => cache::purge(&head, &body).await,
            Err(body::ReadError::TooLarge(_)) => match with_cache(|_, _, c| c.purge_too_large()) {
                Some(r) => to_worker_response(&r),
                None => respond_error(&Error::Upstream("edge not initialized".into())),
            },
            Err(e) => respond_error(&body_error(&e)),
        };
    }
    let viewer = viewer_of(&req, head.request());
    let presign = with_isolate(|edge, _| edge.is_presign(&head)).unwrap_or(false);
    if presign {
        if let Some(Some(refused)) = with_isolate(|edge, _| edge.presign_precheck(&head)) {
            return to_worker_response(&refused);
        }
        let limit = offload_core::pipeline::PRESIGN_MAX_BODY;
        let body = match body::read_capped(req.inner().body().map(Into::into), BodyKind::Presign, limit).await {
            Ok(b) => b,
            Err(body::ReadError::TooLarge(_)) => return to_worker_response(&offload_core::pipeline::presign_too_large()),
            Err(e) => return respond_error(&body_error(&e)),
        };
        let resp = with_isolate(|edge, _| edge.presign_endpoint(&head, &body, &viewer, now_ms() / 1000));
        return match resp {
            Some(r) => to_worker_response(&r),
            None => respond_error(&Error::Upstream("edge not initialized".into())),
        };
    }
    let plan = with_isolate(|edge, _| edge.plan(&head, &viewer, now_ms()));
    let fwd = match plan {
        Some(Plan::Respond(resp)) => return to_worker_response(&resp),
        Some(Plan::Forward(fwd)) => fwd,
        None => return respond_error(&Error::Upstream("edge not initialized".into())),
    };
    if !fwd.send_body {
        return cache::serve(&ctx, head, viewer, fwd).await;
    }
    // The viewer's body streams to the origin; it is kept in memory only
    // when a retry could replay it and it fits the replay limit.
    let replay_limit = with_isolate(|edge, _| edge.config().routing().body_replay_limit()).unwrap_or(0);
    let declared = offload_core::proxy::body::declared_length(head.headers());
    let upload = match body::upload(req.inner().body().map(Into::into), declared, replay_limit).await {
        Ok(u) => u,
        Err(e) => return respond_error(&body_error(&e)),
    };
    forward_plain(fwd, upload).await
}

/// A viewer body that could not be read: a 400 that says so (never an
/// empty or truncated body sent on).
fn body_error(e: &body::ReadError) -> Error {
    worker::console_warn!("viewer body: {e}");
    Error::Request(offload_core::RequestError::new(
        offload_core::error::RequestErrorKind::BadRequest,
        "the request body could not be read",
    ))
}

/// How walking the plan's steps ended.
enum Upstreamed {
    /// The response to deliver, and when its request was sent (ms).
    Response(Response, u64),
    /// Every attempt failed: the pipeline's error response, and whether a
    /// stale cached response may be served instead.
    GiveUp(http::Response<Vec<u8>>, bool),
    Failed(Error),
}

/// Walk the failover steps: send, report, until there is a response to
/// deliver or the pipeline gives up. `fetch` sets the cache's conditional
/// headers on each attempt.
async fn run_steps(fwd: &mut Forward, body: &mut Upload, fetch: Option<&cache::Fetch>) -> Upstreamed {
    // The origin is chosen now, when the request really goes upstream: a
    // cache hit never gets here, so it costs no retry budget or probe.
    with_isolate(|edge, state| edge.begin(fwd, state, now_ms(), random_u32()));
    let mut last: Option<Response> = None;
    let mut sent_at = now_ms();
    loop {
        match fwd.step.clone() {
            Step::Send { mut request, timeout_ms } => {
                if let Some(f) = fetch {
                    f.prepare(&mut request);
                }
                let started = now_ms();
                sent_at = started;
                let js_body = match body {
                    Upload::None => None,
                    Upload::Buffered(b) => Some(js_sys::Uint8Array::from(b.as_slice()).into()),
                    Upload::Stream(s) => match s.take() {
                        Some(s) => Some(s),
                        None => return Upstreamed::Failed(Error::Upstream("request body already sent".into())),
                    },
                };
                let outcome = send(&request, js_body, timeout_ms).await;
                let (report, resp) = match outcome {
                    Ok(resp) => (Outcome::Status(resp.status_code()), Some(resp)),
                    Err(o) => (o, None),
                };
                let body_sent = body.sent(matches!(report, Outcome::ConnectError));
                let now = now_ms();
                with_isolate(|edge, state| {
                    edge.report(fwd, report, body_sent, now.saturating_sub(started), state, now)
                });
                last = resp;
            }
            Step::Deliver => {
                return match last.take() {
                    Some(resp) => {
                        worker::console_log!("{}", fwd.log_line(resp.status_code()));
                        Upstreamed::Response(resp, sent_at)
                    }
                    None => Upstreamed::Failed(Error::Upstream("no upstream response".into())),
                };
            }
            Step::GiveUp { response, stale_ok } => {
                worker::console_warn!("{}", fwd.log_line(response.status().as_u16()));
                return Upstreamed::GiveUp(response, stale_ok);
            }
        }
    }
}

/// Forward without the cache (uncacheable methods and routes); unsafe
/// methods then invalidate what they targeted (RFC 9111 §4.4).
async fn forward_plain(mut fwd: Box<Forward>, mut body: Upload) -> worker::Result<Response> {
    match run_steps(&mut fwd, &mut body, None).await {
        Upstreamed::Response(resp, _) => {
            if fwd.send_body {
                let status = resp.status_code();
                let headers = from_worker_headers(resp.headers());
                let now = now_ms();
                with_cache(|edge, _, c| c.invalidate_after(edge.config(), &fwd, status, &headers, now));
            }
            deliver(&fwd, resp)
        }
        Upstreamed::GiveUp(response, _) => to_worker_response(&response),
        Upstreamed::Failed(e) => respond_error(&e),
    }
}

/// One upstream attempt: `Err(Timeout)` after `timeout_ms`,
/// `Err(ConnectError)` when the platform's fetch fails.
async fn send(request: &http::Request<()>, body: Option<wasm_bindgen::JsValue>, timeout_ms: u64) -> Result<Response, Outcome> {
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method().as_str().to_owned()))
        .with_headers(to_worker_headers(request.headers()))
        .with_redirect(RequestRedirect::Manual);
    // A streamed body goes through an identity stream whose pipe ends when
    // the origin has read it all: the per-try timeout (for the response
    // head) starts then, not while a large upload is still being sent.
    let mut piping: Option<(wasm_bindgen::JsValue, wasm_bindgen::JsValue)> = None;
    let body = match body {
        Some(b) if wasm_bindgen::JsCast::is_instance_of::<js_sys::Uint8Array>(&b) => Some(b),
        Some(stream) => match body::identity() {
            Ok((readable, writer, writable)) => {
                writer.release();
                piping = Some((stream, writable));
                Some(readable)
            }
            Err(_) => Some(stream),
        },
        None => None,
    };
    if body.is_some() {
        init.with_body(body);
    }
    let upstream =
        Request::new_with_init(&request.uri().to_string(), &init).map_err(|_| Outcome::ConnectError)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(upstream);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timer = Box::pin(async move {
        if let Some((stream, writable)) = &piping {
            if let Err(e) = body::pipe(stream, writable).await {
                worker::console_warn!("request body: {}", body::js_reason(&e));
            }
        }
        Delay::from(Duration::from_millis(timeout_ms)).await;
    });
    let raced = match select(sending, timer).await {
        Either::Left((result, _)) => Some(result),
        Either::Right(((), _)) => None,
    };
    match raced {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(e)) => {
            worker::console_warn!("upstream {}: {e}", request.uri().host().unwrap_or(""));
            Err(Outcome::ConnectError)
        }
        None => {
            controller.abort();
            Err(Outcome::Timeout)
        }
    }
}

/// The upstream response with the viewer's headers; the body stream is
/// passed through untouched.
fn deliver(fwd: &Forward, resp: Response) -> worker::Result<Response> {
    let status = resp.status_code();
    let Some(status_code) = final_status(status) else {
        return unrelayable_status(status);
    };
    let mut headers = from_worker_headers(resp.headers());
    with_isolate(|edge, _| edge.finish(fwd, status_code, &mut headers));
    let (_, body) = resp.into_parts();
    Ok(Response::builder()
        .with_status(status)
        .with_headers(to_worker_headers(&headers))
        .body(body))
}

/// An origin status outside 200..=599 (e.g. 999) cannot be relayed: the
/// worker crate would rebuild the response and its constructor throws
/// (a panic that takes the isolate down). Answer a clear 502 instead.
pub(crate) fn unrelayable_status(status: u16) -> worker::Result<Response> {
    respond_error(&Error::Upstream(format!("origin answered with status {status}, which cannot be relayed")))
}

/// A final status the edge handles (200..=599); others get a 502.
fn final_status(status: u16) -> Option<http::StatusCode> {
    if (200..=599).contains(&status) {
        http::StatusCode::from_u16(status).ok()
    } else {
        None
    }
}

fn respond_error(e: &Error) -> worker::Result<Response> {
    let resp = with_isolate(|edge, _| edge.error_response(e)).unwrap_or_else(|| e.to_response());
    to_worker_response(&resp)
}

/// The viewer as the platform saw it: address from `CF-Connecting-IP`
/// (set by Cloudflare, not by the viewer), TLS from the URL scheme, the
/// location from `request.cf` (read without the worker crate's panicking
/// getters).
fn viewer_of(req: &Request, head: &http::Request<()>) -> Viewer {
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    let location = js_sys::Reflect::get(req.inner(), &"cf".into())
        .ok()
        .filter(|v| v.is_object())
        .and_then(|v| serde_wasm_bindgen::from_value::<WorkersCf>(v).ok())
        .map(|cf| cf.location())
        .unwrap_or_default();
    Viewer { ip, tls: head.uri().scheme_str() == Some("https"), location }
}

fn to_http_head(req: &Request) -> Result<http::Request<()>, Error> {
    let bad = |what: &str| {
        Error::Request(offload_core::RequestError::new(
            offload_core::error::RequestErrorKind::BadRequest,
            what,
        ))
    };
    // The URL as workerd received it, not `worker::Request::url` (the `url`
    // crate's WHATWG parser resolves `%2e%2e` segments and reads `\` as
    // `/`): one parser, the canonical form, decides what the target means.
    let url = req.inner().url();
    let (origin, target) = match url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(at) => url.split_at(at),
        None => (url.as_str(), "/"),
    };
    let escaped = offload_core::proxy::canonical::escape_for_uri(target);
    let uri: http::Uri = format!("{origin}{escaped}").parse().map_err(|_| bad("request URL is not a valid URI"))?;
    let method = http::Method::from_bytes(req.inner().method().as_bytes())
        .map_err(|_| bad("request method is not a valid token"))?;
    let mut head = http::Request::new(());
    *head.method_mut() = method;
    *head.uri_mut() = uri;
    *head.headers_mut() = from_worker_headers(req.headers());
    Ok(head)
}

/// JS header values are byte strings (one char per byte). Convert without
/// panicking; a field that is still invalid is dropped.
fn from_worker_headers(headers: &Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers.entries() {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
        let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
        if let Some(v) = bytes.and_then(|b| HeaderValue::from_bytes(&b).ok()) {
            map.append(name, v);
        }
    }
    map
}

fn to_worker_headers(map: &HeaderMap) -> Headers {
    let headers = Headers::new();
    for (name, value) in map {
        let v: String = value.as_bytes().iter().map(|&b| char::from(b)).collect();
        // Invalid names/values were filtered by `http`; a platform refusal
        // (e.g. a forbidden header) drops that one field.
        let _ = headers.append(name.as_str(), &v);
    }
    headers
}

fn to_worker_response(resp: &http::Response<Vec<u8>>) -> worker::Result<Response> {
    Ok(Response::builder()
        .with_status(resp.status().as_u16())
        .with_headers(to_worker_headers(resp.headers()))
        .fixed(resp.body().clone()))
}
