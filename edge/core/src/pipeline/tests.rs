#![allow(clippy::unwrap_used, clippy::panic)]

use super::*;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const CFG: &str = r#"
[regions.us-east-1]
location = { lat = 38.9, lon = -77.4 }
countries = ["US"]
origins = [{ url = "http://127.0.0.1:18701" }]

[regions.eu]
location = { lat = 53.3, lon = -6.3 }
continents = ["EU"]
origins = [{ url = "https://eu.example.com/base", host_header = "app.example.com" }]

[routing.origin_auth]
key_id = "k1"
secret = { binding = "ORIGIN_AUTH" }

[buckets.www]
endpoint = "http://127.0.0.1:18703"
bucket = "www"
region = "us-east-1"
index = "index.html"

[[routes]]
path = "/api/*"
pool = ["us-east-1", "eu"]
cache = { }

[[routes]]
path = "/eu/*"
pool = ["eu"]
strip_prefix = true

[[routes]]
path = "/*"
bucket = "www"
"#;

/// The secrets CFG (and its variants) reference.
fn secrets() -> SecretMap {
    SecretMap::from_bindings([
        ("ORIGIN_AUTH", "0123456789abcdef0123"),
        ("S3_ID", "AKIDEXAMPLE"),
        ("S3_SECRET", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("LINK", "0123456789abcdef0123456789abcdef-link"),
    ])
}

fn edge_of(config: Config) -> Edge {
    Edge::new(config, &secrets()).unwrap()
}

fn edge() -> Edge {
    edge_of(Config::from_toml(CFG).unwrap())
}

fn plan(e: &Edge, req: Request<()>, viewer: &Viewer) -> Plan {
    let mut state = EdgeState::new(e.config());
    e.plan_upstream(&req, viewer, &mut state, 1_700_000_000_000, 1)
}

fn forward(req: Request<()>, viewer: &Viewer) -> (Forward, Request<()>) {
    match plan(&edge(), req, viewer) {
        Plan::Forward(f) => {
            let Step::Send { request, .. } = f.step.clone() else { panic!("expected a request to send") };
            (*f, request)
        }
        Plan::Respond(r) => panic!("expected forward, got {}", r.status()),
    }
}

fn respond(req: Request<()>) -> Response<Vec<u8>> {
    match plan(&edge(), req, &Viewer::default()) {
        Plan::Respond(r) => r,
        Plan::Forward(f) => panic!("expected a response, got forward {:?}", f.upstream),
    }
}

fn us_viewer() -> Viewer {
    Viewer { location: crate::route::geo::parse_test_header("country=US").unwrap(), ..Viewer::default() }
}

#[test]
fn origin_request_keeps_method_path_query_and_headers() {
    let req = Request::post("https://www.example.com/api/echo?a=1&b=%20")
        .header("content-type", "text/plain")
        .header("cookie", "s=1")
        .body(())
        .unwrap();
    let viewer = Viewer { ip: Some("203.0.113.9".parse().unwrap()), tls: true, ..us_viewer() };
    let (f, request) = forward(req, &viewer);
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "http://127.0.0.1:18701/api/echo?a=1&b=%20");
    let h = request.headers();
    assert_eq!(h["host"], "127.0.0.1:18701");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["cookie"], "s=1");
    assert_eq!(h["x-forwarded-for"], "203.0.113.9");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "www.example.com");
    assert_eq!(h["via"], "1.1 Offload");
    assert!(f.send_body);
    assert_eq!(f.upstream, Upstream::Origins);
    assert_eq!(f.cache_status.to_string(), "Offload; fwd=bypass");
    // Every origin request carries a fresh origin-auth header for exactly
    // this request line and host.
    let auth = h["x-offload-auth"].to_str().unwrap();
    let keys = crate::route::auth::Keyring::new([crate::route::auth::SigningKey::new(
        "k1",
        crate::route::auth::Secret::new(b"0123456789abcdef0123".to_vec()),
    )]);
    crate::route::auth::verify_origin_request(&keys, Some(auth), "POST", "/api/echo?a=1&b=%20", "127.0.0.1:18701", 1_700_000_000, 30)
        .unwrap();
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
        .header("x-offload-auth", "v1,ts=1,kid=k1,sig=forged")
        .header("x-offload-geo", "country=DE")
        .body(())
        .unwrap();
    let viewer = Viewer { ip: Some("198.51.100.7".parse().unwrap()), tls: false, ..us_viewer() };
    let (f, request) = forward(req, &viewer);
    let h = request.headers();
    assert_eq!(h["x-forwarded-for"], "198.51.100.7");
    assert_eq!(h["x-forwarded-host"], "site.example");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(!h.contains_key("x-original-url"));
    assert!(!h.contains_key("x-http-method-override"));
    assert!(!h.contains_key("x-drop-me"));
    assert!(!h.contains_key("connection"));
    assert!(!h.contains_key("x-offload-geo"));
    assert_ne!(h["x-offload-auth"], "v1,ts=1,kid=k1,sig=forged");
    assert_eq!(f.cache_status.to_string(), "Offload; fwd=uri-miss");
    assert!(!f.send_body);
}

#[test]
fn strip_prefix_base_path_and_host_header() {
    let (_, request) = forward(Request::get("http://x.test/eu/items/3?q").body(()).unwrap(), &Viewer::default());
    assert_eq!(request.uri(), "https://eu.example.com/base/items/3?q");
    assert_eq!(request.headers()["host"], "app.example.com");
}

#[test]
fn bucket_route_maps_index_and_forwards_only_safe_headers() {
    let req = Request::get("http://x.test/")
        .header("cookie", "secret=1")
        .header("authorization", "Bearer t")
        .header("if-none-match", "\"abc\"")
        .body(())
        .unwrap();
    let (f, request) = forward(req, &Viewer::default());
    assert_eq!(request.uri(), "http://127.0.0.1:18703/www/index.html");
    let h = request.headers();
    assert_eq!(h["host"], "127.0.0.1:18703");
    assert_eq!(h["if-none-match"], "\"abc\"");
    assert!(!h.contains_key("cookie"));
    assert!(!h.contains_key("authorization"));
    assert_eq!(f.upstream, Upstream::Bucket { alias: "www".into() });

    let (_, request) = forward(Request::get("http://x.test/docs/").body(()).unwrap(), &Viewer::default());
    assert_eq!(request.uri(), "http://127.0.0.1:18703/www/docs/index.html");
    let (_, request) = forward(Request::head("http://x.test/a%20b.css?acl").body(()).unwrap(), &Viewer::default());
    assert_eq!(request.uri(), "http://127.0.0.1:18703/www/a%20b.css");
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
    let cfg = Config::from_toml(
        "[regions.a]\nlocation = { lat = 1.0, lon = 1.0 }\norigins = [{ url = \"http://a.test\" }]\n[[routes]]\npath = \"/api/*\"\n",
    )
    .unwrap();
    let Plan::Respond(r) = plan(&edge_of(cfg), Request::get("http://x.test/nope").body(()).unwrap(), &Viewer::default()) else {
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
    let (f, _) = forward(Request::get("http://x.test/index.html").body(()).unwrap(), &Viewer::default());
    let mut h = HeaderMap::new();
    h.insert("x-amz-request-id", HeaderValue::from_static("r"));
    h.insert("connection", HeaderValue::from_static("keep-alive"));
    h.insert("cache-status", HeaderValue::from_static("Origin; hit"));
    h.insert("etag", HeaderValue::from_static("\"e\""));
    e.finish(&f, http::StatusCode::OK, &mut h);
    assert!(!h.contains_key("x-amz-request-id"));
    assert!(!h.contains_key("connection"));
    assert_eq!(h["etag"], "\"e\"");
    assert_eq!(h["cache-status"], "Origin; hit, Offload; fwd=bypass; fwd-status=200");
    assert_eq!(h["via"], "1.1 Offload");
}

#[test]
fn failover_walks_to_the_next_region_and_reports_it() {
    let e = edge();
    let mut state = EdgeState::new(e.config());
    let req = Request::get("http://x.test/api/time").body(()).unwrap();
    let Plan::Forward(mut f) = e.plan_upstream(&req, &us_viewer(), &mut state, 1_000, 1) else { panic!() };
    let Step::Send { request, .. } = &f.step else { panic!() };
    assert_eq!(request.uri(), "http://127.0.0.1:18701/api/time", "US viewer starts in us-east-1");
    e.report(&mut f, Outcome::Status(503), false, 12, &mut state, 1_012);
    let Step::Send { request, .. } = &f.step else { panic!("expected a retry, got {:?}", f.step) };
    assert_eq!(request.uri(), "https://eu.example.com/base/api/time");
    assert_eq!(request.headers()["host"], "app.example.com");
    e.report(&mut f, Outcome::Status(200), false, 20, &mut state, 1_040);
    assert!(matches!(f.step, Step::Deliver));
    let mut h = HeaderMap::new();
    e.finish(&f, http::StatusCode::OK, &mut h);
    let timing = h["server-timing"].to_str().unwrap();
    assert!(timing.contains("eu") && timing.contains("us-east-1 503"), "{timing}");
    let log: serde_json::Value = serde_json::from_str(&f.log_line(200)).unwrap();
    assert_eq!(log["path"], "/api/time");
    assert_eq!(log["route"]["served_by"], "eu");
    assert_eq!(log["route"]["attempts"].as_array().unwrap().len(), 2);
}

#[test]
fn post_is_not_retried_on_503() {
    let e = edge();
    let mut state = EdgeState::new(e.config());
    let req = Request::post("http://x.test/api/echo").body(()).unwrap();
    let Plan::Forward(mut f) = e.plan_upstream(&req, &us_viewer(), &mut state, 1_000, 1) else { panic!() };
    e.report(&mut f, Outcome::Status(503), true, 5, &mut state, 1_005);
    assert!(matches!(f.step, Step::GiveUp { stale_ok: false, .. }), "{:?}", f.step);
}

#[test]
fn every_region_down_gives_503_with_retry_after() {
    let e = edge();
    let mut state = EdgeState::new(e.config());
    let req = Request::get("http://x.test/api/time").body(()).unwrap();
    let Plan::Forward(mut f) = e.plan_upstream(&req, &us_viewer(), &mut state, 1_000, 1) else { panic!() };
    e.report(&mut f, Outcome::ConnectError, false, 1, &mut state, 1_001);
    e.report(&mut f, Outcome::Timeout, false, 1, &mut state, 1_002);
    let Step::GiveUp { response, stale_ok } = &f.step else { panic!("{:?}", f.step) };
    assert!(*stale_ok);
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
}

#[test]
fn untrusted_geo_header_is_ignored_and_trusted_one_routes() {
    // CFG does not trust the test header: a DE header changes nothing.
    let (_, request) = forward(
        Request::get("http://x.test/api/time").header("x-offload-geo", "country=DE").body(()).unwrap(),
        &us_viewer(),
    );
    assert_eq!(request.uri().host(), Some("127.0.0.1"));
    let trusted = CFG.replace("[routing.origin_auth]", "[routing]\ntrust_test_header = true\n\n[routing.origin_auth]");
    let e = edge_of(Config::from_toml(&trusted).unwrap());
    let req = Request::get("http://x.test/api/time").header("x-offload-geo", "country=DE").body(()).unwrap();
    let Plan::Forward(f) = plan(&e, req, &us_viewer()) else { panic!() };
    let Step::Send { request, .. } = &f.step else { panic!() };
    assert_eq!(request.uri().host(), Some("eu.example.com"));
    let bad = Request::get("http://x.test/api/time").header("x-offload-geo", "country=??").body(()).unwrap();
    let Plan::Respond(r) = plan(&e, bad, &us_viewer()) else { panic!() };
    assert_eq!(r.status(), 400);
}

#[test]
fn signed_bucket_requests_carry_sigv4_headers() {
    let signed = CFG.replace(
        "index = \"index.html\"",
        "index = \"index.html\"\nsigned = true\naccess_key_id = { binding = \"S3_ID\" }\nsecret_access_key = { binding = \"S3_SECRET\" }",
    );
    let e = edge_of(Config::from_toml(&signed).unwrap());
    // Planning (all a cache hit does) signs nothing; `begin` signs.
    let req = e.canonicalize(&Request::get("http://x.test/a%20b.txt").body(()).unwrap()).unwrap();
    let Plan::Forward(unbegun) = e.plan(&req, &Viewer::default(), 1_700_000_000_000) else { panic!() };
    assert!(matches!(unbegun.step, Step::Begin), "{:?}", unbegun.step);
    let Plan::Forward(f) = plan(&e, Request::get("http://x.test/a%20b.txt").body(()).unwrap(), &Viewer::default()) else {
        panic!()
    };
    let Step::Send { request, .. } = &f.step else { panic!() };
    let h = request.headers();
    let auth = h["authorization"].to_str().unwrap();
    assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/us-east-1/s3/aws4_request"), "{auth}");
    assert!(auth.contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"), "{auth}");
    assert_eq!(h["x-amz-content-sha256"], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert!(!format!("{e:?}").contains("wJalrXUtnFEMI"), "secret in Debug");
}

const TRUST_CFG: &str = r#"
[regions.a]
location = { lat = 38.9, lon = -77.4 }
origins = [{ url = "http://10.0.0.1:8080" }]

[regions.b]
location = { lat = 53.3, lon = -6.3 }
origins = [{ url = "http://10.0.0.2:8080" }]

[routing.retry_budget]
ratio = 0.2
min_per_window = 0

[links]
current = "k1"
keys = [{ id = "k1", secret = { binding = "LINK" } }]

[buckets.www]
endpoint = "http://127.0.0.1:18703"
bucket = "www"
region = "us-east-1"
index = "index.html"

[[routes]]
path = "/private/*"
bucket = "www"
signed_links = true

[[routes]]
path = "/api/*"
pool = ["a", "b"]
cache = { default_ttl = 60 }
cache_key = { headers = ["x-tenant"] }

[[routes]]
path = "/app/*"
pool = ["a"]

[[routes]]
path = "/custom/*"
pool = ["a"]
cache = { }
forward_headers = ["accept", "x-app-version"]

[[routes]]
path = "/*"
bucket = "www"
"#;

fn trust_edge() -> Edge {
    edge_of(Config::from_toml(TRUST_CFG).unwrap())
}

/// Every spelling of a protected path is either refused as malformed (400)
/// or canonicalizes to the protected path and meets the signed-link gate
/// (403): none reaches the bucket without a token.
#[test]
fn no_spelling_of_a_protected_path_passes_the_gate() {
    let e = trust_edge();
    for (target, status) in [
        ("/private/report.txt", 403),
        ("/%70rivate/report.txt", 403),
        ("/PRIVATE/report.txt", 0),
        ("/priv%61te/report%2etxt", 403),
        ("/private%2Freport.txt", 400),
        ("/private%2freport.txt", 400),
        ("/private%5Creport.txt", 400),
        ("/private\\report.txt", 400),
        ("//private/report.txt", 400),
        ("/./private/report.txt", 400),
        ("/public/../private/report.txt", 400),
        ("/public/%2e%2e/private/report.txt", 400),
        ("/public/..%2Fprivate/report.txt", 400),
        ("/%C0%AE%C0%AE/private/report.txt", 400),
        ("/private/report.txt%00", 400),
        ("/private/./report.txt", 400),
    ] {
        let req = Request::get(format!("http://x.test{target}")).body(()).unwrap();
        match plan(&e, req, &Viewer::default()) {
            Plan::Respond(r) => assert_eq!(r.status().as_u16(), status, "{target}"),
            Plan::Forward(f) => {
                // Only a different object (S3 keys are case-sensitive) may pass.
                assert_eq!(status, 0, "{target} was forwarded");
                let Step::Send { request, .. } = &f.step else { panic!() };
                assert_eq!(request.uri().path(), "/www/PRIVATE/report.txt", "{target}");
            }
        }
    }
}

/// The upstream request, the bucket key and X-Forwarded-Host read the one
/// canonical form.
#[test]
fn upstream_reads_the_canonical_request() {
    let e = trust_edge();
    let Plan::Forward(f) = plan(&e, Request::get("http://X.Test:80/api/%69tems/caf%c3%a9?q=%7e").body(()).unwrap(), &Viewer::default())
    else {
        panic!()
    };
    let Step::Send { request, .. } = &f.step else { panic!() };
    assert_eq!(request.uri(), "http://10.0.0.1:8080/api/items/caf%C3%A9?q=~");
    assert_eq!(request.headers()["x-forwarded-host"], "x.test");
    assert_eq!(f.viewer_request().request().uri(), "http://x.test/api/items/caf%C3%A9?q=~");
    let Plan::Forward(f) = plan(&e, Request::get("http://x.test/caf%C3%A9%20menu%2A.txt").body(()).unwrap(), &Viewer::default())
    else {
        panic!()
    };
    let Step::Send { request, .. } = &f.step else { panic!() };
    assert_eq!(request.uri().path(), "/www/caf%C3%A9%20menu%2A.txt");
}

#[test]
fn web_origins_get_an_allowlist_of_viewer_headers() {
    let e = trust_edge();
    let headers = [
        ("x-forwarded-scheme", "http"),
        ("x-forwarded-port", "81"),
        ("x-original-host", "evil.example"),
        ("forwarded", "for=1.2.3.4;host=evil"),
        ("true-client-ip", "1.2.3.4"),
        ("cf-connecting-ip", "1.2.3.4"),
        ("accept", "text/html"),
        ("user-agent", "curl"),
        ("cookie", "s=1"),
        ("x-tenant", "t1"),
        ("x-app-version", "7"),
    ];
    let send = |path: &str, method: &str| {
        let mut b = Request::builder().method(method).uri(format!("http://x.test{path}"));
        for (k, v) in headers {
            b = b.header(k, v);
        }
        let Plan::Forward(f) = plan(&e, b.body(()).unwrap(), &Viewer::default()) else { panic!() };
        let Step::Send { request, .. } = f.step else { panic!() };
        let mut names: Vec<String> = request
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .filter(|k| !matches!(k.as_str(), "host" | "via" | "x-forwarded-proto" | "x-forwarded-host"))
            .collect();
        names.sort();
        names
    };
    // GET on a cached route: credentials and the key's headers only.
    assert_eq!(send("/api/x", "GET"), ["cookie", "x-tenant"]);
    // Other methods and uncached routes: the documented default.
    assert_eq!(send("/api/x", "POST"), ["accept", "cookie", "user-agent", "x-tenant"]);
    assert_eq!(send("/app/x", "GET"), ["accept", "cookie", "user-agent"]);
    // A route's own list.
    assert_eq!(send("/custom/x", "GET"), ["accept", "x-app-version"]);
    let e = Config::from_toml(&TRUST_CFG.replace("\"x-app-version\"", "\"x-forwarded-scheme\"")).unwrap_err().to_string();
    assert!(e.contains("routes[3].forward_headers[1]") && e.contains("set by the edge alone"), "{e}");
}

/// Planning (what every cache hit does) takes no retry-budget token and
/// records no request: only `begin` does, when the request goes upstream.
#[test]
fn hits_cost_routing_nothing() {
    let e = trust_edge();
    let mut state = EdgeState::new(e.config());
    let req = e.canonicalize(&Request::get("http://x.test/app/x").body(()).unwrap()).unwrap();
    for _ in 0..100 {
        let Plan::Forward(f) = e.plan(&req, &Viewer::default(), 1_000) else { panic!() };
        assert!(matches!(f.step, Step::Begin), "no origin chosen and no request built before begin");
    }
    // One real request: a 503 may not be retried (0.2 × 1 request < 1
    // token). Had the 100 plans counted, 20 retries would be allowed.
    let req = e.canonicalize(&Request::get("http://x.test/api/x").body(()).unwrap()).unwrap();
    let Plan::Forward(mut f) = e.plan(&req, &Viewer::default(), 1_000) else { panic!() };
    e.begin(&mut f, &mut state, 1_000, 1);
    assert!(matches!(f.step, Step::Send { .. }));
    e.report(&mut f, Outcome::Status(503), false, 5, &mut state, 1_005);
    assert!(!matches!(f.step, Step::Send { .. }), "retry without budget: {:?}", f.step);
    assert_eq!(f.route_log().unwrap().attempts.len(), 1);
}

#[test]
fn patterns_must_be_canonical() {
    for bad in ["/%70rivate/*", "/a%2fb", "/a//b/*", "/a/../b", "/a%7e"] {
        let e = Config::from_toml(&format!(
            "[buckets.b]\nendpoint = \"http://127.0.0.1:1\"\nbucket = \"bbb\"\nregion = \"r\"\n[[routes]]\npath = \"{bad}\"\nbucket = \"b\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not in canonical form"), "{bad}: {e}");
    }
}

/// Credentials that never reach the upstream cannot personalize its
/// answer, so they do not turn implicit freshness off there.
#[test]
fn credentials_matter_only_where_they_reach_the_upstream() {
    let cfg = Config::from_toml(TRUST_CFG).unwrap();
    let rules = |path: &str| cfg.route_for(path).unwrap().cache().map(|c| (c.rules.keyed_cookie, c.rules.keyed_authorization));
    assert_eq!(rules("/api/x"), Some((false, false)), "forwarded, not keyed");
    assert_eq!(rules("/custom/x"), Some((true, true)), "not in forward_headers");
    let bucket = Config::from_toml(&TRUST_CFG.replace("path = \"/*\"\nbucket = \"www\"", "path = \"/*\"\nbucket = \"www\"\ncache = { default_ttl = 60 }")).unwrap();
    let c = bucket.route_for("/index.html").unwrap().cache().unwrap();
    assert!(c.rules.keyed_cookie && c.rules.keyed_authorization, "buckets never get credentials");
}
