//! The JavaScript API of the browser package (wasm-bindgen).
//!
//! ```js
//! import init, { OffloadExplainer, parseHeaders, presignAndUpload } from "./offload_browser.js";
//! await init();
//! const explainer = new OffloadExplainer(configToml);
//! const decision = JSON.parse(explainer.explain(JSON.stringify({
//!   url: "/api/items/1", status: 200,
//!   response_headers: [["cache-control", "max-age=60, stale-while-revalidate=30"]],
//!   now_ms: Date.now(),
//! })));
//! const done = await presignAndUpload({ edge: location.origin, grant, bucket: "uploads",
//!   key: "user-42/photo.jpg", file, expires: 300 }, (sent, total) => { ... });
//! ```

use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ProgressEvent, RequestInit, XmlHttpRequest};

use crate::explain::{parse_header_block, Case, Explainer};

/// The explainer for one config (TOML text, as `offload.toml`).
#[wasm_bindgen]
pub struct OffloadExplainer {
    inner: Explainer,
}

#[wasm_bindgen]
impl OffloadExplainer {
    #[wasm_bindgen(constructor)]
    pub fn new(config_toml: &str) -> Result<OffloadExplainer, JsError> {
        Explainer::from_toml(config_toml).map(|inner| Self { inner }).map_err(|e| JsError::new(&e.to_string()))
    }

    /// The decision for a case (JSON: `{method, url, request_headers,
    /// status, response_headers, now_ms}`), as JSON.
    pub fn explain(&self, case_json: &str) -> Result<String, JsError> {
        let case: Case = serde_json::from_str(case_json).map_err(|e| JsError::new(&format!("case: {e}")))?;
        let out = self.inner.explain(&case).map_err(|e| JsError::new(&e.to_string()))?;
        serde_json::to_string(&out).map_err(|e| JsError::new(&e.to_string()))
    }
}

/// Pasted header lines → JSON `{"fields": [[name, value]...], "status": n|null}`.
#[wasm_bindgen(js_name = parseHeaders)]
pub fn parse_headers(text: &str) -> Result<String, JsError> {
    let (fields, status) = parse_header_block(text).map_err(|e| JsError::new(&e.to_string()))?;
    Ok(serde_json::json!({ "fields": fields, "status": status }).to_string())
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn global_fetch(input: &str, init: &RequestInit) -> Promise;
}

fn js_err(context: &str, e: JsValue) -> JsError {
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    JsError::new(&format!("{context}: {msg}"))
}

fn get_str(obj: &JsValue, field: &str) -> Result<String, JsError> {
    Reflect::get(obj, &JsValue::from_str(field))
        .ok()
        .and_then(|v| v.as_string())
        .ok_or_else(|| JsError::new(&format!("options.{field} must be a string")))
}

/// Ask the edge's presign endpoint for a presigned PUT URL for `file`.
/// `options`: `{edge, grant, bucket, key, expires?, contentType?, path?}`
/// (`edge`: the edge's origin, `grant`: the presign grant the application
/// issued). Resolves to the endpoint's answer `{url, method, expires_at,
/// headers}`; rejects with the endpoint's error (its `field` names what
/// was refused).
#[wasm_bindgen]
pub async fn presign(options: JsValue, file: Blob) -> Result<JsValue, JsError> {
    let edge = get_str(&options, "edge")?;
    let grant = get_str(&options, "grant")?;
    let bucket = get_str(&options, "bucket")?;
    let key = get_str(&options, "key")?;
    let path = get_str(&options, "path").unwrap_or_else(|_| "/_offload/presign".to_owned());
    let expires = Reflect::get(&options, &JsValue::from_str("expires")).ok().and_then(|v| v.as_f64()).unwrap_or(300.0);
    let content_type = get_str(&options, "contentType").unwrap_or_else(|_| file.type_());
    let content_type = if content_type.is_empty() { "application/octet-stream".to_owned() } else { content_type };
    let body = serde_json::json!({
        "bucket": bucket,
        "key": key,
        "method": "PUT",
        "expires": expires as u64,
        "content_length": file.size() as u64,
        "content_type": content_type,
    });
    let init = RequestInit::new();
    init.set_method("POST");
    let headers = web_sys::Headers::new().map_err(|e| js_err("headers", e))?;
    headers.set("authorization", &format!("Bearer {grant}")).map_err(|e| js_err("grant", e))?;
    headers.set("content-type", "application/json").map_err(|e| js_err("headers", e))?;
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body.to_string()));
    let url = format!("{}{path}", edge.trim_end_matches('/'));
    let resp: web_sys::Response = JsFuture::from(global_fetch(&url, &init))
        .await
        .map_err(|e| js_err(&format!("POST {url}"), e))?
        .dyn_into()
        .map_err(|e| js_err("fetch", e))?;
    let json = JsFuture::from(resp.json().map_err(|e| js_err("presign answer", e))?)
        .await
        .map_err(|e| js_err(&format!("presign answer ({})", resp.status()), e))?;
    if !resp.ok() {
        let error = get_str(&json, "error").unwrap_or_default();
        let field = get_str(&json, "field").unwrap_or_default();
        return Err(JsError::new(&format!("presign refused ({}): {field}: {error}", resp.status())));
    }
    Ok(json)
}

/// PUT `file` to a presigned URL (the answer of [`presign`]) with
/// `XMLHttpRequest`, calling `on_progress(sent, total)` as bytes go out.
/// Resolves to `{status, etag}`; rejects when the bucket refuses.
#[wasm_bindgen(js_name = uploadFile)]
pub fn upload_file(presigned: JsValue, file: Blob, on_progress: Option<Function>) -> Result<Promise, JsError> {
    let url = get_str(&presigned, "url")?;
    let xhr = XmlHttpRequest::new().map_err(|e| js_err("XMLHttpRequest", e))?;
    xhr.open("PUT", &url).map_err(|e| js_err("open", e))?;
    // Send exactly the signed headers (Content-Length comes from the file).
    if let Ok(h) = Reflect::get(&presigned, &JsValue::from_str("headers")) {
        if h.is_object() {
            for entry in Object::entries(h.unchecked_ref::<Object>()).iter() {
                let pair: js_sys::Array = entry.unchecked_into();
                let (name, value) = (pair.get(0).as_string().unwrap_or_default(), pair.get(1).as_string().unwrap_or_default());
                if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("host") {
                    xhr.set_request_header(&name, &value).map_err(|e| js_err(&format!("header {name}"), e))?;
                }
            }
        }
    }
    if let Some(cb) = on_progress {
        let progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |ev: ProgressEvent| {
            let _ = cb.call2(&JsValue::NULL, &JsValue::from_f64(ev.loaded()), &JsValue::from_f64(ev.total()));
        });
        xhr.upload().map_err(|e| js_err("upload", e))?.set_onprogress(Some(progress.as_ref().unchecked_ref()));
        // Owned by the XHR from here on (freed with it by the JS GC).
        let _ = progress.into_js_value();
    }
    let x = xhr.clone();
    let promise = Promise::new(&mut move |resolve, reject| {
        let (xl, rj) = (x.clone(), reject.clone());
        let onload = Closure::once_into_js(move || {
            let status = xl.status().unwrap_or(0);
            if (200..300).contains(&status) {
                let out = Object::new();
                let _ = Reflect::set(&out, &"status".into(), &JsValue::from(status));
                let etag = xl.get_response_header("etag").ok().flatten();
                let _ = Reflect::set(&out, &"etag".into(), &etag.map_or(JsValue::NULL, |e| JsValue::from_str(&e)));
                let _ = resolve.call1(&JsValue::NULL, &out);
            } else {
                let body = xl.response_text().ok().flatten().unwrap_or_default();
                let msg = format!("the bucket refused the upload ({status}): {}", body.chars().take(300).collect::<String>());
                let _ = rj.call1(&JsValue::NULL, &js_sys::Error::new(&msg));
            }
        });
        x.set_onload(Some(onload.unchecked_ref()));
        let onerror = Closure::once_into_js(move || {
            let _ = reject.call1(&JsValue::NULL, &js_sys::Error::new("upload failed: network error (is CORS allowed on the bucket?)"));
        });
        x.set_onerror(Some(onerror.unchecked_ref()));
    });
    xhr.send_with_opt_blob(Some(&file)).map_err(|e| js_err("send", e))?;
    Ok(promise)
}

/// [`presign`] then [`uploadFile`](upload_file): resolves to `{status,
/// etag, url}` (the URL without its query: no signature is returned).
#[wasm_bindgen(js_name = presignAndUpload)]
pub async fn presign_and_upload(options: JsValue, file: Blob, on_progress: Option<Function>) -> Result<JsValue, JsError> {
    let presigned = presign(options, file.clone()).await?;
    let promise = upload_file(presigned.clone(), file, on_progress)?;
    let done = JsFuture::from(promise).await.map_err(|e| js_err("upload", e))?;
    let url = get_str(&presigned, "url")?;
    let _ = Reflect::set(&done, &"url".into(), &JsValue::from_str(url.split('?').next().unwrap_or("")));
    Ok(done)
}
