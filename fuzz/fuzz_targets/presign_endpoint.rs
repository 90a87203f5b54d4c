//! The presign endpoint (`Edge::presign_endpoint`) with any body and any
//! `Authorization` header, or with a genuine presign grant whose limits
//! the input chooses.
//!
//! Input: `mode \0 authorization-or-key-prefix \0 body \0 method`.
//! Invariants: never panics; every answer is JSON with a known status; an
//! error names its field; no answer carries a secret; a 200 only follows a
//! grant minted with the link key, for a request inside every limit of the
//! grant (bucket, key prefix, method, size, content type, lifetime), and
//! its URL is for that bucket.
#![no_main]

use std::sync::OnceLock;

use http::header::AUTHORIZATION;
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use offload_core::proxy::canonical::CanonicalRequest;
use offload_core::sign::link::{issue_grant, ContentTypePattern, GrantClaims, KeyScope, LinkKey, Methods};
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
    let mut grant = None;
    let authorization: Vec<u8> = if mode & 1 == 0 {
        f.bytes(1).to_vec()
    } else {
        let methods = match mode >> 2 & 3 {
            0 => Methods::READ,
            1 => Methods::PUT,
            _ => Methods::PRESIGNABLE,
        };
        let put = methods.allows("PUT");
        let claims = GrantClaims {
            expires_at: NOW + 60,
            client_ip: None,
            methods,
            bucket: "uploads".to_owned(),
            keys: if mode & 0x10 != 0 { KeyScope::Exact(f.text(1)) } else { KeyScope::Prefix(f.text(1)) },
            max_content_length: put.then_some(1 << 20),
            content_types: if put { vec![ContentTypePattern::parse("image/*").expect("pattern")] } else { Vec::new() },
            max_expires: 600,
        };
        let key = LinkKey::new(LINK_KEY_ID, LINK_SECRET.as_bytes().to_vec()).expect("key");
        let Ok(token) = issue_grant(&key, &claims) else { return };
        grant = Some(claims);
        format!("Bearer {token}").into_bytes()
    };
    let mut builder = Request::builder().method(method.clone()).uri("https://example.com/_offload/presign");
    if let Ok(v) = http::HeaderValue::from_bytes(&authorization) {
        builder = builder.header(AUTHORIZATION, v);
    }
    let Ok(req) = builder.body(()) else { return };
    let Ok(req) = CanonicalRequest::new(&req) else { return };

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
    let grant = grant.expect("200 without a minted grant");
    let asked: serde_json::Value = serde_json::from_slice(body).expect("200 for a non-JSON body");
    assert_eq!(asked["bucket"], "uploads");
    let key = asked["key"].as_str().expect("key");
    assert!(grant.keys.allows(key), "key {key:?} outside the grant");
    let m = asked["method"].as_str().expect("method").to_ascii_uppercase();
    assert!(grant.methods.allows(&m), "method {m} outside the grant");
    let expires = asked["expires"].as_u64().expect("expires");
    assert!(expires <= grant.max_expires);
    if m == "PUT" {
        let len = asked["content_length"].as_u64().expect("PUT needs a length");
        assert!(len <= grant.max_content_length.expect("PUT grant has a limit"));
        let ct = asked["content_type"].as_str().expect("PUT needs a type");
        assert!(grant.content_types.iter().any(|p| p.allows(ct)), "type {ct} outside the grant");
    }
    let url = json["url"].as_str().expect("url");
    assert!(url.starts_with("http://127.0.0.1:18703/uploads/"), "url {url}");
    assert!(url.contains("X-Amz-Signature="));
});
