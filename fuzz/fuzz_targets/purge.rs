//! The purge endpoint (`EdgeCache::purge`) with any body, token and method.
//!
//! Input: `mode \0 authorization \0 body \0 host`.
//! Invariants: never panics; a wrong or missing token is always 401 and
//! the body is never looked at; answers are JSON with a known status;
//! errors name their field; a 200 lists exactly the URLs asked for, each
//! normalized to a canonical key (re-purging the listed form names the
//! same keys); nothing in an answer is a secret.
#![no_main]

use http::header::{AUTHORIZATION, HOST};
use http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

use offload_core::Edge;
use offload_fuzz::{assert_no_secret, edge, Fields, PURGE_TOKEN};

fn shared() -> &'static Edge {
    static EDGE: OnceLock<Edge> = OnceLock::new();
    EDGE.get_or_init(edge)
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let mode = f.bytes(0).first().copied().unwrap_or(0);
    let edge = shared();
    let config = edge.config();
    let mut cache = edge.new_cache();
    let good_token = mode & 1 != 0;
    let authorization = if good_token { format!("Bearer {PURGE_TOKEN}").into_bytes() } else { f.bytes(1).to_vec() };
    let method = if mode & 2 == 0 { Method::POST } else { Method::GET };
    let mut builder = Request::builder().method(method.clone()).uri("/_offload/purge");
    if let Ok(v) = http::HeaderValue::from_bytes(&authorization) {
        builder = builder.header(AUTHORIZATION, v);
    }
    if mode & 4 == 0 {
        if let Ok(v) = http::HeaderValue::from_bytes(f.bytes(3)) {
            builder = builder.header(HOST, v);
        }
    }
    let Ok(req) = builder.body(()) else { return };
    // The purge endpoint takes the canonical request (no Host: not one).
    let Ok(req) = offload_core::proxy::canonical::CanonicalRequest::new(&req) else { return };
    let body = f.bytes(2);
    let result = cache.purge(config, &req, body, 1_700_000_000_000);
    let status = result.response.status().as_u16();
    assert_no_secret("purge answer", result.response.body());
    let json: serde_json::Value = serde_json::from_slice(result.response.body()).expect("answer is JSON");
    let authorized = authorization.get(..7).is_some_and(|s| s.eq_ignore_ascii_case(b"bearer "))
        && authorization[7..].trim_ascii() == PURGE_TOKEN.as_bytes();
    if !authorized {
        assert_eq!(status, 401, "unauthorized purge got {status}");
        return;
    }
    match status {
        405 => assert_ne!(method, Method::POST),
        // The field may be the empty name of an unknown member (`{"": 1}`).
        400 => assert!(json["field"].is_string() && json["error"].is_string()),
        200 => {
            assert_eq!(method, Method::POST);
            let asked: serde_json::Value = serde_json::from_slice(body).expect("200 for a non-JSON body");
            let asked_urls = asked.get("urls").and_then(|u| u.as_array()).map_or(0, Vec::len);
            let listed = json["urls"].as_array().expect("urls");
            assert_eq!(listed.len(), asked_urls);
            assert_eq!(json["purged"], 0, "purged entries from an empty cache");
            if !listed.is_empty() {
                // The listed (canonical) URLs purge the same keys again.
                let again = serde_json::json!({ "urls": listed, "soft": asked.get("soft") });
                let r2 = cache.purge(config, &req, again.to_string().as_bytes(), 1_700_000_000_001);
                assert_eq!(r2.response.status().as_u16(), 200, "canonical URLs refused");
                let j2: serde_json::Value = serde_json::from_slice(r2.response.body()).expect("JSON");
                assert_eq!(&j2["urls"], &json["urls"], "purge URLs are not canonical");
                assert_eq!(r2.l2_delete, result.l2_delete);
            }
        }
        other => panic!("purge status {other}"),
    }
});
