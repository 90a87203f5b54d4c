#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::sign::presign::{
    presign, AddressingStyle, Checksum, PresignMethod, PresignRequest, Presigner, QueryFormat,
    ResponseOverrides, S3Bucket,
};
use crate::sign::sigv4::{AmzDate, Credentials, SigningKey};

const NOW: u64 = 1_369_353_600;

fn creds(token: bool) -> Credentials {
    Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        token.then(|| "FQoG/token+with=chars".to_owned()),
    )
}

fn aws() -> S3Bucket {
    S3Bucket::aws("examplebucket", "us-east-1").unwrap()
}

fn param_names(url: &str) -> Vec<String> {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .map(|p| p.split('=').next().unwrap().to_owned())
        .collect()
}

#[test]
fn expiry_is_one_second_to_seven_days() {
    for ok in [1, 900, 604_800] {
        assert!(presign(
            &aws(),
            &creds(false),
            &PresignRequest::get("k", ok),
            NOW,
            None
        )
        .is_ok());
    }
    for bad in [0, 604_801, u64::MAX] {
        let e = presign(
            &aws(),
            &creds(false),
            &PresignRequest::get("k", bad),
            NOW,
            None,
        )
        .unwrap_err();
        assert!(e.is_expiry());
        assert!(
            e.to_string().contains(&bad.to_string()) && e.to_string().contains("7 days"),
            "{e}"
        );
    }
}

#[test]
fn js_sdk_v3_layout_sorted_by_raw_name() {
    let req = PresignRequest {
        response: ResponseOverrides {
            content_disposition: Some("attachment; filename=\"a b.txt\""),
            content_type: Some("text/plain"),
            cache_control: Some("no-cache"),
            ..ResponseOverrides::default()
        },
        version_id: Some("v1+x"),
        ..PresignRequest::get("dir/a b.txt", 900)
    };
    let url = presign(&aws(), &creds(true), &req, NOW, None).unwrap();
    assert_eq!(
        param_names(url.as_str()),
        [
            "X-Amz-Algorithm",
            "X-Amz-Content-Sha256",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-Security-Token",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
            "response-cache-control",
            "response-content-disposition",
            "response-content-type",
            "versionId",
            "x-id",
        ]
    );
    let s = url.as_str();
    assert!(s.starts_with("https://examplebucket.s3.us-east-1.amazonaws.com/dir/a%20b.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=900&X-Amz-Security-Token=FQoG%2Ftoken%2Bwith%3Dchars&X-Amz-Signature="), "{s}");
    assert!(s.ends_with("&X-Amz-SignedHeaders=host&response-cache-control=no-cache&response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&response-content-type=text%2Fplain&versionId=v1%2Bx&x-id=GetObject"), "{s}");
    // Everything but the signature is signed, the token included.
    let creq = url.canonical_request();
    assert!(
        creq.contains("X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&X-Amz-Credential="),
        "{creq}"
    );
    assert!(
        creq.contains("X-Amz-Security-Token=FQoG%2Ftoken%2Bwith%3Dchars"),
        "{creq}"
    );
    assert!(creq.contains("&x-id=GetObject\n"), "{creq}");
    assert!(!creq.contains("X-Amz-Signature"));
}

#[test]
fn head_and_put_carry_their_operation() {
    let head = presign(
        &aws(),
        &creds(false),
        &PresignRequest::head("k", 60),
        NOW,
        None,
    )
    .unwrap();
    // The JS SDK v3 serializes HeadObject without `x-id`.
    assert!(head.as_str().ends_with("&X-Amz-SignedHeaders=host"), "{}", head.as_str());
    assert!(head.canonical_request().starts_with("HEAD\n/k\n"));
    let put = presign(
        &aws(),
        &creds(false),
        &PresignRequest::put("k", 60),
        NOW,
        None,
    )
    .unwrap();
    assert!(put.as_str().ends_with("&x-id=PutObject"));
    assert_eq!(put.method(), PresignMethod::Put);
}

#[test]
fn put_signs_type_length_and_checksum() {
    let req = PresignRequest {
        content_type: Some("image/png"),
        content_length: Some(1234),
        checksum: Some(Checksum::Sha256(
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        )),
        ..PresignRequest::put("up/x.png", 600)
    };
    let url = presign(&aws(), &creds(false), &req, NOW, None).unwrap();
    assert!(url.as_str().contains(
        "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bx-amz-checksum-sha256"
    ));
    assert_eq!(
        url.headers(),
        [
            ("content-type", "image/png".to_owned()),
            ("content-length", "1234".to_owned()),
            (
                "x-amz-checksum-sha256",
                "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".to_owned()
            ),
        ]
    );
    assert!(url
        .canonical_request()
        .contains("\ncontent-length:1234\ncontent-type:image/png\nhost:"));
    for bad in [
        Checksum::Sha256("abc"),
        Checksum::Crc32("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        Checksum::Sha1("!!!!"),
    ] {
        let r = PresignRequest {
            checksum: Some(bad),
            ..PresignRequest::put("k", 60)
        };
        let e = presign(&aws(), &creds(false), &r, NOW, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x-amz-checksum-"), "{e}");
    }
    assert!(presign(
        &aws(),
        &creds(false),
        &PresignRequest {
            checksum: Some(Checksum::Crc32("AAAAAA==")),
            ..PresignRequest::put("k", 60)
        },
        NOW,
        None
    )
    .is_ok());
}

#[test]
fn options_refused_for_the_wrong_method() {
    let get_with_type = PresignRequest {
        content_type: Some("a/b"),
        ..PresignRequest::get("k", 60)
    };
    let e = presign(&aws(), &creds(false), &get_with_type, NOW, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("content_type") && e.contains("GET"), "{e}");
    let put_with_override = PresignRequest {
        response: ResponseOverrides {
            content_type: Some("x"),
            ..ResponseOverrides::default()
        },
        ..PresignRequest::put("k", 60)
    };
    assert!(presign(&aws(), &creds(false), &put_with_override, NOW, None).is_err());
    let header_injection = PresignRequest {
        content_type: Some("a\r\nx: y"),
        ..PresignRequest::put("k", 60)
    };
    assert!(presign(&aws(), &creds(false), &header_injection, NOW, None).is_err());
}

#[test]
fn keys_are_encoded_as_s3_expects_and_round_trip() {
    let bucket = S3Bucket::new(
        "http://127.0.0.1:9000",
        "my_bucket",
        "us-east-1",
        AddressingStyle::Path,
    )
    .unwrap();
    for (key, path) in [
        ("test.txt", "/my_bucket/test.txt"),
        ("a b+c/~x//%", "/my_bucket/a%20b%2Bc/~x//%25"),
        ("ü/日本.txt", "/my_bucket/%C3%BC/%E6%97%A5%E6%9C%AC.txt"),
        ("/lead", "/my_bucket//lead"),
        ("a%2Fb", "/my_bucket/a%252Fb"),
        ("./../x", "/my_bucket/./../x"),
        (
            "!$&'()*,;=:@?#[]",
            "/my_bucket/%21%24%26%27%28%29%2A%2C%3B%3D%3A%40%3F%23%5B%5D",
        ),
    ] {
        let url = presign(
            &bucket,
            &creds(false),
            &PresignRequest::get(key, 60),
            NOW,
            None,
        )
        .unwrap();
        let s = url.as_str();
        assert!(
            s.starts_with(&format!("http://127.0.0.1:9000{path}?")),
            "{key}: {s}"
        );
        // The canonical path is the URL path: no normalization, no double encoding.
        assert!(
            url.canonical_request()
                .starts_with(&format!("GET\n{path}\n")),
            "{key}"
        );
        assert!(url.canonical_request().contains("\nhost:127.0.0.1:9000\n"));
        let encoded = path.strip_prefix("/my_bucket/").unwrap();
        let decoded = percent_encoding::percent_decode_str(encoded)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, key);
    }
    assert!(presign(
        &bucket,
        &creds(false),
        &PresignRequest::get("", 60),
        NOW,
        None
    )
    .is_err());
    let long = "k".repeat(1025);
    assert!(presign(
        &bucket,
        &creds(false),
        &PresignRequest::get(&long, 60),
        NOW,
        None
    )
    .is_err());
}

#[test]
fn endpoints_and_styles() {
    let v = S3Bucket::new(
        "https://s3.eu-west-1.amazonaws.com",
        "b-1.x",
        "eu-west-1",
        AddressingStyle::VirtualHosted,
    )
    .unwrap();
    assert_eq!(
        v.object_url("k").unwrap(),
        "https://b-1.x.s3.eu-west-1.amazonaws.com/k"
    );
    let p = S3Bucket::new(
        "https://minio.local:9443/base/",
        "Bucket",
        "auto",
        AddressingStyle::Path,
    )
    .unwrap();
    assert_eq!(
        p.object_url("a/b").unwrap(),
        "https://minio.local:9443/base/Bucket/a/b"
    );
    for bad in ["Upper", "a", "a..b", "-ab", "a_b"] {
        let e = S3Bucket::new(
            "https://s3.amazonaws.com",
            bad,
            "us-east-1",
            AddressingStyle::VirtualHosted,
        )
        .unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    for bad in [
        "s3.amazonaws.com",
        "ftp://h",
        "https://h/?x=1",
        "https://h/#f",
    ] {
        assert!(
            S3Bucket::new(bad, "bucket", "us-east-1", AddressingStyle::Path).is_err(),
            "{bad}"
        );
    }
    assert!(S3Bucket::new("https://h", "a/b", "us-east-1", AddressingStyle::Path).is_err());
    assert!(S3Bucket::new("https://h", "bucket", "", AddressingStyle::Path).is_err());
}

#[test]
fn debug_redacts_signature_and_token() {
    let url = presign(
        &aws(),
        &creds(true),
        &PresignRequest::get("k", 60),
        NOW,
        None,
    )
    .unwrap();
    let dbg = format!("{url:?}");
    let sig = url
        .as_str()
        .split("X-Amz-Signature=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    assert!(!dbg.contains(sig), "{dbg}");
    assert!(!dbg.contains("FQoG"), "{dbg}");
    assert!(dbg.contains("X-Amz-Signature=REDACTED"));
}

#[test]
fn aws_docs_format_has_no_sdk_extras() {
    let req = PresignRequest {
        format: QueryFormat::AwsDocs,
        ..PresignRequest::get("k", 60)
    };
    let url = presign(&aws(), &creds(true), &req, NOW, None).unwrap();
    let names = param_names(url.as_str());
    assert_eq!(names.last().map(String::as_str), Some("X-Amz-Signature"));
    assert!(!names
        .iter()
        .any(|n| n == "x-id" || n == "X-Amz-Content-Sha256"));
    assert!(names.iter().any(|n| n == "X-Amz-Security-Token"));
}

/// `presign` writes the canonical request and the URL directly; it must
/// give what the general SigV4 signer gives for the same request
/// (`presign_via_signer`, the path `presign` took before), byte for byte:
/// URL, headers, canonical request and string to sign, on random keys,
/// methods, formats, overrides, headers, endpoints, credentials and times,
/// with and without a cached day key. And the kept presigners (one per
/// endpoint, region and credentials, alive for the whole run, as a user
/// keeps them) give the same URLs while their kept day key comes and goes:
/// half of the times are on three days near each other (so one presigner
/// signs runs on one day, then another day, then an earlier one again,
/// with times at the days' first and last seconds), half random over 40
/// years; after each URL the kept key must be the URL's day key, exactly.
#[test]
fn direct_presign_equals_the_general_signer() {
    use crate::sign::presign::presign_via_signer;
    let mut s: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: usize| {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s % n as u64) as usize
    };
    let pieces = [
        "a", "Z9", "-_.~", " ", "+", "%", "%2F", "/", "//", "?", "#", "=", "&", "é", "日本", "😀", "\t", "'", "*",
        "(x)", "..", "a b", "%20",
    ];
    let endpoints = [
        ("https://s3.us-east-1.amazonaws.com", AddressingStyle::VirtualHosted),
        ("https://s3.eu-west-1.amazonaws.com:443", AddressingStyle::VirtualHosted),
        ("http://127.0.0.1:9000", AddressingStyle::Path),
        ("http://localhost:80", AddressingStyle::Path),
        ("https://minio.example.com:9443/base/", AddressingStyle::Path),
        ("https://storage.example.com", AddressingStyle::VirtualHosted),
    ];
    let values = ["no-cache", "attachment; filename=\"a b.txt\"", "  spaced   out  ", "x+y=z&w", "résumé ~ 100%"];
    let checksums = [
        Checksum::Crc32("AAAAAA=="),
        Checksum::Sha256("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        Checksum::Crc64Nvme("AAAAAAAAAAA="),
    ];
    let regions = ["us-east-1", "eu-west-1"];
    // Kept presigners by (endpoint, region, session token).
    let mut kept_signers: Vec<Option<Presigner>> = (0..endpoints.len() * regions.len() * 2).map(|_| None).collect();
    // 2013-05-24T00:00:00Z and the two days after it.
    let days = [NOW, NOW + 86_400, NOW + 2 * 86_400];
    let mut day_changes = 0;
    let mut last_day = vec![None; kept_signers.len()];
    for i in 0..3000 {
        let (e, r, token) = (next(endpoints.len()), next(regions.len()), next(2) == 0);
        let (endpoint, style) = endpoints[e];
        let bucket = S3Bucket::new(endpoint, "my-bucket", regions[r], style).unwrap();
        let credentials = creds(token);
        let key: String = (0..1 + next(8)).map(|_| pieces[next(pieces.len())]).collect();
        let method = [PresignMethod::Get, PresignMethod::Head, PresignMethod::Put][next(3)];
        let pick = |n: usize| (n < values.len()).then(|| values[n]);
        let mut req = PresignRequest {
            method,
            format: if next(4) == 0 { QueryFormat::AwsDocs } else { QueryFormat::JsSdkV3 },
            ..PresignRequest::get(&key, 1 + next(604_800) as u64)
        };
        if method == PresignMethod::Put {
            req.content_type = pick(next(8));
            req.content_length = (next(2) == 0).then(|| next(1 << 20) as u64);
            req.checksum = (next(3) == 0).then(|| checksums[next(checksums.len())]);
        } else {
            req.version_id = (next(3) == 0).then_some("3HL4kqtJ+/v=1");
            req.response = ResponseOverrides {
                cache_control: pick(next(10)),
                content_disposition: pick(next(10)),
                content_encoding: pick(next(10)),
                content_language: pick(next(10)),
                content_type: pick(next(10)),
                expires: pick(next(10)),
            };
        }
        let now = if next(2) == 0 {
            946_684_800 + next(1_300_000_000) as u64
        } else {
            days[next(days.len())] + [0, 1, 86_399, next(86_400) as u64][next(4)]
        };
        let time = AmzDate::from_unix_secs(now).unwrap();
        let day_key = SigningKey::derive(&credentials, &time, bucket.region(), "s3");
        let cached = [None, Some(&day_key)][next(2)];
        let ours = presign(&bucket, &credentials, &req, now, cached).unwrap();
        let theirs = presign_via_signer(&bucket, &credentials, &req, now, cached).unwrap();
        // A presigner made for this URL (the Lambda@Edge package's
        // `S3Presigner`), and the one kept for the whole run.
        let fresh = Presigner::new(bucket.clone(), credentials.clone()).presign(&req, now).unwrap();
        assert_eq!(fresh, ours, "case {i}: new Presigner");
        let slot = (e * regions.len() + r) * 2 + usize::from(token);
        let signer = kept_signers[slot].get_or_insert_with(|| Presigner::new(bucket.clone(), credentials.clone()));
        assert_eq!(signer.presign(&req, now).unwrap(), ours, "case {i}: kept Presigner at {now}");
        assert_eq!(signer.kept_day_key().as_deref(), Some(&day_key), "case {i}: kept day key at {now}");
        let day = now / 86_400;
        if last_day[slot].is_some_and(|d| d != day) {
            day_changes += 1;
        }
        last_day[slot] = Some(day);
        assert_eq!(ours.as_str(), theirs.as_str(), "case {i}: {req:?}");
        assert_eq!(ours.headers(), theirs.headers(), "case {i}");
        assert_eq!(ours.canonical_request(), theirs.canonical_request(), "case {i}");
        assert_eq!(ours.string_to_sign(), theirs.string_to_sign(), "case {i}");
        assert_eq!(ours.expires_at(), theirs.expires_at(), "case {i}");
    }
    // Most URLs of a kept presigner are on another day than its one before.
    assert!(day_changes > 2000, "{day_changes} day changes");
}

/// A kept presigner gives what `presign` gives, over days, and its errors.
#[test]
fn kept_presigner_equals_presign() {
    let bucket = aws();
    let credentials = creds(true);
    let signer = Presigner::new(bucket.clone(), credentials.clone());
    assert_eq!(signer.bucket(), &bucket);
    assert!(signer.kept_day_key().is_none());
    // The same day (first and last second), the next, back, far away.
    let times = [NOW, NOW + 1, NOW + 86_399, NOW + 86_400, NOW + 86_399, NOW, 0, 253_402_300_799, NOW + 172_799];
    for now in times {
        let req = PresignRequest::put("a b/c.txt", 900);
        assert_eq!(signer.presign(&req, now), presign(&bucket, &credentials, &req, now, None), "{now}");
        let time = AmzDate::from_unix_secs(now).unwrap();
        let key = SigningKey::derive(&credentials, &time, "us-east-1", "s3");
        assert_eq!(signer.kept_day_key().as_deref(), Some(&key), "{now}");
    }
    // Refused requests give `presign`'s errors. The key of a refused
    // request's day may be kept (the request is checked after it is
    // derived); a time out of range keeps nothing.
    let kept = signer.kept_day_key().unwrap();
    for (req, now) in [(PresignRequest::get("k", 0), NOW), (PresignRequest::get("", 60), NOW), (PresignRequest::get("k", 60), u64::MAX)] {
        let e = signer.presign(&req, now).unwrap_err();
        assert_eq!(Err(e), presign(&bucket, &credentials, &req, now, None));
    }
    assert!(signer.kept_day_key().is_some_and(|k| k.matches(&AmzDate::from_unix_secs(NOW).unwrap(), "us-east-1", "s3")));
    assert_ne!(signer.kept_day_key(), Some(kept));
    // Debug shows the bucket and the kept key's scope, never the secret,
    // the token or the key (hex or raw bytes).
    let key = signer.kept_day_key().unwrap();
    let debug = format!("{signer:?}");
    assert!(debug.contains("examplebucket") && debug.contains("20130524/us-east-1/s3/aws4_request"), "{debug}");
    assert!(!debug.contains("wJalrXUtnFEMI") && !debug.contains("FQoG"), "{debug}");
    let hex = key.to_hex();
    assert!(!debug.to_ascii_lowercase().contains(&hex), "{debug}");
    let bytes: Vec<String> = (0..32).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap().to_string()).collect();
    assert!(!debug.contains(&bytes.join(", ")), "{debug}");
}
