#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const CFG: &str = r#"
[origins.us-east-1]
url = "http://127.0.0.1:18701"
region = "us-east-1"

[origins.eu]
url = "https://eu.example.com/base"
host_header = "app.example.com"

[buckets.www]
endpoint = "http://127.0.0.1:18703"
bucket = "www"
region = "us-east-1"
index = "index.html"

[[routes]]
path = "/api/*"
origin = "us-east-1"

[[routes]]
path = "/eu/*"
origin = "eu"
strip_prefix = true

[[routes]]
path = "/*"
bucket = "www"
"#;

fn edge() -> Edge {
    Edge::new(Config::from_toml(CFG).unwrap())
}

fn forward(req: Request<()>, viewer: &Viewer) -> Forward {
    match edge().plan(&req, viewer) {
        Plan::Forward(f) => f,
        Plan::Respond(r) => panic!("expected forward, got {}", r.status()),
    }
}

fn respond(req: Request<()>) -> Response<Vec<u8>> {
    match edge().plan(&req, &Viewer::default()) {
        Plan::Respond(r) => r,
        Plan::Forward(f) => panic!("expected a response, got forward to {}", f.request.uri()),
    }
}

#[test]
fn origin_request_keeps_method_path_query_and_headers() {
    let req = Request::post("https://www.example.com/api/echo?a=1&b=%20")
        .header("content-type", "text/plain")
        .header("cookie", "s=1")
        .body(())
        .unwrap();
    let viewer = Viewer { ip: Some("203.0.113.9".parse().unwrap()), tls: true };
    let f = forward(req, &viewer);
    assert_eq!(f.request.method(), Method::POST);
    assert_eq!(f.request.uri(), "http://127.0.0.1:18701/api/echo?a=1&b=%20");
    let h = f.request.headers();
    assert_eq!(h["host"], "127.0.0.1:18701");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["cookie"], "s=1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "www.example.com");
    assert_eq!(h["via"], "1.1 Offload");
    assert!(f.send_body);
    assert_eq!(f.upstream, Upstream::Origin { name: "us-east-1".into(), region: Some("us-east-1".into()) });
    assert_eq!(f.cache_status.to_string(), "Offload; fwd=bypass");
}

#[test]
fn viewer_cannot_spoof_forwarding_or_poisoning_headers() {
    let req = Request::get("/api/time")
        .header("host", "site.example")
        .header("x-forwarded-for", "1.2.3.4")
        .header("x-forwarded-host", "evil.example")
        .header("x-original-url", "/admin")
        .header("x-http-method-override", "DELETE")
        .header("connection", "x-drop-me")
        .header("x-drop-me", "1")
        .body(())
        .unwrap();
    let viewer = Viewer { ip: Some("198.51.100.7".parse().unwrap()), tls: false };
    let f = forward(req, &viewer);
    let h = f.request.headers();
    assert_eq!(h["x-forwarded-for"], "198.51.100.7");
    assert_eq!(h["x-forwarded-host"], "site.example");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(!h.contains_key("x-original-url"));
    assert!(!h.contains_key("x-http-method-override"));
    assert!(!h.contains_key("x-drop-me"));
    assert!(!h.contains_key("connection"));
    assert_eq!(f.cache_status.to_string(), "Offload; fwd=uri-miss");
    assert!(!f.send_body);
}

#[test]
fn strip_prefix_base_path_and_host_header() {
    let f = forward(Request::get("http://x.test/eu/items/3?q").body(()).unwrap(), &Viewer::default());
    assert_eq!(f.request.uri(), "https://eu.example.com/base/items/3?q");
    assert_eq!(f.request.headers()["host"], "app.example.com");
}

#[test]
fn bucket_route_maps_index_and_forwards_only_safe_headers() {
    let req = Request::get("http://x.test/")
        .header("cookie", "secret=1")
        .header("authorization", "Bearer t")
        .header("if-none-match", "\"abc\"")
        .body(())
        .unwrap();
    let f = forward(req, &Viewer::default());
    assert_eq!(f.request.uri(), "http://127.0.0.1:18703/www/index.html");
    let h = f.request.headers();
    assert_eq!(h["host"], "127.0.0.1:18703");
    assert_eq!(h["if-none-match"], "\"abc\"");
    assert!(!h.contains_key("cookie"));
    assert!(!h.contains_key("authorization"));
    assert_eq!(f.upstream, Upstream::Bucket { alias: "www".into() });

    let f = forward(Request::get("http://x.test/docs/").body(()).unwrap(), &Viewer::default());
    assert_eq!(f.request.uri(), "http://127.0.0.1:18703/www/docs/index.html");
    let f = forward(Request::head("http://x.test/a%20b.css").body(()).unwrap(), &Viewer::default());
    assert_eq!(f.request.uri(), "http://127.0.0.1:18703/www/a%20b.css");
}

#[test]
fn bucket_refuses_writes_with_405() {
    let r = respond(Request::put("http://x.test/index.html").body(()).unwrap());
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD");
    assert_eq!(r.headers()["cache-status"], "Offload; fwd=bypass; detail=edge-error");
}

#[test]
fn no_route_is_404_json() {
    let cfg = Config::from_toml("[origins.a]\nurl = \"http://a.test\"\n[[routes]]\npath = \"/api/*\"\norigin = \"a\"\n")
        .unwrap();
    let Plan::Respond(r) = Edge::new(cfg).plan(&Request::get("/nope").body(()).unwrap(), &Viewer::default())
    else {
        panic!("expected 404")
    };
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(body["error"], "no route: \"/nope\"");
}

#[test]
fn bad_host_header_is_400() {
    let r = respond(Request::get("/api/x").header("host", "a b").body(()).unwrap());
    assert_eq!(r.status(), 400);
}

#[test]
fn finish_strips_hop_by_hop_and_adds_cache_status() {
    let e = edge();
    let f = forward(Request::get("http://x.test/index.html").body(()).unwrap(), &Viewer::default());
    let mut h = HeaderMap::new();
    h.insert("x-amz-request-id", HeaderValue::from_static("r"));
    h.insert("connection", HeaderValue::from_static("keep-alive"));
    h.insert("cache-status", HeaderValue::from_static("Origin; hit"));
    h.insert("etag", HeaderValue::from_static("\"e\""));
    e.finish(&f, http::StatusCode::OK, &mut h);
    assert!(!h.contains_key("x-amz-request-id"));
    assert!(!h.contains_key("connection"));
    assert_eq!(h["etag"], "\"e\"");
    assert_eq!(h["cache-status"], "Origin; hit, Offload; fwd=uri-miss; fwd-status=200");
    assert_eq!(h["via"], "1.1 Offload");
}
