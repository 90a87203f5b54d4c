//! Cloudflare Workers adapter: conversion and I/O only. Every decision is
//! made by `offload_core`; this file turns `worker` types into `http` types
//! and back, and performs the fetches the core's plan asks for.

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use offload_core::{Config, Edge, Error, Plan, Viewer};
use worker::{
    event, Context, Env, Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response,
};

/// The config bundled at build time (validated by build.rs, so a bad
/// config never deploys).
const CONFIG_TOML: &str = include_str!(concat!(env!("OUT_DIR"), "/offload.toml"));

fn edge() -> Result<&'static Edge, Error> {
    static EDGE: OnceLock<Result<Edge, Error>> = OnceLock::new();
    EDGE.get_or_init(|| Config::from_toml(CONFIG_TOML).map(Edge::new).map_err(Error::from))
        .as_ref()
        .map_err(Clone::clone)
}

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> worker::Result<Response> {
    let edge = match edge() {
        Ok(e) => e,
        Err(e) => {
            worker::console_error!("{e}");
            return to_worker_response(&e.to_response());
        }
    };
    let head = match to_http_head(&req) {
        Ok(h) => h,
        Err(e) => return to_worker_response(&edge.error_response(&e)),
    };
    let viewer = viewer_of(&req, &head);
    match edge.plan(&head, &viewer) {
        Plan::Respond(resp) => to_worker_response(&resp),
        Plan::Forward(fwd) => {
            let mut init = RequestInit::new();
            init.with_method(to_worker_method(fwd.request.method()))
                .with_headers(to_worker_headers(fwd.request.headers()))
                .with_redirect(RequestRedirect::Manual);
            if fwd.send_body {
                init.with_body(req.inner().body().map(Into::into));
            }
            let upstream = Request::new_with_init(&fwd.request.uri().to_string(), &init)?;
            let resp = match Fetch::Request(upstream).send().await {
                Ok(r) => r,
                Err(e) => {
                    let err = Error::Upstream(format!("{}: {e}", fwd.request.uri().host().unwrap_or("")));
                    worker::console_error!("{err}");
                    return to_worker_response(&edge.error_response(&err));
                }
            };
            let status = resp.status_code();
            let Ok(status_code) = http::StatusCode::from_u16(status) else {
                // Statuses outside 100-999 cannot be re-labelled: pass the
                // platform's response through untouched.
                return Ok(resp);
            };
            let mut headers = from_worker_headers(resp.headers());
            edge.finish(&fwd, status_code, &mut headers);
            // Keep the platform's stream as is (no copy through Wasm).
            let (_, body) = resp.into_parts();
            Ok(Response::builder()
                .with_status(status)
                .with_headers(to_worker_headers(&headers))
                .body(body))
        }
    }
}

/// The viewer as the platform saw it: address from `CF-Connecting-IP`
/// (set by Cloudflare, not by the viewer), TLS from the URL scheme.
fn viewer_of(req: &Request, head: &http::Request<()>) -> Viewer {
    let ip = req
        .headers()
        .get("cf-connecting-ip")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok());
    Viewer { ip, tls: head.uri().scheme_str() == Some("https") }
}

fn to_http_head(req: &Request) -> Result<http::Request<()>, Error> {
    let bad = |what: &str| {
        Error::Request(offload_core::RequestError::new(
            offload_core::error::RequestErrorKind::BadRequest,
            what,
        ))
    };
    let url = req.url().map_err(|_| bad("request URL is not valid"))?;
    let uri: http::Uri = url.as_str().parse().map_err(|_| bad("request URL is not a valid URI"))?;
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

fn to_worker_method(m: &http::Method) -> Method {
    Method::from(m.as_str().to_owned())
}

fn to_worker_response(resp: &http::Response<Vec<u8>>) -> worker::Result<Response> {
    Ok(Response::builder()
        .with_status(resp.status().as_u16())
        .with_headers(to_worker_headers(resp.headers()))
        .fixed(resp.body().clone()))
}
