//! The executor loop: run a [`Machine`] to its answer, performing each
//! [`Io`] with the platform (`fetch` or the application's handler,
//! `caches.default`, timers, `waitUntil`, streams). No decision is made
//! here; every branch is "do what the instruction says".

use std::future::Future;
use std::time::Duration;

use futures_util::future::{select, Either};
use offload_core::machine::{
    CacheFill, Chunk, Input, Io, Level, Machine, Reply, ReplyBody, SendBody, Tick, UpstreamHead,
};
use offload_core::route::Outcome;
use offload_core::error::InternalError;
use wasm_bindgen::{JsCast, JsValue};
use worker::web_sys;
use worker::{AbortController, Context, Delay, Method, Request, RequestInit, RequestRedirect, Response, ResponseBody};

use crate::body;
use crate::{js, l2, last_resort, location_of, respond_error, with_isolate, Upstream};

/// An upstream's `worker::Response` as the platform's, with its head read
/// once (a body an application handler built from bytes is copied once
/// into JS). A status the platform cannot construct a response with is a
/// failed attempt.
fn platform_response(resp: Response) -> Result<(web_sys::Response, UpstreamHead), Outcome> {
    let status = resp.status_code();
    let headers = js::headers_of(&resp.headers().0);
    let body: JsValue = match resp.into_parts().1 {
        ResponseBody::Stream(s) => s.into(),
        ResponseBody::Body(b) => js_sys::Uint8Array::from(&b[..]).into(),
        ResponseBody::Empty => JsValue::NULL,
    };
    let platform = js::response(status, &headers, &body).map_err(|e| {
        worker::console_warn!("upstream answered status {status}, which the platform cannot relay: {}", body::js_reason(&e));
        Outcome::ConnectError
    })?;
    Ok((platform, UpstreamHead { status, headers }))
}

pub(crate) fn tick() -> Tick {
    let ms = js_sys::Date::now();
    let now_ms = if ms.is_finite() && ms > 0.0 { ms as u64 } else { 0 };
    Tick { now_ms, random: (js_sys::Math::random() * f64::from(u32::MAX)) as u32 }
}

pub(crate) fn not_initialized() -> web_sys::Response {
    respond_error(&InternalError::NotInitialized.into())
}

/// Run `m`. `viewer_body`: the viewer's body stream (taken by the first
/// `ReadBody` or `ViewerStream` send). `ctx`: `None` for a background
/// machine (its work is awaited inline). `req`: the viewer's request, for
/// its location (`request.cf`) when the machine asks.
pub(crate) async fn run<U: Upstream>(
    m: Machine,
    viewer_body: Option<JsValue>,
    ctx: Option<&Context>,
    req: Option<&web_sys::Request>,
    up: U,
) -> web_sys::Response {
    run_from(m, None, None, viewer_body, ctx, req, up).await
}

/// [`run`], starting with `first` (an instruction the machine already
/// gave, in place of its first call); `last`: the upstream response the
/// machine was last told about.
pub(crate) async fn run_from<U: Upstream>(
    mut m: Machine,
    mut first: Option<Io>,
    mut last: Option<web_sys::Response>,
    mut viewer_body: Option<JsValue>,
    ctx: Option<&Context>,
    req: Option<&web_sys::Request>,
    up: U,
) -> web_sys::Response {
    let mut input = Input::Start;
    // Log lines wait until the viewer has its response head (`waitUntil`):
    // writing one costs the isolate more than the rest of a miss in Wasm
    // (`cargo xtask bench edge --profile`), and no viewer waits for it.
    let mut logs: Vec<(Level, String)> = Vec::new();
    loop {
        let io = match first.take() {
            Some(io) => io,
            None => match with_isolate(|iso| m.next(iso, input, tick())) {
                Some(io) => io,
                None => return not_initialized(),
            },
        };
        input = match io {
            Io::ReadBody { limit, declared, .. } => Input::Body(body::read_capped(viewer_body.take(), limit, declared).await),
            Io::Locate => Input::Location(req.map(location_of).unwrap_or_default()),
            Io::CacheGet { key, max_bytes } => Input::CacheEntry(l2::get(&key, max_bytes).await),
            Io::CachePut(w) => {
                background(ctx, l2::put(w)).await;
                Input::Done
            }
            Io::CacheDelete(key) => {
                l2::delete(&key).await;
                Input::Done
            }
            Io::Sleep { ms } => {
                Delay::from(Duration::from_millis(ms)).await;
                Input::Woke
            }
            Io::Send { request, timeout_ms, body } => {
                last = None;
                let body = match body {
                    SendBody::None => None,
                    SendBody::Bytes(b) => Some(js_sys::Uint8Array::from(&b[..]).into()),
                    SendBody::ViewerStream => viewer_body.take(),
                };
                Input::Upstream(send(&up, &request, body, timeout_ms).await.map(|(resp, head)| {
                    last = Some(resp);
                    head
                }))
            }
            Io::Log { level, line } => {
                match ctx {
                    Some(_) => logs.push((level, line)),
                    None => log(level, &line),
                }
                Input::Done
            }
            Io::Background(bg) => {
                background(ctx, background_machine(*bg, req, up.clone())).await;
                Input::Done
            }
            Io::Fill(fill) => {
                background(ctx, fill_cache(fill, upstream_stream(last.take()), None)).await;
                Input::Done
            }
            Io::Respond(reply) => {
                let resp = respond(reply, last.take(), ctx).await;
                if let (Some(ctx), false) = (ctx, logs.is_empty()) {
                    ctx.wait_until(async move {
                        for (level, line) in logs {
                            log(level, &line);
                        }
                    });
                }
                return resp;
            }
            Io::Finished => return finished(),
        };
    }
}

pub(crate) fn log(level: Level, line: &str) {
    match level {
        Level::Info => worker::console_log!("{line}"),
        Level::Warn => worker::console_warn!("{line}"),
    }
}

/// The answer of a machine that ends without one for a viewer.
pub(crate) fn finished() -> web_sys::Response {
    js::response(204, &http::HeaderMap::new(), &JsValue::NULL).unwrap_or_else(|_| last_resort())
}

/// A background machine (a revalidation) as a task of its own.
pub(crate) fn background_machine<U: Upstream>(
    bg: Machine,
    req: Option<&web_sys::Request>,
    up: U,
) -> impl Future<Output = ()> + 'static {
    let req = req.cloned();
    async move {
        let _ = Box::pin(run(bg, None, None, req.as_ref(), up)).await;
    }
}

/// The response for a reply whose body is already in hand (empty or
/// bytes: an edge answer or a cache hit), made without waiting; `None`
/// when its body streams from upstream.
pub(crate) fn ready(reply: &Reply) -> Option<web_sys::Response> {
    let body: JsValue = match &reply.body {
        ReplyBody::Empty => JsValue::NULL,
        // The one copy of a stored body: Wasm memory into a JS array.
        ReplyBody::Bytes(b) => js_sys::Uint8Array::from(&b[..]).into(),
        ReplyBody::Upstream | ReplyBody::UpstreamFill(_) => return None,
    };
    Some(js::response(reply.status, &reply.headers, &body).unwrap_or_else(|_| last_resort()))
}

/// After the response with `waitUntil` when there is a viewer, else now.
async fn background(ctx: Option<&Context>, work: impl Future<Output = ()> + 'static) {
    match ctx {
        Some(ctx) => ctx.wait_until(work),
        None => work.await,
    }
}

/// The body of an upstream response as a `ReadableStream` (a body an
/// application handler built from bytes is wrapped in one).
fn upstream_stream(resp: Option<web_sys::Response>) -> Option<JsValue> {
    resp?.body().map(Into::into)
}

/// The viewer's response: head and body handed to the platform in one
/// call; a stored body is copied once, from Wasm memory into a JS array.
async fn respond(reply: Reply, last: Option<web_sys::Response>, ctx: Option<&Context>) -> web_sys::Response {
    let body: JsValue = match reply.body {
        ReplyBody::Empty | ReplyBody::Bytes(_) => return ready(&reply).unwrap_or_else(last_resort),
        ReplyBody::Upstream => match last {
            Some(resp) => resp.body().map_or(JsValue::NULL, Into::into),
            None => return not_initialized(),
        },
        ReplyBody::UpstreamFill(fill) => {
            let stream = upstream_stream(last);
            let (Some(ctx), Ok((readable, writer, writable))) = (ctx, body::identity()) else {
                fill_cache(fill, stream, None).await;
                return js::response(reply.status, &reply.headers, &JsValue::NULL).unwrap_or_else(|_| last_resort());
            };
            ctx.wait_until(fill_cache(fill, stream, Some((writer, writable))));
            readable
        }
    };
    js::response(reply.status, &reply.headers, &body).unwrap_or_else(|_| last_resort())
}

/// Pump a storable body: each chunk goes through the core's
/// [`CacheFill`] and on to the viewer (`viewer`: the writer of its body
/// and that body's writable end). When the fill says the body is too
/// large, the rest is piped to the viewer without passing through Wasm.
/// A failed body fails the viewer's too (it never looks complete). A
/// viewer that goes away does not stop the cache copy.
/// The cache copy given up because the upstream body failed (`e`: its
/// error; `None`: it was longer than its declared length allowed).
pub(crate) fn fill_failed(fill: CacheFill, e: Option<&JsValue>) {
    with_isolate(|iso| fill.fail(iso, tick().now_ms));
    if let Some(e) = e {
        worker::console_warn!("upstream body: {}", body::js_reason(e));
    }
}

async fn fill_cache(mut fill: CacheFill, stream: Option<JsValue>, mut viewer: Option<(body::Writer, JsValue)>) {
    let failed = |fill: CacheFill, viewer: Option<(body::Writer, JsValue)>, e: &JsValue| {
        fill_failed(fill, Some(e));
        if let Some((writer, _)) = viewer {
            writer.abort("upstream body failed");
        }
    };
    if let Some(stream) = stream {
        let reader = match body::Reader::new(&stream) {
            Ok(r) => r,
            Err(e) => return failed(fill, viewer, &e),
        };
        loop {
            let chunk = match reader.read().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return failed(fill, viewer, &e),
            };
            let len = chunk.length() as usize;
            let copied = with_isolate(|iso| fill.accept_with(iso, len, tick().now_ms, |buf| chunk.copy_to(buf)))
                .unwrap_or(Chunk::TooLarge);
            if copied == Chunk::TooLarge {
                worker::console_log!("not stored: body larger than {} bytes", fill.max_bytes());
                let Some((writer, writable)) = viewer.take() else { return reader.cancel().await };
                if writer.write(&chunk).await.is_err() {
                    return reader.cancel().await;
                }
                writer.release();
                reader.release();
                if let Err(e) = body::pipe(&stream, &writable).await {
                    worker::console_warn!("upstream body: {}", body::js_reason(&e));
                }
                return;
            }
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
    if let Some(w) = with_isolate(|iso| fill.finish(iso, tick().now_ms)).flatten() {
        l2::put(w).await;
    }
}

/// One upstream attempt: `Err(Timeout)` after `timeout_ms` (counted once
/// a streamed body has been sent), `Err(ConnectError)` when it fails.
async fn send<U: Upstream>(
    up: &U,
    request: &http::Request<()>,
    body: Option<JsValue>,
    timeout_ms: u64,
) -> Result<(web_sys::Response, UpstreamHead), Outcome> {
    if U::DIRECT {
        let direct = match &body {
            None => Some(js::fetch(request, &JsValue::NULL, timeout_ms).await),
            Some(b) if b.is_instance_of::<js_sys::Uint8Array>() => Some(js::fetch(request, b, timeout_ms).await),
            Some(_) => None,
        };
        if let Some(sent) = direct {
            return sent.map(|resp| {
                let head = js::upstream_head(&resp);
                (resp, head)
            });
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(request.method().as_str().to_owned()))
        .with_headers(worker::Headers(js::headers(request.headers())))
        .with_redirect(RequestRedirect::Manual);
    // A streamed body goes through an identity stream whose pipe ends when
    // the origin has read it all: the timeout starts then.
    let mut piping: Option<(JsValue, JsValue)> = None;
    let body = match body {
        Some(b) if b.is_instance_of::<js_sys::Uint8Array>() => Some(b),
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
    let upstream = Request::new_with_init(&request.uri().to_string(), &init).map_err(|_| Outcome::ConnectError)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let sending = Box::pin(up.send(upstream, &signal));
    let timer = Box::pin(async move {
        if let Some((stream, writable)) = &piping {
            if let Err(e) = body::pipe(stream, writable).await {
                worker::console_warn!("request body: {}", body::js_reason(&e));
            }
        }
        Delay::from(Duration::from_millis(timeout_ms)).await;
    });
    let raced = select(sending, timer).await;
    match raced {
        Either::Left((Ok(resp), _)) => platform_response(resp),
        Either::Left((Err(e), _)) => {
            worker::console_warn!("upstream {}: {e}", request.uri().host().unwrap_or(""));
            Err(Outcome::ConnectError)
        }
        Either::Right(((), _)) => {
            controller.abort();
            Err(Outcome::Timeout)
        }
    }
}
