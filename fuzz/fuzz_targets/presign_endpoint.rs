//! The presign endpoint (`Edge::presign_endpoint`) with any body and any
//! `Authorization` header, or with a valid app token for a scope chosen by
//! the input.
//!
//! Input: `mode \0 authorization-or-scope \0 body \0 method`.
//! Invariants: never panics; every answer is JSON with a known status; an
//! error names its field; no answer carries a secret; a 200 only follows a
//! token minted with the link key whose scope covers the presigned key and
//! whose URL is for that bucket and key.
#![no_main]

use std::sync::OnceLock;

use http::header::AUTHORIZATION;
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use offload_core::pipeline::presign_scope;
use offload_core::sign::link::{issue, Claims, LinkKey, Scope};
use offload_core::{Edge, Viewer};
use offload_fuzz::{assert_no_secret, edge, Fields, LINK_KEY_ID, LINK_SECRET};

const NOW: u64 = 1_700_000_000;

fn shared() -> &'static Edge {
    static EDGE: OnceLock<Edge> = OnceLock::new();
    EDGE.get_or_init(edge)
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let mode = f.bytes(0).first().copied().unwrap_or(0);
    let body = f.bytes(2);
    let method = if mode & 2 == 0 { Method::POST } else { Method::from_bytes(f.bytes(3)).unwrap_or(Method::PUT) };
    let mut minted_scope = None;
    let authorization: Vec<u8> = if mode & 1 == 0 {
        f.bytes(1).to_vec()
    } else {
        // A genuine app token for the scope in field 1.
        let Ok(scope) = Scope::parse(&f.text(1)) else { return };
        let key = LinkKey::new(LINK_KEY_ID, LINK_SECRET.as_bytes().to_vec()).expect("key");
        let claims = Claims { expires_at: NOW + 60, scope: scope.clone(), client_ip: None };
        let Ok(token) = issue(&key, &claims) else { return };
        minted_scope = Some(scope);
        format!("Bearer {token}").into_bytes()
    };
    let mut builder = Request::builder().method(method.clone()).uri("https://example.com/_offload/presign");
    if let Ok(v) = http::HeaderValue::from_bytes(&authorization) {
        builder = builder.header(AUTHORIZATION, v);
    }
    let Ok(req) = builder.body(()) else { return };

    let resp = shared().presign_endpoint(&req, body, &Viewer::default(), NOW);
    let status = resp.status().as_u16();
    assert!([200, 400, 401, 403, 404, 405, 413, 500].contains(&status), "status {status}");
    assert_no_secret("presign answer", resp.body());
    let json: serde_json::Value = serde_json::from_slice(resp.body()).expect("answer is JSON");
    if status != 200 {
        assert!(json.get("error").and_then(|e| e.as_str()).is_some_and(|e| !e.is_empty()));
        assert!(json.get("field").is_some());
        return;
    }
    assert_eq!(method, Method::POST);
    let scope = minted_scope.expect("200 without a minted token");
    let req_body: serde_json::Value = serde_json::from_slice(body).expect("200 for a non-JSON body");
    let bucket = req_body["bucket"].as_str().expect("bucket");
    let key = req_body["key"].as_str().expect("key");
    assert_eq!(bucket, "uploads");
    let encoded: String = key
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let scope_path = presign_scope(bucket, &encoded);
    assert!(scope.allows(&scope_path), "token scope {:?} does not cover {scope_path:?}", scope.as_str());
    let url = json["url"].as_str().expect("url");
    assert!(url.starts_with("http://127.0.0.1:18703/uploads/"), "url {url}");
    assert!(url.contains("X-Amz-Signature="));
});
