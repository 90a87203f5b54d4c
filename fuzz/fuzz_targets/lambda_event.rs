//! Lambda@Edge event conversion and the three handlers on any JSON.
//!
//! Input: JSON. A CloudFront event (`{"Records":[{"cf":...}]}`) is used as
//! is; any other value is wrapped as the event's request and response.
//! Invariants: never panics; header maps survive the CloudFront ⇄ `http`
//! round trip; every handler answers a JSON object that is a request (with
//! `uri`) or a generated response (with a 3-digit `status`); headers that
//! CloudFront restricts for the trigger come back exactly as they came
//! (absent if absent); no output carries a secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offload_fuzz::{config, secrets, SECRETS};
use offload_lambda_edge::event::{cf_record, headers_from_cf, headers_to_cf, request_from_cf};
use offload_lambda_edge::restricted::{is_restricted, Trigger};
use offload_lambda_edge::Lambda;
use serde_json::{json, Value};

fn check_restricted(trigger: Trigger, out: &Value, original: Option<&Value>) {
    let out_h = out.get("headers").and_then(Value::as_object);
    let orig_h = original.and_then(|o| o.get("headers")).and_then(Value::as_object);
    for (name, list) in out_h.into_iter().flatten() {
        if is_restricted(trigger, &name.to_ascii_lowercase()) {
            assert_eq!(orig_h.and_then(|o| o.get(name)), Some(list), "{trigger:?} changed restricted {name}");
        }
    }
    for (name, list) in orig_h.into_iter().flatten() {
        if is_restricted(trigger, &name.to_ascii_lowercase()) && out.get("status").is_none() {
            assert_eq!(out_h.and_then(|o| o.get(name)), Some(list), "{trigger:?} dropped restricted {name}");
        }
    }
}

fn check_output(trigger: Trigger, out: &Value, original: Option<&Value>, input: &[u8]) {
    // A secret the event itself carried may come back with it.
    let input = String::from_utf8_lossy(input);
    let shown = out.to_string();
    for s in SECRETS {
        assert!(input.contains(s) || !shown.contains(s), "lambda output leaks a secret");
    }
    if original.is_some_and(|o| !o.is_object() && o == out) {
        return; // Not a request/response object: passed through untouched.
    }
    let obj = out.as_object().expect("handlers answer an object");
    if let Some(status) = obj.get("status") {
        if original.is_some_and(|o| o.get("status") == Some(status)) {
            // A passed-through origin response.
            check_restricted(trigger, out, original);
            return;
        }
        let s = status.as_str().expect("status is a string");
        let n: u16 = s.parse().expect("status is a number");
        assert!((100..=599).contains(&n), "status {s}");
        for name in obj.get("headers").and_then(Value::as_object).into_iter().flatten().map(|(k, _)| k) {
            assert!(!is_restricted(trigger, name), "generated response sets restricted {name}");
        }
    } else {
        check_restricted(trigger, out, original);
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else { return };
    let event = if cf_record(&value).is_some() {
        value
    } else {
        json!({ "Records": [{ "cf": {
            "config": { "distributionDomainName": "d111111abcdef8.cloudfront.net", "eventType": "viewer-request" },
            "request": value.clone(),
            "response": value,
        } }] })
    };
    let cf = cf_record(&event).expect("a cf record");
    let req_v = cf.get("request");

    if let Some(req_v) = req_v {
        let map = headers_from_cf(req_v.get("headers"));
        let back = headers_from_cf(Some(&Value::Object(headers_to_cf(&map, req_v.get("headers")))));
        assert_eq!(back, map, "header map round trip");
        if let Some(req) = request_from_cf(req_v, Some("www.example.com"), true) {
            assert!(req.uri().path().starts_with('/') || req.uri().path().is_empty() || req.uri().path() == "*");
            assert_eq!(req.headers(), &map);
        }
    }

    let mut lambda = Lambda::new(config(), &secrets()).expect("the fuzz config loads");
    let now = 1_700_000_000_000;
    check_output(Trigger::ViewerRequest, &lambda.viewer_request(&event, now), req_v, data);
    check_output(Trigger::OriginRequest, &lambda.origin_request(&event, now, 7), req_v, data);
    check_output(Trigger::OriginResponse, &lambda.origin_response(&event, now), cf.get("response"), data);
});
