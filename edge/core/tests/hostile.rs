//! The hostile-input suite (tests/shared-cases/hostile.json), natively:
//! each case through `Edge::canonicalize` → `Edge::plan` → the L1 cache
//! (`EdgeCache`) → `Edge::begin`, with the repository's offload.toml, the
//! way an executor runs them. The upstream is simulated in-process (the
//! bucket serves the files of `www/`, the origin answers like origin-shim:
//! `/api/headers` no-store, `/healthz`, 404 otherwise), so the status of a
//! forwarded request is the simulated upstream's; the same table runs
//! against the real upstreams in the Workers end-to-end run.
//!
//! Besides each case's expectation: no response to a request without a
//! valid token carries the private file's bytes, and for `clean` cases the
//! request sent upstream equals the clean request's, byte for byte.

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Suite;
use serde_json::Value;

/// The case's expectation with the `platforms.native` overrides applied.
fn expectation(case: &Value) -> Value {
    let mut want = case["expect"].clone();
    if let (Some(w), Some(o)) = (want.as_object_mut(), case["platforms"]["native"].as_object()) {
        for (k, v) in o {
            w.insert(k.clone(), v.clone());
        }
    }
    want
}

fn check(suite: &mut Suite, case: &Value) -> Result<(), String> {
    let want = expectation(case);
    let req = &case["request"];
    let got = suite.run(req, None);
    let target = req["target"].as_str().unwrap_or("");
    if !target.contains("{{link:") && got.status < 300 && !suite.private_file.is_empty() {
        let leaked = got.body.windows(suite.private_file.len()).any(|w| w == suite.private_file.as_slice());
        if leaked {
            return Err("THE PRIVATE FILE WAS SERVED WITHOUT A VALID TOKEN".into());
        }
    }
    let mut diffs = Vec::new();
    if Some(u64::from(got.status)) != want["status"].as_u64() {
        diffs.push(format!("status {} want {} ({:?})", got.status, want["status"], got.error));
    }
    let up = got.upstream.as_deref().filter(|u| *u != "cache");
    if got.upstream.as_deref() != Some("cache") && up != want["upstream"].as_str() {
        diffs.push(format!("upstream {up:?} want {}", want["upstream"]));
    }
    if got.upstream.as_deref() != Some("cache") && got.forwarded.as_deref() != want["forwarded"].as_str() {
        diffs.push(format!("forwarded {:?} want {}", got.forwarded, want["forwarded"]));
    }
    if let Some(e) = want["error"].as_str() {
        if !got.error.as_deref().unwrap_or("").contains(e) {
            diffs.push(format!("error {:?} does not contain {e:?}", got.error));
        }
    }
    if let Some(clean) = case.get("clean") {
        let c = suite.run(clean, None);
        if c.sent.is_none() || c.sent != got.sent {
            diffs.push(format!("the upstream request differs from the clean one's:\n      attack {:?}\n      clean  {:?}", got.sent, c.sent));
        }
    }
    if let Some(cache) = case.get("cache") {
        if let Some(detail) = cache["detail"].as_str() {
            if !got.cache_status.contains(&format!("detail={detail}")) {
                diffs.push(format!("cache-status {:?} has no detail={detail}", got.cache_status));
            }
        }
        // The next viewer, without the case's headers.
        let mut next = req.clone();
        if let Some(h) = next.get_mut("headers") {
            *h = Value::Array(vec![]);
        }
        let n = suite.run(&next, None);
        let want_next = cache["next"].as_str().unwrap_or("");
        let ok = match want_next {
            "miss" => n.cache_status.contains("fwd=uri-miss"),
            "hit" => n.cache_status.contains("hit"),
            _ => false,
        };
        if !ok {
            diffs.push(format!("the next viewer got {:?}, want a {want_next}", n.cache_status));
        }
        // A stored answer shared with the next viewer cannot be personal:
        // the credentials never reached the upstream.
        // (A signed bucket request has the edge's own Authorization.)
        let viewer_values: Vec<&str> = req["headers"].as_array().into_iter().flatten().filter_map(|p| p[1].as_str()).collect();
        let credentials = got.sent.as_ref().is_some_and(|(_, h)| {
            h.iter().any(|(n, v)| (n == "cookie" || n == "authorization") && viewer_values.iter().any(|x| x.as_bytes() == v.as_slice()))
        });
        if want_next == "hit" && credentials {
            diffs.push("credentials reached the upstream, and the answer was shared".into());
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

#[test]
fn hostile_suite_natively() {
    let table = common::load_table("hostile.json");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut suite = Suite::new();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().unwrap();
        if let Err(e) = check(&mut suite, case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    common::summary(&format!("hostile: {} cases, {} held (native)", cases.len(), cases.len() - failures.len()));
    assert!(failures.is_empty(), "{} of {} cases failed:\n  {}", failures.len(), cases.len(), failures.join("\n  "));
}
