//! Origin auth: the edge signs each origin request so the origin (or the
//! origin-shim in front of it) can reject traffic that bypassed the edge.
//!
//! # Format
//!
//! Header (default name `x-offload-auth`):
//!
//! ```text
//! v1,ts=<unix seconds>,kid=<key id>,sig=<base64url, no padding>
//! ```
//!
//! `sig` is HMAC-SHA256 with the key named by `kid` over exactly these
//! four lines joined by `\n` (no trailing newline):
//!
//! ```text
//! <ts>                 decimal unix seconds, same digits as in the header
//! <METHOD>             as sent, e.g. GET (methods are case-sensitive)
//! <path-and-query>     request target as sent upstream, e.g. /api/x?a=1
//!                      ("/" if empty); no normalization
//! <host>               Host header as sent upstream, ASCII lower-cased
//! ```
//!
//! The verifier accepts a timestamp within `max_skew` seconds of its own
//! clock in either direction (default validity 30 s). The fields must
//! appear in the order shown; the key id is 1-64 of `[A-Za-z0-9._-]`.
//!
//! ```
//! use offload_core::route::auth::{sign_origin_request, verify_origin_request, Keyring, Secret, SigningKey};
//! let key = SigningKey::new("k1", Secret::new(b"0123456789abcdef".to_vec()));
//! let v = sign_origin_request(&key, "GET", "/api/x?a=1", "Origin.example.com", 1_700_000_000);
//! assert!(v.starts_with("v1,ts=1700000000,kid=k1,sig="));
//! let ring = Keyring::new([key]);
//! assert!(verify_origin_request(&ring, Some(&v), "GET", "/api/x?a=1", "origin.example.com", 1_700_000_010, 30).is_ok());
//! ```

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

pub use crate::secret::Secret;

/// The default header name.
pub const DEFAULT_HEADER: &str = "x-offload-auth";

/// Whether `kid` is a well-formed key id.
pub fn valid_key_id(kid: &str) -> bool {
    (1..=64).contains(&kid.len())
        && kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A key id and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    kid: String,
    secret: Secret,
}

impl SigningKey {
    pub fn new(kid: impl Into<String>, secret: Secret) -> Self {
        Self { kid: kid.into(), secret }
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The keys a verifier accepts (several during a rotation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<SigningKey>,
}

impl Keyring {
    pub fn new(keys: impl IntoIterator<Item = SigningKey>) -> Self {
        Self { keys: keys.into_iter().collect() }
    }
    fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// The exact string that is signed (see the module docs).
pub fn string_to_sign(ts: u64, method: &str, path_and_query: &str, host: &str) -> String {
    let path = if path_and_query.is_empty() { "/" } else { path_and_query };
    format!("{ts}\n{method}\n{path}\n{}", host.to_ascii_lowercase())
}

fn mac(secret: &Secret, ts: u64, method: &str, path_and_query: &str, host: &str) -> [u8; 32] {
    crate::sign::hmac_sha256(secret.expose(), &[string_to_sign(ts, method, path_and_query, host).as_bytes()])
}

/// The header value authenticating this origin request, signed at `now_secs`.
pub fn sign_origin_request(
    key: &SigningKey,
    method: &str,
    path_and_query: &str,
    host: &str,
    now_secs: u64,
) -> String {
    let sig = mac(&key.secret, now_secs, method, path_and_query, host);
    format!("v1,ts={now_secs},kid={},sig={}", key.kid, URL_SAFE_NO_PAD.encode(sig))
}

/// Why verification failed. Each kind is distinct so the origin can log
/// (and count) them; all of them map to 401/403 for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No auth header on the request.
    Missing,
    /// The header is not `v1,ts=..,kid=..,sig=..`.
    Malformed(&'static str),
    /// `kid` names no key in the keyring.
    UnknownKey(String),
    /// The signature does not match (tampered or wrong secret).
    BadSignature,
    /// Authentic, but `ts` is more than `max_skew` seconds from `now`.
    Expired { ts: u64, now: u64 },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => f.write_str("origin auth: header missing"),
            Self::Malformed(why) => write!(f, "origin auth: malformed header: {why}"),
            Self::UnknownKey(kid) => write!(f, "origin auth: unknown key id {kid:?}"),
            Self::BadSignature => f.write_str("origin auth: bad signature"),
            Self::Expired { ts, now } => {
                write!(f, "origin auth: timestamp {ts} too far from now ({now})")
            }
        }
    }
}

impl std::error::Error for AuthError {}

struct Parsed<'a> {
    ts: u64,
    kid: &'a str,
    sig: [u8; 32],
}

fn parse(value: &str) -> Result<Parsed<'_>, AuthError> {
    use AuthError::Malformed;
    if value.len() > 256 {
        return Err(Malformed("too long"));
    }
    let mut parts = value.split(',');
    if parts.next() != Some("v1") {
        return Err(Malformed("expected version v1"));
    }
    let mut field = |name: &'static str, err: &'static str| {
        parts
            .next()
            .and_then(|p| p.strip_prefix(name))
            .and_then(|p| p.strip_prefix('='))
            .ok_or(Malformed(err))
    };
    let ts = field("ts", "expected ts=")?;
    let kid = field("kid", "expected kid=")?;
    let sig = field("sig", "expected sig=")?;
    if parts.next().is_some() {
        return Err(Malformed("unexpected trailing fields"));
    }
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Malformed("ts is not unix seconds"));
    }
    let ts = ts.parse().map_err(|_| Malformed("ts is not unix seconds"))?;
    if !valid_key_id(kid) {
        return Err(Malformed("bad key id"));
    }
    let bytes = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Malformed("sig is not base64url"))?;
    let sig = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| Malformed("sig is not 32 bytes"))?;
    Ok(Parsed { ts, kid, sig })
}

/// Verify an origin request's auth header (`header` is `None` when absent).
/// Order of checks: well-formed, known key, signature, then time, so
/// `Expired` is only reported for authentic headers (clock skew).
pub fn verify_origin_request(
    keys: &Keyring,
    header: Option<&str>,
    method: &str,
    path_and_query: &str,
    host: &str,
    now_secs: u64,
    max_skew_secs: u64,
) -> Result<(), AuthError> {
    let p = parse(header.ok_or(AuthError::Missing)?)?;
    let key = keys.get(p.kid).ok_or_else(|| AuthError::UnknownKey(p.kid.to_owned()))?;
    let want = mac(&key.secret, p.ts, method, path_and_query, host);
    if !bool::from(want.ct_eq(&p.sig)) {
        return Err(AuthError::BadSignature);
    }
    if now_secs.abs_diff(p.ts) > max_skew_secs {
        return Err(AuthError::Expired { ts: p.ts, now: now_secs });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn key() -> SigningKey {
        SigningKey::new("k1", Secret::new(b"0123456789abcdef0123456789abcdef".to_vec()))
    }

    #[test]
    fn test_vector() {
        // Stage 1: the string to sign.
        let sts = string_to_sign(NOW, "GET", "/api/time?x=1", "Origin.Example.com");
        assert_eq!(sts, "1700000000\nGET\n/api/time?x=1\norigin.example.com");
        assert_eq!(string_to_sign(1, "GET", "", "h"), "1\nGET\n/\nh");
        // Stage 2: the MAC (RFC 4231 test case 2 checks the primitive).
        let rfc4231 = crate::sign::hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"]);
        assert_eq!(
            rfc4231.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Stage 3: the header.
        let v = sign_origin_request(&key(), "GET", "/api/time?x=1", "origin.example.com", NOW);
        let sig =
            URL_SAFE_NO_PAD.encode(mac(&key().secret, NOW, "GET", "/api/time?x=1", "origin.example.com"));
        assert_eq!(v, format!("v1,ts=1700000000,kid=k1,sig={sig}"));
        assert_eq!(sig.len(), 43);
        assert!(!sig.contains(['+', '/', '=']));
    }

    #[test]
    fn sign_verify_tamper_expiry() {
        let ring =
            Keyring::new([key(), SigningKey::new("k0", Secret::new(b"old-secret-old-secret".to_vec()))]);
        let v = sign_origin_request(&key(), "GET", "/a?b=1", "h.example", NOW);
        let verify = |hdr: Option<&str>, method: &str, pq: &str, host: &str, now: u64| {
            verify_origin_request(&ring, hdr, method, pq, host, now, 30)
        };
        let tampered_sig = {
            let (head, sig) = v.rsplit_once("sig=").unwrap();
            let flipped = if sig.starts_with('A') { "B" } else { "A" };
            format!("{head}sig={flipped}{}", &sig[1..])
        };
        let other_ts = v.replace("ts=1700000000", "ts=1700000001");
        let other_kid = v.replace("kid=k1", "kid=k0");
        type Case<'a> = (Option<&'a str>, &'a str, &'a str, &'a str, u64, Result<(), AuthError>);
        let cases: Vec<Case<'_>> = vec![
            (Some(&v), "GET", "/a?b=1", "h.example", NOW, Ok(())),
            (Some(&v), "GET", "/a?b=1", "H.EXAMPLE", NOW, Ok(())),
            (Some(&v), "GET", "/a?b=1", "h.example", NOW + 30, Ok(())),
            (Some(&v), "GET", "/a?b=1", "h.example", NOW - 30, Ok(())),
            (
                Some(&v),
                "GET",
                "/a?b=1",
                "h.example",
                NOW + 31,
                Err(AuthError::Expired { ts: NOW, now: NOW + 31 }),
            ),
            (
                Some(&v),
                "GET",
                "/a?b=1",
                "h.example",
                NOW - 31,
                Err(AuthError::Expired { ts: NOW, now: NOW - 31 }),
            ),
            (Some(&v), "POST", "/a?b=1", "h.example", NOW, Err(AuthError::BadSignature)),
            (Some(&v), "GET", "/a?b=2", "h.example", NOW, Err(AuthError::BadSignature)),
            (Some(&v), "GET", "/a", "h.example", NOW, Err(AuthError::BadSignature)),
            (Some(&v), "GET", "/a?b=1", "evil.example", NOW, Err(AuthError::BadSignature)),
            (Some(&tampered_sig), "GET", "/a?b=1", "h.example", NOW, Err(AuthError::BadSignature)),
            (Some(&other_ts), "GET", "/a?b=1", "h.example", NOW, Err(AuthError::BadSignature)),
            (Some(&other_kid), "GET", "/a?b=1", "h.example", NOW, Err(AuthError::BadSignature)),
            (None, "GET", "/a?b=1", "h.example", NOW, Err(AuthError::Missing)),
        ];
        for (hdr, m, pq, host, now, want) in cases {
            assert_eq!(verify(hdr, m, pq, host, now), want, "{hdr:?} {m} {pq} {host} {now}");
        }
        let unknown = v.replace("kid=k1", "kid=k9");
        assert_eq!(
            verify(Some(&unknown), "GET", "/a?b=1", "h.example", NOW),
            Err(AuthError::UnknownKey("k9".into()))
        );
    }

    #[test]
    fn malformed_headers() {
        let ring = Keyring::new([key()]);
        let good_sig = URL_SAFE_NO_PAD.encode([0u8; 32]);
        let long = "v1,".repeat(100);
        let cases = [
            "",
            "v2,ts=1,kid=k1,sig=x",
            "v1",
            "v1,ts=1",
            "v1,ts=1,kid=k1",
            "v1,kid=k1,ts=1,sig=x",
            "v1,ts=,kid=k1,sig=x",
            "v1,ts=-1,kid=k1,sig=x",
            "v1,ts=1e9,kid=k1,sig=x",
            "v1,ts=99999999999999999999,kid=k1,sig=x",
            "v1,ts=1,kid=,sig=x",
            "v1,ts=1,kid=k 1,sig=x",
            "v1,ts=1,kid=k1,sig=!!!",
            "v1,ts=1,kid=k1,sig=AAAA",
            "v1, ts=1,kid=k1,sig=x",
            long.as_str(),
        ];
        for c in cases {
            let got = verify_origin_request(&ring, Some(c), "GET", "/", "h", NOW, 30);
            assert!(matches!(got, Err(AuthError::Malformed(_))), "{c:?}: {got:?}");
        }
        let trailing = format!("v1,ts=1,kid=k1,sig={good_sig},x=1");
        assert_eq!(
            verify_origin_request(&ring, Some(&trailing), "GET", "/", "h", NOW, 30),
            Err(AuthError::Malformed("unexpected trailing fields"))
        );
        let padded = format!("v1,ts=1,kid=k1,sig={good_sig}=");
        assert!(matches!(
            verify_origin_request(&ring, Some(&padded), "GET", "/", "h", NOW, 30),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn secret_is_redacted() {
        let k = key();
        let dbg = format!("{k:?} {:?}", Keyring::new([k.clone()]));
        assert!(!dbg.contains("0123456789"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
        let e = AuthError::UnknownKey("k9".into()).to_string();
        assert_eq!(e, "origin auth: unknown key id \"k9\"");
    }
}
