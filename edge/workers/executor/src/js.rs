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
//! built by one call.

use http::{HeaderMap, HeaderName, HeaderValue};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;

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
export function offload_response(body, status, flat) {
  if (body === null || body instanceof Uint8Array) {
    // One header fill, by the constructor. A body it has not locked can be
    // used again if a field is refused.
    const f = flat.split("\n");
    const pairs = [];
    for (let i = 0; i + 1 < f.length; i += 2) pairs.push([f[i], f[i + 1]]);
    try { return new Response(body, { status, headers: pairs }); } catch (_) { /* dropped below */ }
  }
  return new Response(body, { status, headers: offload_headers(flat) });
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

/// JS header values are byte strings (one char per byte). Convert without
/// panicking; a field that is still invalid is dropped.
fn parse_pairs<'a>(mut it: impl Iterator<Item = &'a str>, map: &mut HeaderMap) {
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else { continue };
        let bytes: Option<Vec<u8>> = value.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect();
        if let Some(v) = bytes.and_then(|b| HeaderValue::from_bytes(&b).ok()) {
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
        s.extend(value.as_bytes().iter().map(|&b| char::from(b)));
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

/// `request.cf` (undefined outside Cloudflare and for some requests).
pub(crate) fn cf(req: &worker::web_sys::Request) -> JsValue {
    offload_cf(req)
}
