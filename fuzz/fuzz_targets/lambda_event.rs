//! Lambda@Edge event conversion and the three handlers on any JSON.
//!
//! Input: JSON. A CloudFront event (`{"Records":[{"cf":...}]}`) is used as
//! is; any other value is wrapped as the event's request and response.
//! What does not parse as an event (`offload_core::cloudfront::Event`) is
//! answered with a generated 500 by the executor's entry points, before
//! any handler runs, so it stops here.
//! Invariants: never panics; header maps survive the CloudFront ⇄ `http`
//! round trip; every handler answers a request or a generated response
//! (with a status in 100..=599); headers that CloudFront restricts for the
//! trigger come back exactly as they came (absent if absent), and a
//! generated response sets none; no output carries a secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offload_core::cloudfront::event::Headers;
use offload_core::cloudfront::restricted::{is_restricted, Trigger};
use offload_core::cloudfront::{Answer, Event, Response};
use offload_fuzz::{config, secrets, SECRETS};
use offload_lambda_edge_handlers::Lambda;
use serde_json::{json, Value};

fn check_restricted(trigger: Trigger, out: &Headers, original: &Headers) {
    for (name, list) in &out.0 {
        if is_restricted(trigger, &name.to_ascii_lowercase()) {
            assert_eq!(original.0.get(name), Some(list), "{trigger:?} changed restricted {name}");
        }
    }
    for (name, list) in &original.0 {
        if is_restricted(trigger, &name.to_ascii_lowercase()) {
            assert_eq!(out.0.get(name), Some(list), "{trigger:?} dropped restricted {name}");
        }
    }
}

fn check_generated(trigger: Trigger, resp: &Response) {
    let n: u16 = resp.status.parse().expect("status is a number");
    assert!((100..=599).contains(&n), "status {}", resp.status);
    for name in resp.headers.0.keys() {
        assert!(!is_restricted(trigger, name), "generated response sets restricted {name}");
    }
}

fn check_secrets(shown: Result<String, serde_json::Error>, input: &[u8]) {
    // A secret the event itself carried may come back with it.
    let input = String::from_utf8_lossy(input);
    let shown = shown.expect("outputs serialize");
    for s in SECRETS {
        assert!(input.contains(s) || !shown.contains(s), "lambda output leaks a secret");
    }
}

fn check_answer(trigger: Trigger, out: &Answer, original: &Headers, input: &[u8]) {
    check_secrets(serde_json::to_string(out), input);
    match out {
        Answer::Forward(req) => check_restricted(trigger, &req.headers, original),
        Answer::Respond(resp) => check_generated(trigger, resp),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let value = if value.get("Records").is_some() {
        value
    } else {
        json!({ "Records": [{ "cf": {
            "config": { "distributionDomainName": "d111111abcdef8.cloudfront.net", "eventType": "viewer-request" },
            "request": value.clone(),
            "response": value,
        } }] })
    };
    let Ok(event) = serde_json::from_value::<Event>(value) else { return };
    let Some(cf) = event.cf() else { return };

    if let Some(req) = &cf.request {
        let map = req.headers.to_http();
        assert_eq!(Headers::from_http(&map, Some(&req.headers)).to_http(), map, "header map round trip");
        if let Some(r) = req.to_http(Some("www.example.com"), true) {
            assert!(r.uri().path().starts_with('/') || r.uri().path().is_empty() || r.uri().path() == "*");
            assert_eq!(r.headers(), &map);
        }
    }

    let mut lambda = Lambda::new(config(), &secrets()).expect("the fuzz config loads");
    let now = 1_700_000_000_000;
    let none = Headers::default();
    let req_headers = cf.request.as_ref().map_or(&none, |r| &r.headers);
    check_answer(Trigger::ViewerRequest, &lambda.viewer_request(&event, now), req_headers, data);
    check_answer(Trigger::OriginRequest, &lambda.origin_request(&event, now, 7), req_headers, data);
    let out = lambda.origin_response(&event, now);
    check_secrets(serde_json::to_string(&out), data);
    match &cf.response {
        // Passed through or rewritten: the restricted fields are the origin's.
        Some(resp) if resp.status == out.status => check_restricted(Trigger::OriginResponse, &out.headers, &resp.headers),
        _ => check_generated(Trigger::OriginResponse, &out),
    }
});
