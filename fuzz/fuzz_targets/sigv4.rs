//! SigV4 canonicalization (`sign::sigv4::canonical_request` and `sign`)
//! on any method, URL, headers and payload.
//!
//! Input: `flags \0 method \0 url \0 name: value ...`.
//! Invariants: never panics; the canonical path starts with `/` and holds
//! only unreserved characters, `/` and `%`-escapes (upper-case hex); the
//! canonical query is `k=v` pairs, fully encoded and sorted; canonical
//! headers are lower-case, sorted, unique, trimmed, and exactly the signed
//! headers (with `host`); in S3 mode the canonical path and query are a
//! fixed point (signing the canonical URL again gives the same request);
//! signing is deterministic and agrees with the canonical request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use offload_core::sign::sigv4::{
    canonical_request, sign, AmzDate, CanonicalRequest, Credentials, PayloadHash, SignableRequest, SigningParams,
    SigningSettings,
};
use offload_fuzz::Fields;

fn escaped_ok(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |x: Option<&u8>| x.is_some_and(|x| x.is_ascii_digit() || (b'A'..=b'F').contains(x));
            if !(hex(b.get(i + 1)) && hex(b.get(i + 2))) {
                return false;
            }
            i += 3;
            continue;
        }
        if !(c.is_ascii_alphanumeric() || b"-._~".contains(&c) || extra.contains(&c)) {
            return false;
        }
        i += 1;
    }
    true
}

fn check(creq: &CanonicalRequest, s3: bool) {
    let path = creq.path();
    assert!(path.starts_with('/'), "path {path:?}");
    if s3 {
        // Single encoding signs the path as sent (already encoded): only
        // what may not appear raw in a URI path is escaped.
        assert!(path.bytes().all(|c| c.is_ascii_graphic() && !b"\"<>\\^`{|}".contains(&c)), "path {path:?}");
    } else {
        assert!(escaped_ok(path, b"/"), "path {path:?}");
    }
    let query = creq.query();
    if !query.is_empty() {
        let mut pairs = Vec::new();
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').expect("k=v");
            assert!(escaped_ok(k, b"") && escaped_ok(v, b""), "query pair {pair:?}");
            pairs.push((k, v));
        }
        assert!(pairs.windows(2).all(|w| w[0] <= w[1]), "query not sorted: {query:?}");
    }
    let names: Vec<&str> = creq.headers().iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "headers not sorted/unique: {names:?}");
    assert!(names.contains(&"host"));
    assert_eq!(creq.signed_headers(), names.join(";"));
    for (n, v) in creq.headers() {
        assert_eq!(n, &n.to_ascii_lowercase());
        assert!(!v.starts_with(' ') && !v.ends_with(' ') && !v.contains("  ") && !v.contains('\n'), "{n}: {v:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let flags = f.bytes(0).first().copied().unwrap_or(0);
    let method = f.text(1);
    let url = f.text(2);
    let lines: Vec<String> = f.rest(3).iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect();
    let headers: Vec<(&str, &str)> = lines.iter().filter_map(|l| l.split_once(':')).collect();
    let credentials = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", (flags & 1 != 0).then(|| "tok en".to_owned()));
    let s3 = flags & 2 != 0;
    let settings = match (s3, flags & 4 != 0) {
        (false, _) => SigningSettings::default(),
        (true, false) => SigningSettings::s3(),
        (true, true) => SigningSettings::s3_presigned(900),
    };
    let Ok(time) = AmzDate::from_unix_secs(1_700_000_000) else { return };
    let params = SigningParams { credentials: &credentials, region: "us-east-1", service: "s3", time, settings, signing_key: None };
    let body = f.bytes(4);
    let payload = if flags & 8 != 0 { PayloadHash::Body(body) } else { PayloadHash::UnsignedPayload };
    let req = SignableRequest { method: &method, url: &url, headers: &headers, payload };
    let Ok(creq) = canonical_request(&req, &params) else {
        assert!(sign(&req, &params).is_err(), "sign accepts what canonicalization refuses");
        return;
    };
    check(&creq, s3);
    let a = sign(&req, &params).expect("sign after canonical_request");
    let b = sign(&req, &params).expect("sign twice");
    assert_eq!(a.signature, b.signature, "signing is not deterministic");
    assert_eq!(a.canonical_request, creq, "sign hashed another canonical request");
    assert_eq!(a.signature.len(), 64);

    if s3 && flags & 4 == 0 {
        // The canonical form is a fixed point of S3 canonicalization.
        let Some(rest) = url.split_once("://").map(|(_, r)| r) else { return };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let again_url = if creq.query().is_empty() {
            format!("https://{}{}", &rest[..end], creq.path())
        } else {
            format!("https://{}{}?{}", &rest[..end], creq.path(), creq.query())
        };
        let again = SignableRequest { url: &again_url, ..req };
        let creq2 = canonical_request(&again, &params).expect("the canonical URL signs");
        assert_eq!(creq2.path(), creq.path(), "S3 path canonicalization is not idempotent");
        assert_eq!(creq2.query(), creq.query(), "query canonicalization is not idempotent");
    }
});
