//! Bodies as platform streams, never read whole unless they fit a limit
//! ([`read_capped`]). JS streams are driven through `Reflect` (no `web_sys`
//! features needed, and a missing method is an error, not a panic).
//! Chunks stay JS `Uint8Array`s unless a copy is kept in Wasm memory (the
//! cache copy, a replayable request body).

use js_sys::{Array, Function, Promise, Reflect, Uint8Array};
use offload_core::machine::BodyFailure;
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;

pub(crate) fn call(obj: &JsValue, method: &str, args: &Array) -> Result<JsValue, JsValue> {
    let f: Function = Reflect::get(obj, &JsValue::from_str(method))?.dyn_into()?;
    Reflect::apply(&f, obj, args)
}

pub(crate) async fn settle(v: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(Promise::resolve(&v)).await
}

/// A reader locked on a `ReadableStream`.
pub(crate) struct Reader(JsValue);

impl Reader {
    pub(crate) fn new(stream: &JsValue) -> Result<Self, JsValue> {
        call(stream, "getReader", &Array::new()).map(Reader)
    }
    /// The next chunk; `None` at the end of the stream.
    pub(crate) async fn read(&self) -> Result<Option<Uint8Array>, JsValue> {
        let r = settle(call(&self.0, "read", &Array::new())?).await?;
        if Reflect::get(&r, &JsValue::from_str("done"))?.as_bool().unwrap_or(false) {
            return Ok(None);
        }
        let v = Reflect::get(&r, &JsValue::from_str("value"))?;
        if let Some(a) = v.dyn_ref::<Uint8Array>() {
            return Ok(Some(a.clone()));
        }
        if v.is_instance_of::<js_sys::ArrayBuffer>() {
            return Ok(Some(Uint8Array::new(&v)));
        }
        Err(JsValue::from_str("stream chunk is not bytes"))
    }
    /// Unlock the stream (reading goes on elsewhere from where it stopped).
    pub(crate) fn release(self) {
        let _ = call(&self.0, "releaseLock", &Array::new());
    }
    /// Stop reading and discard the rest.
    pub(crate) async fn cancel(self) {
        if let Ok(p) = call(&self.0, "cancel", &Array::new()) {
            let _ = settle(p).await;
        }
    }
}

/// The writing end of an identity stream whose readable end is a body.
pub(crate) struct Writer(JsValue);

impl Writer {
    /// Write one chunk; resolves when the reader side has room (so a slow
    /// reader slows the writer down instead of growing a queue).
    pub(crate) async fn write(&self, chunk: &Uint8Array) -> Result<(), JsValue> {
        settle(call(&self.0, "write", &Array::of1(chunk))?).await.map(drop)
    }
    pub(crate) async fn close(self) -> Result<(), JsValue> {
        settle(call(&self.0, "close", &Array::new())?).await.map(drop)
    }
    /// Fail the stream: its reader sees an error (a truncated body never
    /// looks complete).
    pub(crate) fn abort(self, why: &str) {
        if let Ok(p) = call(&self.0, "abort", &Array::of1(&JsValue::from_str(why))) {
            // The abort promise may reject once the reader is gone: wait
            // for it (a dropped future's callbacks would throw).
            worker::wasm_bindgen_futures::spawn_local(async move {
                let _ = settle(p).await;
            });
        }
    }
    pub(crate) fn release(self) {
        let _ = call(&self.0, "releaseLock", &Array::new());
    }
}

/// A new identity stream: (readable body, writer, writable). workerd's
/// byte-oriented `IdentityTransformStream` where there is one, else a
/// standard `TransformStream`.
pub(crate) fn identity() -> Result<(JsValue, Writer, JsValue), JsValue> {
    let global = js_sys::global();
    let ctor = ["IdentityTransformStream", "TransformStream"]
        .iter()
        .find_map(|n| Reflect::get(&global, &JsValue::from_str(n)).ok().filter(JsValue::is_function))
        .ok_or_else(|| JsValue::from_str("no TransformStream"))?;
    let ctor: &Function = ctor.unchecked_ref();
    let ts = Reflect::construct(ctor, &Array::new())?;
    let readable = Reflect::get(&ts, &JsValue::from_str("readable"))?;
    let writable = Reflect::get(&ts, &JsValue::from_str("writable"))?;
    let writer = Writer(call(&writable, "getWriter", &Array::new())?);
    Ok((readable, writer, writable))
}

/// `source.pipeTo(dest)`: the rest of a stream, chunk by chunk, without
/// passing through Wasm memory.
pub(crate) async fn pipe(source: &JsValue, dest: &JsValue) -> Result<(), JsValue> {
    settle(call(source, "pipeTo", &Array::of1(dest))?).await.map(drop)
}

pub(crate) fn js_reason(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| Reflect::get(e, &JsValue::from_str("message")).ok().and_then(|m| m.as_string()))
        .unwrap_or_else(|| "stream error".to_owned())
}

/// Read a whole body of at most `limit` bytes into memory, stopping at the
/// first chunk past the limit (so at most one chunk more is ever read).
/// `None` stream: an empty body; `declared`: its length as the core gives
/// it (within the limit, the body is read in one call). The loop runs in JS (one promise for the
/// Wasm side to wait on, not two per chunk; the presign endpoint, which
/// reads a small body per request, spent most of its time here:
/// `cargo xtask bench sign`), and the body is copied into Wasm memory once.
pub(crate) async fn read_capped(stream: Option<JsValue>, limit: usize, declared: Option<u64>) -> Result<Vec<u8>, BodyFailure> {
    let Some(stream) = stream else { return Ok(Vec::new()) };
    let settled = crate::js::settled(crate::js::offload_read_capped(&stream, limit as f64, crate::js::length_arg(declared))).await;
    capped(settled.map(|v| v.dyn_into::<Uint8Array>().ok()))
}

/// A capped read's outcome (bytes, `None` past the limit, or the
/// stream's error) as the machine's [`BodyFailure`] input.
pub(crate) fn capped(read: Result<Option<Uint8Array>, JsValue>) -> Result<Vec<u8>, BodyFailure> {
    match read {
        Ok(Some(bytes)) => Ok(bytes.to_vec()),
        Ok(None) => Err(BodyFailure::TooLarge),
        Err(e) => Err(BodyFailure::Failed(js_reason(&e))),
    }
}
