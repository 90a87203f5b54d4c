//! The shared decision table (tests/shared-cases/decisions.json), natively:
//! each case through the core as an executor runs it (tests/common: the
//! purge and presign endpoints, `Edge::canonicalize` → `Edge::plan` →
//! `EdgeCache` → `Edge::begin`; each case on a fresh edge with an empty
//! cache), with the repository's offload.toml and
//! local test secrets, against a simulated upstream (the bucket serves
//! `www/`, the origin answers like origin-shim). The same table runs on
//! the Workers build in workerd, through the Lambda@Edge handlers and
//! through the generated CloudFront Function; its "about" says which
//! fields each target checks.
//!
//! Checked here: status, upstream, forwarded, origin_auth (the header
//! verified with the core's `verify_origin_request` and the test secret),
//! bucket_sigv4 (a SigV4 `Authorization` with the bucket's access key and
//! an `x-amz-content-sha256`), body / body_file, error, region_hint
//! (`route::select::region_for_country`).
//!
//!   cargo test -p offload-core --test decisions

#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Suite, NOW_MS};
use offload_core::route::auth::{verify_origin_request, Keyring, SigningKey};
use offload_core::route::geo::Country;
use offload_core::route::select::region_for_country;
use offload_core::secret::Secret;
use serde_json::Value;

const TARGET: &str = "native";

fn check(suite: &mut Suite, case: &Value) -> Result<(), String> {
    let (req, want) = (&case["request"], &case["expect"]);
    let got = suite.run(req, None);
    let mut diffs = Vec::new();
    let mut differ = |what: String| diffs.push(what);

    if Some(u64::from(got.status)) != want["status"].as_u64() {
        differ(format!("status {} want {} ({:?})", got.status, want["status"], got.error));
    }
    if got.upstream.as_deref() != want["upstream"].as_str() {
        differ(format!("upstream {:?} want {}", got.upstream, want["upstream"]));
    }
    if got.forwarded.as_deref() != want["forwarded"].as_str() {
        differ(format!("forwarded {:?} want {}", got.forwarded, want["forwarded"]));
    }
    if let Some(e) = want["error"].as_str() {
        if !got.error.as_deref().unwrap_or("").contains(e) {
            differ(format!("error {:?} does not contain {e:?}", got.error));
        }
    }

    // Origin auth: the header the origin verifies, with the test secret.
    let auth = suite.config.routing().origin_auth().expect("offload.toml has [routing.origin_auth]");
    let sent_auth = got.sent_header(auth.header().as_str());
    if want["origin_auth"].as_bool() == Some(true) {
        let secret = Secret::new(common::test_secret("routing.origin_auth.secret").into_bytes());
        let keys = Keyring::new([SigningKey::new(auth.key_id(), secret)]);
        let host = got.sent.as_ref().and_then(|(uri, _)| uri.parse::<http::Uri>().ok()).and_then(|u| u.authority().map(|a| a.to_string()));
        let verified = verify_origin_request(
            &keys,
            sent_auth.as_deref(),
            got.method.as_deref().unwrap_or(""),
            got.forwarded.as_deref().unwrap_or(""),
            host.as_deref().unwrap_or(""),
            NOW_MS / 1000,
            auth.validity_secs(),
        );
        if let Err(e) = verified {
            differ(format!("origin auth {sent_auth:?}: {e}"));
        }
    } else if sent_auth.is_some() {
        differ(format!("origin auth {sent_auth:?} on a request that should carry none"));
    }

    // SigV4 for the bucket: the bucket's access key, a signed payload hash.
    let authorization = got.sent_header("authorization");
    if want["bucket_sigv4"].as_bool() == Some(true) {
        let key_id = common::test_secret(&format!("buckets.{}.access_key_id", want["upstream"].as_str().unwrap_or("").trim_start_matches("bucket:")));
        let ok = authorization.as_deref().is_some_and(|a| a.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key_id}/")))
            && got.sent_header("x-amz-content-sha256").is_some();
        if !ok {
            differ(format!("no SigV4 authorization with the bucket's key: {authorization:?}"));
        }
    } else if authorization.is_some() {
        differ(format!("authorization {authorization:?} on a request that should carry none"));
    }

    // The body (the simulated upstream's, or the edge's).
    if let Some(file) = want["body_file"].as_str() {
        let key = file.strip_prefix("www/").expect("body_file under www/");
        let bytes = std::fs::read(common::site_source(key)).unwrap();
        if req["method"] == "HEAD" {
            // A HEAD answer has the file's headers and no body (the
            // machine's null-body rule, as on every platform).
            if !got.body.is_empty() {
                differ(format!("HEAD: {} body bytes, want none", got.body.len()));
            }
        } else if got.body != bytes {
            differ(format!("body is not {file}"));
        }
    }
    if let Some(body) = want["body"].as_str() {
        if got.body != body.as_bytes() {
            differ(format!("body {:?} want {body:?}", String::from_utf8_lossy(&got.body)));
        }
    }

    // The region hint for the viewer's country (the CloudFront Function's).
    if let Some(hint) = want.get("region_hint") {
        let country = Country::parse(req["viewer"]["country"].as_str().unwrap_or("")).ok_or("no viewer.country")?;
        let got_hint = region_for_country(suite.config.routing(), country).map(|r| r.name().to_owned());
        if got_hint.as_deref() != hint.as_str() {
            differ(format!("region hint {got_hint:?} want {hint}"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

#[test]
fn shared_decision_table_natively() {
    let table = common::load_table("decisions.json");
    let cases = table["cases"].as_array().unwrap();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let (mut checked, mut not_applicable, mut failures) = (0, Vec::new(), Vec::new());
    for case in cases {
        let name = case["name"].as_str().unwrap();
        // A target name the runners do not know would skip nothing and say so nowhere.
        for (target, reason) in case["not_applicable"].as_object().into_iter().flatten() {
            assert!(["native", "workers", "lambda", "cloudfront"].contains(&target.as_str()), "{name}: unknown target {target}");
            assert!(reason.as_str().is_some_and(|r| r.len() > 20), "{name}: not_applicable.{target} needs a reason");
        }
        if let Some(reason) = case["not_applicable"][TARGET].as_str() {
            not_applicable.push(format!("{name}: {reason}"));
            continue;
        }
        checked += 1;
        // Every case from a known state: a fresh edge, an empty cache.
        if let Err(e) = check(&mut Suite::new(), case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    common::summary(&format!(
        "shared decisions ({TARGET}): {} cases, {checked} checked, {} not applicable, {} failed",
        cases.len(),
        not_applicable.len(),
        failures.len()
    ));
    for n in &not_applicable {
        common::summary(&format!("  not applicable: {n}"));
    }
    assert!(failures.is_empty(), "{} of {checked} cases failed:\n  {}", failures.len(), failures.join("\n  "));
}
