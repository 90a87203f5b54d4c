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
mod js;
mod l2;

use std::cell::RefCell;
use std::future::Future;

use http::HeaderMap;
use offload_core::machine::{Input, Io, Isolate, Machine, Reply, ReplyBody, SendBody};
use worker::wasm_bindgen_futures;
use offload_core::route::geo::WorkersCf;
use offload_core::secret::{Platform, Secret, SecretMap};
use offload_core::config::RawConfig;
use offload_core::{Config, ConfigError, Edge, Error, Viewer};
use wasm_bindgen::JsValue;
use worker::web_sys;
use worker::{AbortSignal, Context, Env, Fetch, Request, Response};

/// Where the machine's upstream requests go.
pub trait Upstream: Clone + 'static {
    /// Requests go to the platform's `fetch` as they are (the executor
    /// then calls it directly, without `worker` request objects).
    const DIRECT: bool = false;
    /// Send one request; `signal` aborts it at the per-try timeout.
    fn send(&self, req: Request, signal: &AbortSignal) -> impl Future<Output = worker::Result<Response>>;
}

/// Every origin reached with the platform's `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetcher;

impl Upstream for Fetcher {
    const DIRECT: bool = true;
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
    Ok(Response::from(handle_raw(config_json, Clone::clone(req.inner()), env, ctx, upstream).await))
}

/// [`handle`] on the platform's own request and response objects, with no
/// `worker::Request`/`worker::Response` conversion on the way (what the
/// Offload Worker uses: `#[event(fetch)]` accepts `web_sys::Request` and
/// `web_sys::Response`). Every failure is an answer, never an `Err`.
pub async fn handle_raw<U: Upstream>(
    config_json: &str,
    req: web_sys::Request,
    env: &Env,
    ctx: &Context,
    upstream: U,
) -> web_sys::Response {
    let machine = match machine_for(config_json, &req, env) {
        Ok(m) => m,
        Err(resp) => return resp,
    };
    let body = req.body().map(Into::into);
    exec::run(machine, body, Some(ctx), Some(&req), upstream).await
}

/// The fastest entry, for a Worker's own `#[wasm_bindgen] fn fetch`
/// (`edge/workers` uses it): the machine runs synchronously while its
/// instructions need no waiting, so an edge answer or a cache hit returns
/// a `Response` with no promise, no task and no microtask. An upstream
/// exchange with [`Upstream::DIRECT`], a capped read of the viewer's body,
/// a platform-cache lookup and a small storable body are each a JS
/// promise chain whose callback runs the machine on (see [`drive`]);
/// anything else that must wait (a coalesced wait, a streamed upload, a
/// large storable body, a purge's cache delete) continues as a Rust
/// future from where it stopped.
pub fn handle_now<U: Upstream>(config_json: &str, req: web_sys::Request, env: &Env, ctx: Context, upstream: U) -> JsValue {
    match machine_for(config_json, &req, env) {
        Ok(m) => drive(m, Input::Start, Flow { req, ctx, upstream }, None),
        Err(resp) => resp.into(),
    }
}

/// What one viewer request's run carries from one synchronous stretch to
/// the next.
struct Flow<U> {
    req: web_sys::Request,
    ctx: Context,
    upstream: U,
}

/// Stored bodies up to this size, with a declared length that says so
/// (`CacheFill::declared_length`: the upstream's `Content-Length`, none
/// for a body the platform decoded, whose length is the encoded one), are
/// read whole in JS before the viewer's head goes out, then stored
/// and served from the same bytes: one promise instead of a stream pumped
/// through Wasm chunk by chunk with a Rust future per read and write
/// (`cargo xtask bench cache`'s Zipf mix is mostly such bodies). Larger
/// or unsized bodies stream.
const READ_WHOLE_MAX: usize = 64 * 1024;

/// Run `m` from `input` synchronously until it answers or must wait.
/// `last`: the response of the upstream attempt the machine was just told
/// about (its body is the viewer's when the reply says so).
fn drive<U: Upstream>(mut m: Machine, mut input: Input, flow: Flow<U>, last: Option<web_sys::Response>) -> JsValue {
    loop {
        let Some(io) = with_isolate(|iso| m.next(iso, input, exec::tick())) else {
            return exec::not_initialized().into();
        };
        input = match io {
            Io::Respond(reply) => return respond_now(m, reply, flow, last),
            Io::Locate => Input::Location(location_of(&flow.req)),
            Io::Log { level, line } => {
                exec::log(level, &line);
                Input::Done
            }
            Io::Background(bg) => {
                flow.ctx.wait_until(exec::background_machine(*bg, Some(&flow.req), flow.upstream.clone()));
                Input::Done
            }
            Io::Send { request, timeout_ms, body } if U::DIRECT && !matches!(body, SendBody::ViewerStream) => {
                let body: JsValue = match &body {
                    SendBody::Bytes(b) => js_sys::Uint8Array::from(&b[..]).into(),
                    _ => JsValue::NULL,
                };
                return js::fetch_then(&request, &body, timeout_ms, move |sent| match sent {
                    Ok(resp) => drive(m, Input::Upstream(Ok(js::upstream_head(&resp))), flow, Some(resp)),
                    Err(outcome) => drive(m, Input::Upstream(Err(outcome)), flow, None),
                });
            }
            Io::CacheGet { key, max_bytes } => {
                return l2::get_then(&key, max_bytes, move |entry| drive(m, Input::CacheEntry(entry), flow, last));
            }
            Io::CachePut(w) => {
                l2::put_later(&flow.ctx, w);
                Input::Done
            }
            Io::ReadBody { limit, declared, .. } => {
                let stream = flow.req.body().map_or(JsValue::NULL, Into::into);
                return js::read_then(&stream, limit, declared, move |read| drive(m, Input::Body(body::capped(read)), flow, last));
            }
            Io::Finished => return exec::finished().into(),
            io => return later(m, io, flow, last),
        };
    }
}

/// The viewer's response for `reply`, now when its body is in hand or is
/// the upstream's stream; a small stored body is read whole first
/// ([`READ_WHOLE_MAX`]); a larger one is pumped by the Rust loop.
fn respond_now<U: Upstream>(m: Machine, reply: Reply, flow: Flow<U>, last: Option<web_sys::Response>) -> JsValue {
    if let Some(resp) = exec::ready(&reply) {
        return resp.into();
    }
    let stream = |last: &Option<web_sys::Response>| last.as_ref().and_then(web_sys::Response::body).map_or(JsValue::NULL, Into::into);
    match reply.body {
        ReplyBody::Upstream if last.is_some() => {
            js::response(reply.status, &reply.headers, &stream(&last)).unwrap_or_else(|_| last_resort()).into()
        }
        ReplyBody::UpstreamFill(mut fill) if last.is_some() && fill.declared_length().is_some_and(|n| n <= fill.max_bytes().min(READ_WHOLE_MAX) as u64) => {
            let declared = fill.declared_length();
            let (status, headers, ctx) = (reply.status, reply.headers, flow.ctx);
            js::read_then(&stream(&last), fill.max_bytes().min(READ_WHOLE_MAX), declared, move |read| {
                let now = exec::tick().now_ms;
                let bytes = match read {
                    Ok(Some(bytes)) => bytes,
                    failed => {
                        exec::fill_failed(fill, failed.err().as_ref());
                        return respond_error(&offload_core::error::UpstreamError::BodyFailed.into()).into();
                    }
                };
                let len = bytes.length() as usize;
                let stored = with_isolate(|iso| {
                    fill.accept_with(iso, len, now, |buf| bytes.copy_to(buf));
                    fill.finish(iso, now)
                });
                if let Some(Some(w)) = stored {
                    l2::put_later(&ctx, w);
                }
                js::response(status, &headers, &bytes.into()).unwrap_or_else(|_| last_resort()).into()
            })
        }
        body => later(
            m,
            Io::Respond(Reply { status: reply.status, headers: reply.headers, body }),
            flow,
            last,
        ),
    }
}

/// The rest of [`drive`] as a Rust future, starting with `io`.
fn later<U: Upstream>(m: Machine, io: Io, flow: Flow<U>, last: Option<web_sys::Response>) -> JsValue {
    let Flow { req, ctx, upstream } = flow;
    let body = req.body().map(Into::into);
    wasm_bindgen_futures::future_to_promise(async move {
        Ok(exec::run_from(m, Some(io), last, body, Some(&ctx), Some(&req), upstream).await.into())
    })
    .into()
}

/// The isolate (built on first use) and a machine for this request, or
/// the response that refuses it.
fn machine_for(config_json: &str, req: &web_sys::Request, env: &Env) -> Result<Machine, web_sys::Response> {
    if let Err(e) = init(config_json, env) {
        worker::console_error!("{e}");
        return Err(to_platform_response(&e.to_response()));
    }
    let Some(js::Head { method, url, headers }) = js::request_head(req) else {
        return Err(respond_error(&bad("the request head could not be read")));
    };
    let head = to_http_head(&method, &url, headers).map_err(|e| respond_error(&e))?;
    let viewer = viewer_of(&head);
    // The viewer's location (`request.cf`, parsed by the platform on first
    // access) is read only if the request goes to a pool of origins.
    Ok(Machine::new(head, viewer).locate_later())
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

fn respond_error(e: &Error) -> web_sys::Response {
    let resp = with_isolate(|iso| iso.edge.error_response(e)).unwrap_or_else(|| e.to_response());
    to_platform_response(&resp)
}

/// The viewer as the platform saw it: address from `CF-Connecting-IP`
/// (set by Cloudflare, not by the viewer), TLS from the URL scheme. The
/// location comes later ([`location_of`]), only when it is needed.
fn viewer_of(head: &http::Request<()>) -> Viewer {
    let ip = head.headers().get("cf-connecting-ip").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok());
    Viewer { ip, tls: head.uri().scheme_str() == Some("https"), location: Default::default() }
}

/// Where `request.cf` places the viewer (read without the worker crate's
/// panicking getters; unknown when absent or malformed).
pub(crate) fn location_of(req: &web_sys::Request) -> offload_core::route::ViewerLocation {
    let cf = js::cf(req);
    if !cf.is_object() {
        return Default::default();
    }
    serde_wasm_bindgen::from_value::<WorkersCf>(cf).map(|cf| cf.location()).unwrap_or_default()
}

fn bad(what: &str) -> Error {
    Error::Request(offload_core::RequestError::new(offload_core::error::RequestErrorKind::BadRequest, what))
}

fn to_http_head(method: &str, url: &str, headers: HeaderMap) -> Result<http::Request<()>, Error> {
    // The URL as workerd received it, not `worker::Request::url` (the `url`
    // crate's WHATWG parser resolves `%2e%2e` segments and reads `\` as
    // `/`): one parser, the canonical form, decides what the target means.
    let (origin, target) = match url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j)) {
        Some(at) => url.split_at(at),
        None => (url, "/"),
    };
    let escaped = offload_core::proxy::canonical::escape_for_uri(target);
    let uri: http::Uri = format!("{origin}{escaped}").parse().map_err(|_| bad("request URL is not a valid URI"))?;
    let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| bad("request method is not a valid token"))?;
    let mut head = http::Request::new(());
    *head.method_mut() = method;
    *head.uri_mut() = uri;
    *head.headers_mut() = headers;
    Ok(head)
}

/// An edge-made response (an error, a refusal) as the platform's.
fn to_platform_response(resp: &http::Response<Vec<u8>>) -> web_sys::Response {
    let body: JsValue = if resp.body().is_empty() { JsValue::NULL } else { js_sys::Uint8Array::from(&resp.body()[..]).into() };
    match js::response(resp.status().as_u16(), resp.headers(), &body) {
        Ok(r) => r,
        Err(_) => last_resort(),
    }
}

/// A bare 502 when the platform refused even a made response.
pub(crate) fn last_resort() -> web_sys::Response {
    let init = web_sys::ResponseInit::new();
    init.set_status(502);
    web_sys::Response::new_with_opt_str_and_init(Some("bad gateway"), &init)
        .unwrap_or_else(|_| web_sys::Response::new().unwrap_or_else(|_| JsValue::NULL.into()))
}
