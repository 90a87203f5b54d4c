//! Request and response heads across the JS boundary in one call each.
//!
//! Why by hand: a CPU profile of a cache hit under `workerd serve`
//! (`cargo xtask bench edge --profile`) put about a fifth of the Wasm-side
//! time in converting heads field by field: `worker::Request::from` (method,
//! URL, and `request.cf`, which workerd parses from JSON on first access),
//! a JS iterator step per header on the way in, a `Headers.append` call per
//! header on the way out, and `worker::Response` → `web_sys::Response`.
//! Here a head crosses as one string (`\n` never occurs in a method, a
//! serialized URL, a header name or a header value) and the response is
//! built by one call. All of the executor's JS is in this one
//! `inline_js` block. (wasm-bindgen 0.2.130 lists the snippet twice in its
//! import object, which esbuild reports as a duplicate key; both entries
//! are the same module.)

use http::{HeaderMap, HeaderName, HeaderValue};
use offload_core::route::Outcome;
use wasm_bindgen::prelude::{wasm_bindgen, Closure};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures;

#[wasm_bindgen(inline_js = r#"
export function offload_head(req) {
  let s = req.method + "\n" + req.url;
  for (const [k, v] of req.headers) s += "\n" + k + "\n" + v;
  return s;
}
export function offload_flat(headers) {
  let s = "";
  for (const [k, v] of headers) s += k + "\n" + v + "\n";
  return s;
}
export function offload_headers(flat) {
  const h = new Headers();
  const f = flat.split("\n");
  for (let i = 0; i + 1 < f.length; i += 2) {
    try { h.append(f[i], f[i + 1]); } catch (_) { /* a field the platform refuses is dropped */ }
  }
  return h;
}
function offload_record(flat) {
  // A record is the cheapest header init to convert (measured in
  // workerd: record 27.5k, Headers + append 25.6k, [name, value] pairs
  // 21.9k responses/s), a plain `{}` more so than `Object.create(null)`
  // (a dictionary from the start: workerd CPU per 7-field response, 4
  // rounds, medians 84 against 98 µs). A record cannot repeat a name, and
  // in `{}` the name `__proto__` would set the prototype: a head with
  // either (null here) takes the Headers path.
  const f = flat.split("\n");
  const o = {};
  for (let i = 0; i + 1 < f.length; i += 2) {
    if (f[i] === "__proto__" || Object.hasOwn(o, f[i])) return null;
    o[f[i]] = f[i + 1];
  }
  return o;
}
export function offload_response(body, status, flat) {
  if (body === null || body instanceof Uint8Array) {
    // A body the constructor has not locked can be used again if a field
    // is refused.
    const o = offload_record(flat);
    if (o !== null) {
      try { return new Response(body, { status, headers: o }); } catch (_) { /* dropped below */ }
    }
  }
  return new Response(body, { status, headers: offload_headers(flat) });
}
export function offload_fetch(url, method, flat, body, timeoutMs) {
  // The per-try timeout bounds the wait for the response head only: once
  // the head is in, the timer is cleared and the body streams for as long
  // as it takes (an abort signal left armed would cut a long body short).
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new DOMException("no response head in time", "TimeoutError")), timeoutMs);
  // The record form when no name repeats and every field is acceptable
  // (a refused field throws at once, before anything is sent).
  let headers = offload_record(flat);
  if (headers !== null) {
    try { headers = new Headers(headers); } catch (_) { headers = null; }
  }
  const init = { method, headers: headers ?? offload_headers(flat), redirect: "manual", signal: ac.signal };
  if (body !== null) init.body = body;
  return fetch(url, init).finally(() => clearTimeout(timer));
}
export function offload_then(p, done) {
  // A platform promise continued by `done` (a Rust closure, called once
  // with the value or the error): no Rust future on the way.
  return p.then((v) => done(v, false), (e) => done(e, true));
}
export function offload_is_timeout(e) {
  return e !== null && typeof e === "object" && e.name === "TimeoutError";
}
function offload_stored_length(headers) {
  // The length of an entry this executor put (`offload_l2_put`: bytes,
  // no Content-Encoding, so workerd's Content-Length frames it), or -1:
  // read in chunks. Every other body's length comes from the core.
  if (headers.has("content-encoding")) return -1;
  const v = headers.get("content-length");
  return v !== null && /^[0-9]{1,15}$/.test(v) ? Number(v) : -1;
}
export async function offload_read_capped(stream, limit, declared) {
  if (declared >= 0 && declared <= limit) {
    // A body whose Content-Length is within the limit is framed by it
    // (HTTP/1.1; an HTTP/2 or /3 message whose DATA differs from it is
    // malformed and never reaches a Worker): read in one native call, not
    // a promise per chunk (workerd CPU per small POST, 6 rounds, medians:
    // 88 µs read whole, 110 µs in chunks, 69 µs not read), and still
    // refused past the limit.
    const whole = new Uint8Array(await new Response(stream).arrayBuffer());
    return whole.byteLength > limit ? null : whole;
  }
  const reader = stream.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    let chunk;
    if (value instanceof Uint8Array) chunk = value;
    else if (value instanceof ArrayBuffer) chunk = new Uint8Array(value);
    else throw new Error("stream chunk is not bytes");
    n += chunk.byteLength;
    if (n > limit) {
      await reader.cancel().catch(() => {});
      return null;
    }
    chunks.push(chunk);
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) { out.set(c, at); at += c.byteLength; }
  return out;
}
function offload_cache() {
  const caches = globalThis.caches;
  const cache = caches && caches.default;
  if (!cache || typeof cache.match !== "function") throw new Error("no caches.default");
  return cache;
}
function offload_in_time(p, timeoutMs) {
  // The platform cache's answer, or a rejection after `timeoutMs`.
  let timer;
  const late = new Promise((_, no) => { timer = setTimeout(() => no(new Error("timeout")), timeoutMs); });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}
export function offload_l2_match(key, meta, max, timeoutMs) {
  // [metadata, body] of the entry, or null (none, no metadata, a body
  // longer than `max`).
  const got = offload_cache().match(key).then((r) => {
    if (!r) return null;
    const m = r.headers.get(meta);
    if (m === null) return null;
    const body = r.body === null ? Promise.resolve(new Uint8Array(0)) : offload_read_capped(r.body, max, offload_stored_length(r.headers));
    return body.then((b) => (b === null ? null : [m, b]));
  });
  return offload_in_time(got, timeoutMs);
}
export function offload_l2_put(key, flat, body, timeoutMs) {
  return offload_in_time(offload_cache().put(key, offload_response(body, 200, flat)), timeoutMs);
}
export function offload_l2_delete(key, timeoutMs) {
  return offload_in_time(offload_cache().delete(key), timeoutMs);
}
export function offload_cf(req) {
  return req.cf;
}
"#)]
extern "C" {
    #[wasm_bindgen(catch)]
    fn offload_head(req: &worker::web_sys::Request) -> Result<String, JsValue>;
    #[wasm_bindgen(catch)]
    fn offload_flat(headers: &JsValue) -> Result<String, JsValue>;
    fn offload_headers(flat: &str) -> worker::web_sys::Headers;
    #[wasm_bindgen(catch)]
    fn offload_response(body: &JsValue, status: u16, flat: &str) -> Result<worker::web_sys::Response, JsValue>;
    fn offload_cf(req: &worker::web_sys::Request) -> JsValue;
    #[wasm_bindgen(catch)]
    fn offload_fetch(url: &str, method: &str, flat: &str, body: &JsValue, timeout_ms: f64) -> Result<js_sys::Promise, JsValue>;
    fn offload_is_timeout(e: &JsValue) -> bool;
    fn offload_then(p: &js_sys::Promise, done: JsValue) -> js_sys::Promise;
    #[wasm_bindgen(catch)]
    fn offload_l2_match(key: &str, meta: &str, max: f64, timeout_ms: f64) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn offload_l2_put(key: &str, flat: &str, body: &js_sys::Uint8Array, timeout_ms: f64) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(catch)]
    fn offload_l2_delete(key: &str, timeout_ms: f64) -> Result<js_sys::Promise, JsValue>;
    #[wasm_bindgen(catch)]
    pub(crate) fn offload_read_capped(stream: &JsValue, limit: f64, declared: f64) -> Result<js_sys::Promise, JsValue>;
}

/// A viewer request's method, URL (as workerd received it) and headers.
pub(crate) struct Head {
    pub method: String,
    pub url: String,
    pub headers: HeaderMap,
}

pub(crate) fn request_head(req: &worker::web_sys::Request) -> Option<Head> {
    let flat = offload_head(req).ok()?;
    let mut lines = flat.split('\n');
    let method = lines.next()?.to_owned();
    let url = lines.next()?.to_owned();
    let mut headers = HeaderMap::new();
    parse_pairs(lines, &mut headers);
    Some(Head { method, url, headers })
}

/// A `Headers` object as a map (a platform failure reads as no headers).
pub(crate) fn headers_of(h: &worker::web_sys::Headers) -> HeaderMap {
    let mut map = HeaderMap::new();
    if let Ok(flat) = offload_flat(h) {
        parse_pairs(flat.split('\n'), &mut map);
    }
    map
}

/// An upstream response's status and headers, for the machine.
pub(crate) fn upstream_head(resp: &worker::web_sys::Response) -> offload_core::machine::UpstreamHead {
    offload_core::machine::UpstreamHead { status: resp.status(), headers: headers_of(&resp.headers()) }
}

/// JS header values are byte strings (one char per byte). Convert without
/// panicking; a field that is still invalid is dropped.
fn parse_pairs<'a>(mut it: impl Iterator<Item = &'a str>, map: &mut HeaderMap) {
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
        // ASCII (nearly every value) is its own bytes: no per-char copy.
        let value = if value.is_ascii() {
            HeaderValue::from_str(value).ok()
        } else {
            let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
            bytes.and_then(|b| HeaderValue::from_bytes(&b).ok())
        };
        if let Some(v) = value {
            map.append(name, v);
        }
    }
}

/// A map as the one-string form (bytes as chars, so JS sees byte strings).
fn flatten(map: &HeaderMap) -> String {
    let mut s = String::with_capacity(map.len() * 32);
    for (name, value) in map {
        s.push_str(name.as_str());
        s.push('\n');
        match value.to_str() {
            Ok(ascii) => s.push_str(ascii),
            Err(_) => s.extend(value.as_bytes().iter().map(|&b| char::from(b))),
        }
        s.push('\n');
    }
    s
}

/// A `Headers` object from a map (invalid fields were filtered by `http`;
/// one the platform refuses is dropped).
pub(crate) fn headers(map: &HeaderMap) -> worker::web_sys::Headers {
    offload_headers(&flatten(map))
}

/// A response with this status, headers and body (`JsValue::NULL`: none;
/// a `Uint8Array` or a `ReadableStream`).
pub(crate) fn response(status: u16, map: &HeaderMap, body: &JsValue) -> Result<worker::web_sys::Response, JsValue> {
    offload_response(body, status, &flatten(map))
}

/// `caches.default.match(key)` with its metadata header `meta` and its
/// body read up to `max` bytes, within `timeout_ms` (see [`crate::l2`]).
pub(crate) fn l2_match(key: &str, meta: &str, max: f64, timeout_ms: f64) -> Result<js_sys::Promise, JsValue> {
    offload_l2_match(key, meta, max, timeout_ms)
}

/// `caches.default.put(key, response)` within `timeout_ms`.
pub(crate) fn l2_put(key: &str, headers: &HeaderMap, body: &js_sys::Uint8Array, timeout_ms: f64) -> Result<js_sys::Promise, JsValue> {
    offload_l2_put(key, &flatten(headers), body, timeout_ms)
}

/// `caches.default.delete(key)` within `timeout_ms`.
pub(crate) fn l2_delete(key: &str, timeout_ms: f64) -> Result<js_sys::Promise, JsValue> {
    offload_l2_delete(key, timeout_ms)
}

/// `request.cf` (undefined outside Cloudflare and for some requests).
pub(crate) fn cf(req: &worker::web_sys::Request) -> JsValue {
    offload_cf(req)
}

/// The platform's `fetch` called directly (no `worker` request or response
/// objects on the way: on a miss, those conversions and a Rust timer raced
/// against the request cost more than the rest of the exchange in Wasm,
/// `cargo xtask bench edge --profile`), with `redirect: manual` and a
/// per-try timeout on the response head (not on the body). `body`: `JsValue::NULL`
/// or bytes (a stream needs the timeout to start after it is sent, which
/// the general path does).
pub(crate) async fn fetch(request: &http::Request<()>, body: &JsValue, timeout_ms: u64) -> Result<worker::web_sys::Response, Outcome> {
    let (sending, host) = start_fetch(request, body, timeout_ms);
    sent(settled(sending).await, &host)
}

/// The call to `fetch`, and the host it goes to (for a warning).
fn start_fetch(request: &http::Request<()>, body: &JsValue, timeout_ms: u64) -> (Result<js_sys::Promise, JsValue>, String) {
    let timeout = timeout_ms.min(u64::from(u32::MAX)) as f64;
    let host = request.uri().host().unwrap_or("").to_owned();
    (offload_fetch(&request.uri().to_string(), request.method().as_str(), &flatten(request.headers()), body, timeout), host)
}

/// `promise` continued by `done` with its outcome: the promise the
/// platform awaits runs `done`, with no Rust future, task queue or waker
/// on the way (on a miss, `wasm-bindgen-futures`' machinery cost more CPU
/// than the rest of the exchange: `cargo xtask bench edge --profile`).
/// `done`'s value (a `Response`, or a promise of one) is the promise's; a
/// call that threw is `done` at once.
pub(crate) fn then(promise: Result<js_sys::Promise, JsValue>, done: impl FnOnce(Result<JsValue, JsValue>) -> JsValue + 'static) -> JsValue {
    match promise {
        Ok(p) => {
            let done = Closure::once_into_js(move |v: JsValue, failed: bool| done(if failed { Err(v) } else { Ok(v) }));
            offload_then(&p, done).into()
        }
        Err(e) => done(Err(e)),
    }
}

/// [`then`]'s awaited form, for the Rust loop: the promise's outcome (a
/// call that threw is its error).
pub(crate) async fn settled(promise: Result<js_sys::Promise, JsValue>) -> Result<JsValue, JsValue> {
    match promise {
        Ok(p) => wasm_bindgen_futures::JsFuture::from(p).await,
        Err(e) => Err(e),
    }
}

/// [`fetch`] with its continuation ([`then`]).
pub(crate) fn fetch_then(
    request: &http::Request<()>,
    body: &JsValue,
    timeout_ms: u64,
    done: impl FnOnce(Result<worker::web_sys::Response, Outcome>) -> JsValue + 'static,
) -> JsValue {
    let (sending, host) = start_fetch(request, body, timeout_ms);
    then(sending, move |r| done(sent(r, &host)))
}

/// A settled `fetch` (or a call to it that threw) as an attempt's outcome.
fn sent(settled: Result<JsValue, JsValue>, host: &str) -> Result<worker::web_sys::Response, Outcome> {
    let e = match settled {
        Ok(v) => return v.dyn_into().map_err(|_| Outcome::ConnectError),
        Err(e) => e,
    };
    if offload_is_timeout(&e) {
        return Err(Outcome::Timeout);
    }
    worker::console_warn!("upstream {host}: {}", crate::body::js_reason(&e));
    Err(Outcome::ConnectError)
}

/// A body of at most `limit` bytes read whole in JS (`stream`:
/// `JsValue::NULL` for none; `declared`: its length as the core gives it,
/// `Io::ReadBody`'s or `CacheFill::declared_length`), then `done` with
/// it: `Ok(None)` when it is longer, `Err` when it failed ([`then`]).
pub(crate) fn read_then(
    stream: &JsValue,
    limit: usize,
    declared: Option<u64>,
    done: impl FnOnce(Result<Option<js_sys::Uint8Array>, JsValue>) -> JsValue + 'static,
) -> JsValue {
    if stream.is_null() {
        return done(Ok(Some(js_sys::Uint8Array::new_with_length(0))));
    }
    then(offload_read_capped(stream, limit as f64, length_arg(declared)), move |r| done(r.map(|v| v.dyn_into().ok())))
}


/// `declared` for `offload_read_capped` (-1: unknown, read in chunks).
pub(crate) fn length_arg(declared: Option<u64>) -> f64 {
    declared.map_or(-1.0, |n| n as f64)
}
