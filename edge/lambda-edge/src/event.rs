//! CloudFront event records ⇄ `http` types.
//!
//! The event is kept as a JSON value so that every field this adapter does
//! not touch (`body`, `origin.custom.sslProtocols`, unknown future fields)
//! goes back to CloudFront exactly as it came.
//!
//! Header maps in events are `{ "<lower-case name>": [{ "key": "Name",
//! "value": "v" }, ...] }`; the `key` keeps the viewer's spelling.

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Map, Value};

use crate::restricted::{is_restricted, Trigger};

/// `Records[0].cf` of an event.
pub fn cf_record(event: &Value) -> Option<&Value> {
    event.get("Records")?.get(0)?.get("cf")
}

pub fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// An event header map as a `HeaderMap`; fields that are not valid HTTP
/// are dropped (they never reach the core, and are restored unchanged by
/// [`merge_headers`] if restricted).
pub fn headers_from_cf(headers: Option<&Value>) -> HeaderMap {
    let mut map = HeaderMap::new();
    let Some(obj) = headers.and_then(Value::as_object) else { return map };
    for (name, list) in obj {
        let Ok(name) = HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) else { continue };
        for entry in list.as_array().into_iter().flatten() {
            let Some(v) = str_field(entry, "value") else { continue };
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                map.append(name.clone(), v);
            }
        }
    }
    map
}

/// `content-type` → `Content-Type`, as CloudFront's examples spell keys.
pub fn canonical_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if upper {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        upper = c == '-';
    }
    out
}

/// A `HeaderMap` as an event header map. Keys keep the spelling the event
/// used for that field (`original`), new fields get [`canonical_key`].
pub fn headers_to_cf(map: &HeaderMap, original: Option<&Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for name in map.keys() {
        let key = original
            .and_then(|o| o.get(name.as_str()))
            .and_then(|l| l.get(0))
            .and_then(|e| str_field(e, "key"))
            .map_or_else(|| canonical_key(name.as_str()), str::to_owned);
        let list: Vec<Value> = map
            .get_all(name)
            .iter()
            .map(|v| json!({ "key": key, "value": String::from_utf8_lossy(v.as_bytes()) }))
            .collect();
        out.insert(name.as_str().to_owned(), Value::Array(list));
    }
    out
}

/// The headers a function returns: `new`, except that every header
/// CloudFront restricts for `trigger` is exactly what the event had (kept
/// if present, absent if it was absent). This is the one place that
/// enforces the restrictions; nothing restricted can slip through.
pub fn merge_headers(trigger: Trigger, new: Map<String, Value>, original: Option<&Value>) -> Value {
    let mut out: Map<String, Value> =
        new.into_iter().filter(|(name, _)| !is_restricted(trigger, name)).collect();
    if let Some(orig) = original.and_then(Value::as_object) {
        for (name, list) in orig {
            if is_restricted(trigger, &name.to_ascii_lowercase()) {
                out.insert(name.clone(), list.clone());
            }
        }
    }
    Value::Object(out)
}

/// A response the function generates (viewer or origin request events).
/// Restricted headers are left out; a body that would exceed CloudFront's
/// generated-response quota for the trigger becomes a short 502.
pub fn generated_response(trigger: Trigger, resp: &http::Response<Vec<u8>>) -> Value {
    let headers = merge_headers(trigger, headers_to_cf(resp.headers(), None), None);
    let (body, encoding) = match std::str::from_utf8(resp.body()) {
        Ok(s) => (s.to_owned(), "text"),
        Err(_) => {
            use base64::Engine as _;
            (base64::engine::general_purpose::STANDARD.encode(resp.body()), "base64")
        }
    };
    let size = body.len() + headers.to_string().len();
    if size > trigger.generated_response_limit() {
        return json!({
            "status": "502",
            "statusDescription": "Bad Gateway",
            "headers": { "content-type": [{ "key": "Content-Type", "value": "application/json" }] },
            "body": "{\"error\":\"generated response exceeds the CloudFront size quota\",\"status\":502}",
            "bodyEncoding": "text",
        });
    }
    json!({
        "status": resp.status().as_u16().to_string(),
        "statusDescription": resp.status().canonical_reason().unwrap_or(""),
        "headers": headers,
        "body": body,
        "bodyEncoding": encoding,
    })
}

/// An event's request (`cf.request`) as an `http::Request<()>` with an
/// absolute URI `https://{host}{uri}[?{querystring}]` (the core takes the
/// viewer host from the authority). `host` is the viewer's host name.
pub fn request_from_cf(req: &Value, host: Option<&str>, tls: bool) -> Option<http::Request<()>> {
    let method = http::Method::from_bytes(str_field(req, "method")?.as_bytes()).ok()?;
    let uri = str_field(req, "uri")?;
    let qs = str_field(req, "querystring").unwrap_or("");
    let mut target = String::with_capacity(uri.len() + qs.len() + 64);
    let scheme = if tls { "https" } else { "http" };
    let mut pq = uri.to_owned();
    if !qs.is_empty() {
        pq.push('?');
        pq.push_str(qs);
    }
    // Bytes the `http` crate refuses but the canonical form encodes anyway
    // (non-ASCII, space, ...) are escaped; everything else is judged by
    // the canonical form, not here.
    let pq = offload_core::proxy::canonical::escape_for_uri(&pq).into_owned();
    let parsed: http::Uri = match host.filter(|h| h.parse::<http::uri::Authority>().is_ok()) {
        Some(h) => {
            target.push_str(scheme);
            target.push_str("://");
            target.push_str(h);
            target.push_str(&pq);
            target.parse().ok()?
        }
        None => pq.parse().ok()?,
    };
    let mut out = http::Request::new(());
    *out.method_mut() = method;
    *out.uri_mut() = parsed;
    *out.headers_mut() = headers_from_cf(req.get("headers"));
    Some(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_keys() {
        assert_eq!(canonical_key("content-type"), "Content-Type");
        assert_eq!(canonical_key("x-amz-date"), "X-Amz-Date");
        assert_eq!(canonical_key("etag"), "Etag");
    }

    #[test]
    fn restricted_headers_come_back_as_they_were() {
        let original = json!({
            "host": [{ "key": "Host", "value": "d123.cf.net" }],
            "via": [{ "key": "Via", "value": "2.0 x.cloudfront.net (CloudFront)" }],
        });
        let mut map = HeaderMap::new();
        map.insert("host", HeaderValue::from_static("origin.example"));
        map.insert("via", HeaderValue::from_static("1.1 Offload"));
        map.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        map.insert("x-a", HeaderValue::from_static("1"));
        let out = merge_headers(Trigger::ViewerRequest, headers_to_cf(&map, Some(&original)), Some(&original));
        assert_eq!(
            out,
            json!({
                "host": [{ "key": "Host", "value": "d123.cf.net" }],
                "via": [{ "key": "Via", "value": "2.0 x.cloudfront.net (CloudFront)" }],
                "x-a": [{ "key": "X-A", "value": "1" }],
            })
        );
    }
}
