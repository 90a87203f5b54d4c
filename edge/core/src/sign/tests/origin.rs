#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::sign::origin::{sign_origin_request, OriginPayload, OriginRequest};
use crate::sign::sigv4::{Credentials, UNSIGNED_PAYLOAD};

const NOW: u64 = 1_700_000_000;

fn sign(url: &str, payload: OriginPayload, creds: &Credentials) -> crate::sign::OriginSigned {
    sign_origin_request(
        &OriginRequest {
            method: "GET",
            url,
            headers: &[("If-None-Match", "\"abc\"")],
            payload,
        },
        creds,
        "eu-central-1",
        NOW,
        None,
    )
    .unwrap()
}

#[test]
fn adds_the_four_headers() {
    let creds = Credentials::new("AKID", "SECRET", Some("SESSIONTOKEN".into()));
    let out = sign(
        "https://b.s3.eu-central-1.amazonaws.com/k.txt",
        OriginPayload::Unsigned,
        &creds,
    );
    let names: Vec<&str> = out.headers.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        [
            "x-amz-date",
            "authorization",
            "x-amz-content-sha256",
            "x-amz-security-token"
        ]
    );
    assert_eq!(out.headers[0].1, "20231114T221320Z");
    assert_eq!(out.headers[2].1, UNSIGNED_PAYLOAD);
    assert!(out.headers[1].1.contains(
        "Credential=AKID/20231114/eu-central-1/s3/aws4_request, SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date;x-amz-security-token, Signature="
    ), "{}", out.headers[1].1);
    let dbg = format!("{out:?}");
    assert!(
        !dbg.contains("SESSIONTOKEN") && !dbg.contains("SECRET"),
        "{dbg}"
    );
    let empty = sign(
        "https://b.s3.eu-central-1.amazonaws.com/k.txt",
        OriginPayload::EmptyBody,
        &creds,
    );
    assert_eq!(empty.headers[2].1, crate::sign::sigv4::EMPTY_BODY_SHA256);
}

#[test]
fn path_and_query_are_canonicalized_so_sent_equals_signed() {
    let creds = Credentials::new("AKID", "SECRET", None);
    let a = sign(
        "https://b.example/dir/a b.txt?z=1&a=x+y",
        OriginPayload::Unsigned,
        &creds,
    );
    let b = sign(
        "https://b.example/dir/a%20b%2Etxt?a=x%20y&z=1",
        OriginPayload::Unsigned,
        &creds,
    );
    assert_eq!(a.url, "https://b.example/dir/a%20b.txt?a=x%20y&z=1");
    assert_eq!(a, b);
    let c = sign(
        "http://127.0.0.1:9000/bucket/%E6%97%A5+~",
        OriginPayload::Unsigned,
        &creds,
    );
    assert_eq!(c.url, "http://127.0.0.1:9000/bucket/%E6%97%A5%2B~");
    assert_eq!(
        sign("https://b.example", OriginPayload::Unsigned, &creds).url,
        "https://b.example/"
    );
}

#[test]
fn bad_input_is_an_error() {
    let creds = Credentials::new("AKID", "SECRET", None);
    for url in [
        "not a url",
        "https:///k",
        "https://h:bad/k",
        "https://h/k\n",
    ] {
        let r = sign_origin_request(
            &OriginRequest {
                method: "GET",
                url,
                headers: &[],
                payload: OriginPayload::Unsigned,
            },
            &creds,
            "us-east-1",
            NOW,
            None,
        );
        assert!(r.unwrap_err().is_url(), "{url}");
    }
    let r = sign_origin_request(
        &OriginRequest {
            method: "GET",
            url: "https://h/k",
            headers: &[("x", "a\nb")],
            payload: OriginPayload::Unsigned,
        },
        &creds,
        "us-east-1",
        u64::MAX,
        None,
    );
    assert!(r.is_err());
}
