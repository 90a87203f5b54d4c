//! Presigned URLs per second: Offload's native signer ÷ the `aws-sigv4`
//! crate, in the same process, on the same random keys.
//!
//! ```sh
//! cargo run --release -p offload-core --example presign_bench [seconds-per-side]
//! ```
//!
//! Both sides do the whole job: encode the key into the object URL, sign
//! (SigV4 query auth, S3 settings, the JS SDK v3 layout's extra parameters)
//! and write the final URL string. The `aws-sigv4` side's URL assembly uses
//! the same encoder (`percent-encoding`), so the ratio is about signing.
//! Both derive the day's signing key on every call (`aws-sigv4`'s
//! `http_request::sign` takes no cached key); the last row is Offload with
//! its cached key. `aws-sigv4` and its crates are built at opt-level 3 in
//! release, as the core is (the workspace Cargo.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    native::main();
}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::hint::black_box;
    use std::time::{Duration, Instant, SystemTime};

    use aws_sigv4::http_request as sigv4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use offload_core::sign::{presign, AmzDate, Credentials, PresignRequest, S3Bucket, SigningKey};
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    const PATH: &AsciiSet = &UNRESERVED.remove(b'/');
    const ID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "IQoJb3JpZ2luX2VjEtoken+/=";
    const REGION: &str = "us-west-2";

    fn keys() -> Vec<String> {
        let pieces = ["photos", "2024", "a b", "c+d", "~x", "//", "%", "é", "日本", "😀", "report.pdf", "-_."];
        let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..1000)
            .map(|_| {
                let mut k = String::new();
                for _ in 0..1 + (s % 6) {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    k.push_str(pieces[(s % pieces.len() as u64) as usize]);
                    k.push('/');
                }
                k.push_str("file.bin");
                k
            })
            .collect()
    }

    fn ours(bucket: &S3Bucket, creds: &Credentials, key: &str, now: u64, cached: Option<&SigningKey>) -> String {
        presign(bucket, creds, &PresignRequest::get(key, 900), now, cached).unwrap().into_string()
    }

    fn theirs(identity: &Identity, key: &str, now: u64) -> String {
        let base = format!("https://my-bucket.s3.{REGION}.amazonaws.com/{}", utf8_percent_encode(key, PATH));
        let unsigned = format!("{base}?X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&x-id=GetObject");
        let mut settings = sigv4::SigningSettings::default();
        settings.signature_location = sigv4::SignatureLocation::QueryParams;
        settings.percent_encoding_mode = sigv4::PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = sigv4::UriPathNormalizationMode::Disabled;
        settings.expires_in = Some(Duration::from_secs(900));
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(identity)
            .region(REGION)
            .name("s3")
            .time(SystemTime::UNIX_EPOCH + Duration::from_secs(now))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let signable =
            sigv4::SignableRequest::new("GET", &unsigned, std::iter::empty(), sigv4::SignableBody::UnsignedPayload)
                .unwrap();
        let (instructions, _) = sigv4::sign(signable, &params).unwrap().into_parts();
        let mut url = unsigned;
        for (name, value) in instructions.params() {
            url.push('&');
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, UNRESERVED));
        }
        url
    }

    fn rate(name: &str, secs: f64, mut one: impl FnMut(usize) -> String) -> f64 {
        for i in 0..5_000 {
            black_box(one(i % 1000));
        }
        let start = Instant::now();
        let mut done = 0usize;
        while start.elapsed().as_secs_f64() < secs {
            for j in 0..500 {
                black_box(one((done + j) % 1000));
            }
            done += 500;
        }
        let r = done as f64 / start.elapsed().as_secs_f64();
        println!("  {name:<40} {:>12.0} URLs/s", r);
        r
    }

    pub fn main() {
        let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
        let keys = keys();
        let now = 1_700_000_000;
        let bucket = S3Bucket::aws("my-bucket", REGION).unwrap();
        let creds = Credentials::new(ID, SECRET, Some(TOKEN.to_owned()));
        let identity: Identity =
            aws_credential_types::Credentials::new(ID, SECRET, Some(TOKEN.to_owned()), None, "bench").into();
        // Same signature from both (a benchmark of two different things
        // would mean nothing).
        for k in keys.iter().take(50) {
            let a = ours(&bucket, &creds, k, now, None);
            let b = theirs(&identity, k, now);
            let sig = |u: &str| u.split("X-Amz-Signature=").nth(1).map(|s| s[..64].to_owned());
            assert_eq!(sig(&a), sig(&b), "signatures differ for {k:?}\n{a}\n{b}");
        }
        println!("native presign throughput, 1000 keys, {secs} s each");
        let o = rate("Offload sign::presign", secs, |i| ours(&bucket, &creds, &keys[i], now, None));
        let t = rate("aws-sigv4 (sign + URL assembly)", secs, |i| theirs(&identity, &keys[i], now));
        // The signing key changes once a day per region: Offload's API takes
        // a cached one (aws-sigv4 derives it on every call).
        let day_key = SigningKey::derive(&creds, &AmzDate::from_unix_secs(now).unwrap(), REGION, "s3");
        let c = rate("Offload sign::presign, cached day key", secs, |i| {
            ours(&bucket, &creds, &keys[i], now, Some(&day_key))
        });
        println!("ratio Offload / aws-sigv4: {:.2}x (same work); {:.2}x with the cached signing key", o / t, c / t);
    }
}
