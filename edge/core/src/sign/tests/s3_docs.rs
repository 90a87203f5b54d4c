//! The worked examples of the S3 SigV4 documentation (API Reference,
//! "Signature Calculations for the Authorization Header: Transferring
//! Payload in a Single Chunk" — GET Object with Range, PUT Object,
//! GET Bucket Lifecycle, GET Bucket (List Objects) — and "Authenticating
//! Requests: Using Query Parameters", the presigned GET of `/test.txt`).
//! Example credentials AKIAIOSFODNN7EXAMPLE, 2013-05-24T00:00:00Z,
//! us-east-1, bucket `examplebucket`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::sign::origin::{sign_origin_request, OriginPayload, OriginRequest};
use crate::sign::presign::{presign, AddressingStyle, PresignRequest, QueryFormat, S3Bucket};
use crate::sign::sigv4::{
    sign, AmzDate, Credentials, PayloadHash, SignableRequest, SigningKey, SigningParams,
    SigningSettings, EMPTY_BODY_SHA256,
};

const NOW: u64 = 1_369_353_600; // 20130524T000000Z

fn creds() -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
    )
}

fn header_sign(
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    payload: PayloadHash<'_>,
) -> crate::sign::SigningOutput {
    let c = creds();
    sign(
        &SignableRequest {
            method,
            url,
            headers,
            payload,
        },
        &SigningParams {
            credentials: &c,
            region: "us-east-1",
            service: "s3",
            time: AmzDate::from_unix_secs(NOW).unwrap(),
            settings: SigningSettings::s3(),
            signing_key: None,
        },
    )
    .unwrap()
}

fn sts_hash(sts: &str) -> &str {
    sts.rsplit('\n').next().unwrap()
}

#[test]
fn get_object_with_range() {
    let out = header_sign(
        "https://examplebucket.s3.amazonaws.com/test.txt",
        "GET",
        &[("Range", "bytes=0-9")],
        PayloadHash::EmptyBody,
    );
    assert_eq!(
        out.canonical_request.to_string(),
        format!(
            "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
             x-amz-content-sha256:{EMPTY_BODY_SHA256}\nx-amz-date:20130524T000000Z\n\n\
             host;range;x-amz-content-sha256;x-amz-date\n{EMPTY_BODY_SHA256}"
        )
    );
    assert_eq!(
        out.string_to_sign,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
         7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
    );
    assert_eq!(
        out.signature,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    assert_eq!(
        out.instructions.headers()[1],
        (
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
                .to_owned()
        )
    );
}

#[test]
fn put_object_with_storage_class() {
    let body = b"Welcome to Amazon S3.";
    let out = header_sign(
        "https://examplebucket.s3.amazonaws.com/test%24file.text",
        "PUT",
        &[
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ],
        PayloadHash::Body(body),
    );
    assert_eq!(
        out.canonical_request.payload_hash(),
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
    );
    assert_eq!(
        out.canonical_request.signed_headers(),
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class"
    );
    assert_eq!(
        sts_hash(&out.string_to_sign),
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d"
    );
    assert_eq!(
        out.signature,
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
    );
}

#[test]
fn get_bucket_lifecycle() {
    let out = header_sign(
        "https://examplebucket.s3.amazonaws.com/?lifecycle",
        "GET",
        &[],
        PayloadHash::EmptyBody,
    );
    assert_eq!(out.canonical_request.query(), "lifecycle=");
    assert_eq!(
        sts_hash(&out.string_to_sign),
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca"
    );
    assert_eq!(
        out.signature,
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
    );
}

#[test]
fn get_bucket_list_objects() {
    // Given in the other order: the canonical query is sorted.
    let out = header_sign(
        "https://examplebucket.s3.amazonaws.com/?prefix=J&max-keys=2",
        "GET",
        &[],
        PayloadHash::EmptyBody,
    );
    assert_eq!(out.canonical_request.query(), "max-keys=2&prefix=J");
    assert_eq!(
        sts_hash(&out.string_to_sign),
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7"
    );
    assert_eq!(
        out.signature,
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    );
}

#[test]
fn presigned_get_test_txt() {
    let bucket = S3Bucket::new(
        "https://s3.amazonaws.com",
        "examplebucket",
        "us-east-1",
        AddressingStyle::VirtualHosted,
    )
    .unwrap();
    let req = PresignRequest {
        format: QueryFormat::AwsDocs,
        ..PresignRequest::get("test.txt", 86_400)
    };
    let url = presign(&bucket, &creds(), &req, NOW, None).unwrap();
    assert_eq!(
        url.canonical_request(),
        "GET\n/test.txt\nX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD"
    );
    assert_eq!(
        url.as_str(),
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
         &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    );
    assert_eq!(url.expires_at(), NOW + 86_400);
}

#[test]
fn origin_signing_reproduces_the_header_examples() {
    let c = creds();
    let get = sign_origin_request(
        &OriginRequest {
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com/test.txt",
            headers: &[("range", "bytes=0-9")],
            payload: OriginPayload::EmptyBody,
        },
        &c,
        "us-east-1",
        NOW,
        None,
    )
    .unwrap();
    let auth = &get
        .headers
        .iter()
        .find(|(k, _)| *k == "authorization")
        .unwrap()
        .1;
    assert!(
        auth.ends_with(
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
        "{auth}"
    );
    let key = SigningKey::derive(
        &c,
        &AmzDate::from_unix_secs(NOW).unwrap(),
        "us-east-1",
        "s3",
    );
    let list = sign_origin_request(
        &OriginRequest {
            method: "GET",
            url: "https://examplebucket.s3.amazonaws.com?prefix=J&max-keys=2",
            headers: &[],
            payload: OriginPayload::EmptyBody,
        },
        &c,
        "us-east-1",
        NOW,
        Some(&key),
    )
    .unwrap();
    assert_eq!(
        list.url,
        "https://examplebucket.s3.amazonaws.com/?max-keys=2&prefix=J"
    );
    let auth = &list
        .headers
        .iter()
        .find(|(k, _)| *k == "authorization")
        .unwrap()
        .1;
    assert!(
        auth.ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ),
        "{auth}"
    );
}
