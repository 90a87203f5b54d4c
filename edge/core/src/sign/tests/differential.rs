//! Differential tests against the `aws-sigv4` crate (native only: it is a
//! native dev-dependency). Random requests and settings are signed by both
//! signers; signatures (hence canonical requests and strings to sign) and
//! instructions must be identical.

use std::time::{Duration, SystemTime};

use aws_sigv4::http_request as oracle;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::sign::encode::parse_query;
use crate::sign::presign::{presign, AddressingStyle, PresignRequest, ResponseOverrides, S3Bucket};
use crate::sign::sigv4::{
    sign, AmzDate, Credentials, PayloadChecksumKind, PayloadHash, PercentEncodingMode,
    SessionTokenMode, SignableRequest, SignatureLocation, SigningParams, SigningSettings,
    UriPathNormalization,
};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Pieces http::Uri accepts in a path (so the oracle can take the request).
const PATH_PIECES: &[&str] = &[
    "a",
    "Z",
    "09",
    "-",
    ".",
    "_",
    "~",
    "..",
    "!",
    "$",
    "&",
    "'",
    "(",
    ")",
    "*",
    "+",
    ",",
    ";",
    "=",
    ":",
    "@",
    "%20",
    "%2F",
    "%41",
    "%25",
    "%E6%97%A5",
    "%7e",
    "",
    "key.txt",
];
const QUERY_PIECES: &[&str] = &[
    "a",
    "B",
    "1",
    "-",
    "_",
    ".",
    "~",
    "+",
    "%20",
    "%2B",
    "%3D",
    "%26",
    "%2F",
    "/",
    ":",
    "@",
    "!",
    "*",
    "'",
    "(",
    ")",
    ",",
    ";",
    "$",
    "%E2%9C%93",
    "%",
    "%zz",
    "x-id",
    "prefix",
];
const HEADER_NAMES: &[&str] = &[
    "Content-Type",
    "x-amz-meta-a",
    "X-Amz-Meta-A",
    "range",
    "If-None-Match",
    "user-agent",
    "x-amz-date",
    "x-amz-user-agent",
    "x-amz-checksum-mode",
    "Transfer-Encoding",
    "x-custom",
    "authorization",
    "Host",
    "content-md5",
];
const HEADER_VALUES: &[&str] = &[
    "v",
    "  leading",
    "trailing  ",
    "a   b    c",
    "\"quoted  x\"",
    "bytes=0-9",
    "テスト",
    "",
    "a,b",
    "tab\there",
    "UNSIGNED-PAYLOAD",
    "example.amazonaws.com",
];

fn random_string(rng: &mut Rng, pieces: &[&str], max: u64) -> String {
    (0..rng.below(max + 1)).map(|_| *rng.pick(pieces)).collect()
}

struct Case {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    payload_kind: u8,
    location: SignatureLocation,
    double: bool,
    normalize: bool,
    checksum_header: bool,
    token: Option<String>,
    exclude_token: bool,
    time: u64,
    expires: u64,
    region: &'static str,
    service: &'static str,
}

#[allow(clippy::explicit_auto_deref)] // needed: the fields are &'static str
fn random_case(rng: &mut Rng) -> Case {
    let scheme = *rng.pick(&["https", "http"]);
    let host = *rng.pick(&[
        "example.amazonaws.com",
        "bucket.s3.us-west-2.amazonaws.com",
        "127.0.0.1:9000",
        "h.example:8443",
        "h.example:443",
        "h.example:80",
    ]);
    let segments = rng.below(5);
    let mut path = String::new();
    for _ in 0..segments {
        path.push('/');
        path.push_str(&random_string(rng, PATH_PIECES, 4));
    }
    if rng.chance(20) {
        path.push('/');
    }
    let mut url = format!("{scheme}://{host}{path}");
    if rng.chance(60) {
        let pairs: Vec<String> = (0..rng.below(5))
            .map(|_| {
                let k = random_string(rng, QUERY_PIECES, 3);
                if rng.chance(20) {
                    k
                } else {
                    format!("{k}={}", random_string(rng, QUERY_PIECES, 3))
                }
            })
            .collect();
        url.push('?');
        url.push_str(&pairs.join("&"));
    }
    let headers = (0..rng.below(5))
        .map(|_| {
            (
                (*rng.pick(HEADER_NAMES)).to_owned(),
                (*rng.pick(HEADER_VALUES)).to_owned(),
            )
        })
        .collect();
    let body: Vec<u8> = (0..rng.below(40)).map(|_| rng.next() as u8).collect();
    Case {
        method: *rng.pick(&["GET", "PUT", "POST", "HEAD", "DELETE"]),
        url,
        headers,
        body,
        payload_kind: rng.below(3) as u8,
        location: if rng.chance(50) {
            SignatureLocation::Headers
        } else {
            SignatureLocation::QueryParams
        },
        double: rng.chance(50),
        normalize: rng.chance(50),
        checksum_header: rng.chance(50),
        token: rng.chance(40).then(|| format!("tok/{}+=", rng.next())),
        exclude_token: rng.chance(20),
        time: rng.below(4_102_444_800),
        expires: 1 + rng.below(604_800),
        region: *rng.pick(&["us-east-1", "eu-central-1", "auto"]),
        service: *rng.pick(&["s3", "service", "execute-api"]),
    }
}

fn sorted(mut v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.sort();
    v
}

/// Returns false when the oracle cannot represent the request.
fn compare(case: &Case) -> bool {
    let precomputed = crate::sign::encode::sha256_hex(b"precomputed");
    let oracle_body = match case.payload_kind {
        0 => oracle::SignableBody::Bytes(&case.body),
        1 => oracle::SignableBody::UnsignedPayload,
        _ => oracle::SignableBody::Precomputed(precomputed.clone()),
    };
    let ours_body = match case.payload_kind {
        0 => PayloadHash::Body(&case.body),
        1 => PayloadHash::UnsignedPayload,
        _ => PayloadHash::Precomputed(&precomputed),
    };
    let Ok(signable) = oracle::SignableRequest::new(
        case.method,
        case.url.as_str(),
        case.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        oracle_body,
    ) else {
        return false;
    };
    let mut settings = oracle::SigningSettings::default();
    settings.signature_location = match case.location {
        SignatureLocation::Headers => oracle::SignatureLocation::Headers,
        SignatureLocation::QueryParams => oracle::SignatureLocation::QueryParams,
    };
    settings.percent_encoding_mode = if case.double {
        oracle::PercentEncodingMode::Double
    } else {
        oracle::PercentEncodingMode::Single
    };
    settings.uri_path_normalization_mode = if case.normalize {
        oracle::UriPathNormalizationMode::Enabled
    } else {
        oracle::UriPathNormalizationMode::Disabled
    };
    settings.payload_checksum_kind = if case.checksum_header {
        oracle::PayloadChecksumKind::XAmzSha256
    } else {
        oracle::PayloadChecksumKind::NoHeader
    };
    settings.session_token_mode = if case.exclude_token {
        oracle::SessionTokenMode::Exclude
    } else {
        oracle::SessionTokenMode::Include
    };
    settings.expires_in = Some(Duration::from_secs(case.expires));
    let identity: Identity = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        case.token.clone(),
        None,
        "test",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(case.region)
        .name(case.service)
        .time(SystemTime::UNIX_EPOCH + Duration::from_secs(case.time))
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let Ok(expected) = oracle::sign(signable, &params) else {
        return false;
    };
    let (expected_instructions, expected_signature) = expected.into_parts();

    let creds = Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        case.token.clone(),
    );
    let headers: Vec<(&str, &str)> = case
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let ours = sign(
        &SignableRequest {
            method: case.method,
            url: &case.url,
            headers: &headers,
            payload: ours_body,
        },
        &SigningParams {
            credentials: &creds,
            region: case.region,
            service: case.service,
            time: AmzDate::from_unix_secs(case.time).unwrap(),
            settings: SigningSettings {
                signature_location: case.location,
                percent_encoding_mode: if case.double {
                    PercentEncodingMode::Double
                } else {
                    PercentEncodingMode::Single
                },
                uri_path_normalization: if case.normalize {
                    UriPathNormalization::Enabled
                } else {
                    UriPathNormalization::Disabled
                },
                payload_checksum_kind: if case.checksum_header {
                    PayloadChecksumKind::XAmzSha256
                } else {
                    PayloadChecksumKind::NoHeader
                },
                session_token_mode: if case.exclude_token {
                    SessionTokenMode::Exclude
                } else {
                    SessionTokenMode::Include
                },
                expires_in: Some(case.expires),
                ..SigningSettings::default()
            },
            signing_key: None,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.url));
    assert_eq!(
        ours.signature, expected_signature,
        "signature differs for {} {} {:?}\nour canonical request:\n{}",
        case.method, case.url, case.headers, ours.canonical_request
    );
    let expected_headers: Vec<(String, String)> = expected_instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let our_headers: Vec<(String, String)> = ours
        .instructions
        .headers()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    assert_eq!(
        sorted(our_headers),
        sorted(expected_headers),
        "{}",
        case.url
    );
    let expected_params: Vec<(String, String)> = expected_instructions
        .params()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.to_string()))
        .collect();
    let our_params: Vec<(String, String)> = ours
        .instructions
        .params()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    assert_eq!(sorted(our_params), sorted(expected_params), "{}", case.url);
    true
}

#[test]
fn random_requests_sign_like_aws_sigv4() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut compared = 0;
    let total = 3000;
    for _ in 0..total {
        if compare(&random_case(&mut rng)) {
            compared += 1;
        }
    }
    // The oracle refuses a few URLs http::Uri cannot hold; nearly all run.
    assert!(
        compared > total * 9 / 10,
        "only {compared} of {total} compared"
    );
}

#[test]
fn presigned_urls_verify_with_aws_sigv4() {
    let mut rng = Rng(0x0bad_cafe_f00d_0001);
    let key_pieces = [
        "a", " ", "+", "~", "/", "//", "%", "ü", "日本", "(x)", "!", "*", "'", ".", "..", "=", "&",
        "?", "#",
    ];
    for i in 0..500 {
        let key: String = (0..1 + rng.below(6))
            .map(|_| *rng.pick(&key_pieces))
            .collect();
        let token = (i % 3 == 0).then(|| "FQoG/tok+en=".to_owned());
        let creds = Credentials::new("AKIDEXAMPLE", "secret/key+x", token.clone());
        let style = if rng.chance(50) {
            AddressingStyle::Path
        } else {
            AddressingStyle::VirtualHosted
        };
        let endpoints = [
            "https://s3.us-west-2.amazonaws.com",
            "http://127.0.0.1:9000",
        ];
        let endpoint = endpoints[rng.below(2) as usize];
        let bucket = S3Bucket::new(endpoint, "bucket-1", "us-west-2", style).unwrap();
        let req = PresignRequest {
            response: ResponseOverrides {
                content_disposition: rng.chance(50).then_some("attachment; filename=\"x y.txt\""),
                ..ResponseOverrides::default()
            },
            ..PresignRequest::get(&key, 1 + rng.below(604_800))
        };
        let now = rng.below(4_000_000_000);
        let url = presign(&bucket, &creds, &req, now, None).unwrap();
        // Strip the signing parameters and sign the rest with the oracle.
        let (base, query) = url.as_str().split_once('?').unwrap();
        let all = parse_query(query);
        let get = |name: &str| {
            all.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        let rest: Vec<String> = query
            .split('&')
            .filter(|p| !p.starts_with("X-Amz-") || p.starts_with("X-Amz-Content-Sha256"))
            .map(str::to_owned)
            .collect();
        let unsigned = format!("{base}?{}", rest.join("&"));
        let mut settings = oracle::SigningSettings::default();
        settings.signature_location = oracle::SignatureLocation::QueryParams;
        settings.percent_encoding_mode = oracle::PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = oracle::UriPathNormalizationMode::Disabled;
        settings.expires_in = Some(Duration::from_secs(req.expires_in));
        let identity: Identity =
            aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret/key+x", token, None, "t")
                .into();
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region("us-west-2")
            .name("s3")
            .time(SystemTime::UNIX_EPOCH + Duration::from_secs(now))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable = oracle::SignableRequest::new(
            "GET",
            &unsigned,
            std::iter::empty(),
            oracle::SignableBody::UnsignedPayload,
        )
        .unwrap();
        let (_, signature) = oracle::sign(signable, &params).unwrap().into_parts();
        assert_eq!(
            get("X-Amz-Signature"),
            signature,
            "{key:?} {}",
            url.as_str()
        );
    }
}
