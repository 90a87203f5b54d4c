//! The Cloudflare Workers executor of Offload, as a library: conversion
//! and I/O only.
//! The request loop is the core's [`Machine`]; this crate converts
//! `worker` types to `http` types and back and performs the machine's
//! [`Io`](offload_core::machine::Io) with `fetch`, `caches.default`,
//! `waitUntil` and timers ([`exec`]).
//!
//! Two ways to use it:
//! - **the Offload Worker** (`edge/workers`): [`handle`] with the bundled
//!   `offload.toml` and [`Fetcher`] (every origin reached with `fetch`);
//! - **in front of an application's own handler** in the same Worker:
//!   [`handle`] with your config and [`Handler`], which makes any
//!   `async fn(Request) -> Result<Response>` the origin (see
//!   `edge/workers-example`).

mod body;
mod exec;
mod l2;

use std::cell::RefCell;
use std::future::Future;

use http::{HeaderMap, HeaderName, HeaderValue};
use offload_core::machine::{Isolate, Machine};
use offload_core::route::geo::WorkersCf;
use offload_core::secret::{Platform, Secret, SecretMap};
use offload_core::config::RawConfig;
use offload_core::{Config, ConfigError, Edge, Error, Viewer};
use worker::{AbortSignal, Context, Env, Fetch, Headers, Request, Response};

/// Where the machine's upstream requests go.
pub trait Upstream: Clone + 'static {
    /// Send one request; `signal` aborts it at the per-try timeout.
    fn send(&self, req: Request, signal: &AbortSignal) -> impl Future<Output = worker::Result<Response>>;
}

/// Every origin reached with the platform's `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetcher;

impl Upstream for Fetcher {
    async fn send(&self, req: Request, signal: &AbortSignal) -> worker::Result<Response> {
        Fetch::Request(req).send_with_signal(signal).await
    }
}

/// An application's own async handler as the origin: cache hits never
/// call it; misses, revalidations and uncacheable requests do, with the
/// request the core planned (prefix stripped, origin-auth header set).
#[derive(Clone)]
pub struct Handler<F>(pub F);

impl<F, Fut> Upstream for Handler<F>
where
    F: Fn(Request) -> Fut + Clone + 'static,
    Fut: Future<Output = worker::Result<Response>>,
{
    async fn send(&self, req: Request, _signal: &AbortSignal) -> worker::Result<Response> {
        (self.0)(req).await
    }
}

thread_local! {
    /// The isolate's edge and shared state. Wasm in Workers is
    /// single-threaded; borrows never live across an `.await`.
    static ISOLATE: RefCell<Option<Result<Isolate, Error>>> = const { RefCell::new(None) };
}

/// Answer one viewer request with Offload in front of `upstream`. The
/// first call builds the isolate from `config_json` (the JSON form of an
/// `offload.toml`, made at build time by `Config::toml_to_json`; the
/// shared `edge/workers/build.rs` does it) and the Worker's
/// secret bindings (a missing binding is a 500 naming it, never a value).
pub async fn handle<U: Upstream>(config_json: &str, req: Request, env: &Env, ctx: &Context, upstream: U) -> worker::Result<Response> {
    if let Err(e) = init(config_json, env) {
        worker::console_error!("{e}");
        return to_worker_response(&e.to_response());
    }
    let head = match to_http_head(&req) {
        Ok(h) => h,
        Err(e) => return respond_error(&e),
    };
    let viewer = viewer_of(&req, &head);
    let body = req.inner().body().map(Into::into);
    exec::run(Machine::new(head, viewer), body, Some(ctx), upstream).await
}

fn init(config_json: &str, env: &Env) -> Result<(), Error> {
    ISOLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let built = slot.get_or_insert_with(|| build(config_json, env));
        built.as_ref().map(drop).map_err(Clone::clone)
    })
}

fn build(config_json: &str, env: &Env) -> Result<Isolate, Error> {
    let config = config_from_json(config_json)?;
    let secrets = secrets(&config, env);
    Ok(Isolate::new(Edge::new(config, &secrets)?))
}

/// The config's JSON form read with `JSON.parse` and `serde_wasm_bindgen`
/// (already here for `request.cf`), validated as [`Config::from_json`]
/// does: no JSON reader for the config's types in the Wasm.
fn config_from_json(text: &str) -> Result<Config, ConfigError> {
    let value = js_sys::JSON::parse(text).map_err(|_| ConfigError::syntax("the bundled config is not JSON"))?;
    let raw: RawConfig = serde_wasm_bindgen::from_value(value).map_err(ConfigError::syntax)?;
    Config::try_from(raw)
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

/// Lend the isolate to `f` (`None` before a successful [`init`]).
fn with_isolate<T>(f: impl FnOnce(&mut Isolate) -> T) -> Option<T> {
    ISOLATE.with(|cell| match cell.borrow_mut().as_mut() {
        Some(Ok(iso)) => Some(f(iso)),
        _ => None,
    })
}

fn respond_error(e: &Error) -> worker::Result<Response> {
    let resp = with_isolate(|iso| iso.edge.error_response(e)).unwrap_or_else(|| e.to_response());
    to_worker_response(&resp)
}

/// The viewer as the platform saw it: address from `CF-Connecting-IP`
/// (set by Cloudflare, not by the viewer), TLS from the URL scheme, the
/// location from `request.cf` (read without the worker crate's panicking
/// getters).
fn viewer_of(req: &Request, head: &http::Request<()>) -> Viewer {
    let ip = req.headers().get("cf-connecting-ip").ok().flatten().and_then(|v| v.trim().parse().ok());
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
        Error::Request(offload_core::RequestError::new(offload_core::error::RequestErrorKind::BadRequest, what))
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
    let method =
        http::Method::from_bytes(req.inner().method().as_bytes()).map_err(|_| bad("request method is not a valid token"))?;
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
