//! Origin auth: only requests the edge signed get through.
//!
//! The edge adds `x-offload-auth: v1,ts=..,kid=..,sig=..` (HMAC-SHA256 over
//! ts, method, path-and-query and the lower-cased Host) to every origin
//! request; the format and the verifier live in
//! [`offload_core::route::auth`], which this module only wires into axum.
//!
//! When configured, every request except the `/_shim/*` control plane must
//! carry a valid header, `/healthz` included (the edge probes health through
//! the same signing). A refusal is `403` with
//! `{"error":"origin auth: <reason>","reason":"<kind>","status":403,"region":..}`,
//! where `<kind>` is one of `missing`, `malformed`, `unknown_key`,
//! `bad_signature`, `expired`. The secret never appears in responses, logs or
//! `Debug` output.

use std::fmt;

use axum::http::header::HOST;
use axum::http::{HeaderMap, HeaderName, Uri};
use offload_core::route::auth::{
    valid_key_id, verify_origin_request, AuthError, Keyring, Secret, SigningKey, DEFAULT_HEADER,
};

/// Environment variable the `origin-shim` binary reads the secret from
/// (one key, with `--auth-key-id`).
pub const SECRET_ENV: &str = "OFFLOAD_ORIGIN_AUTH_SECRET";
/// Environment variable holding several keys at once (rotation):
/// `kid=secret` entries separated by whitespace or newlines.
pub const KEYS_ENV: &str = "OFFLOAD_ORIGIN_AUTH_KEYS";
/// Default accepted clock skew, seconds (the edge's default validity).
pub const DEFAULT_MAX_SKEW_SECS: u64 = 30;
/// Largest accepted `max_skew_secs` (matches the edge's `validity_secs` range).
pub const MAX_SKEW_LIMIT_SECS: u64 = 3600;
/// Shortest accepted secret, bytes (matches the edge's config check).
pub const MIN_SECRET_LEN: usize = 16;

/// Verification settings: the keys, the header name and the allowed skew.
///
/// `Debug` is safe to print: the keyring redacts its secrets.
#[derive(Debug, Clone)]
pub struct OriginAuth {
    keyring: Keyring,
    header: HeaderName,
    max_skew_secs: u64,
}

/// A rejected origin-auth setting; names the setting, never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfigError {
    setting: &'static str,
    value: Option<String>,
    expected: &'static str,
}

impl AuthConfigError {
    /// Which setting was bad: `key_id`, `secret`, `header` or `max_skew_secs`.
    #[must_use]
    pub fn setting(&self) -> &'static str {
        self.setting
    }
    /// The rejected value, if it may be shown (never for the secret).
    #[must_use]
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
    /// What a valid value looks like.
    #[must_use]
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}

impl fmt::Display for AuthConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(f, "origin auth: {} {v:?}: {}", self.setting, self.expected),
            None => write!(f, "origin auth: {}: {}", self.setting, self.expected),
        }
    }
}

impl std::error::Error for AuthConfigError {}

impl OriginAuth {
    /// One key, the default header (`x-offload-auth`) and a 30 s skew.
    pub fn new(key_id: &str, secret: Secret) -> Result<Self, AuthConfigError> {
        if !valid_key_id(key_id) {
            return Err(AuthConfigError {
                setting: "key_id",
                value: Some(key_id.to_owned()),
                expected: "use 1-64 of [A-Za-z0-9._-]",
            });
        }
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthConfigError {
                setting: "secret",
                value: None,
                expected: "must be at least 16 bytes",
            });
        }
        Ok(Self {
            keyring: Keyring::new([SigningKey::new(key_id, secret)]),
            header: HeaderName::from_static(DEFAULT_HEADER),
            max_skew_secs: DEFAULT_MAX_SKEW_SECS,
        })
    }

    /// Several keys at once (during a rotation the edge signs with the
    /// new one while the old one still verifies). At least one.
    pub fn with_keys(keys: Vec<(String, Secret)>) -> Result<Self, AuthConfigError> {
        let first = keys.first().ok_or(AuthConfigError {
            setting: "keys",
            value: None,
            expected: "give at least one kid=secret entry",
        })?;
        let mut auth = Self::new(&first.0, first.1.clone())?;
        let mut ring = Vec::with_capacity(keys.len());
        for (i, (kid, secret)) in keys.iter().enumerate() {
            // Validates the id and the length like a single key.
            let _ = Self::new(kid, secret.clone())?;
            if keys[..i].iter().any(|(k, _)| k == kid) {
                return Err(AuthConfigError { setting: "key_id", value: Some(kid.clone()), expected: "listed twice" });
            }
            ring.push(SigningKey::new(kid.as_str(), secret.clone()));
        }
        auth.keyring = Keyring::new(ring);
        Ok(auth)
    }

    /// Reads the signature from `name` instead (lower-case header name).
    pub fn with_header(mut self, name: &str) -> Result<Self, AuthConfigError> {
        self.header = HeaderName::from_bytes(name.as_bytes())
            .ok()
            .filter(|h| h.as_str() == name)
            .ok_or_else(|| AuthConfigError {
                setting: "header",
                value: Some(name.to_owned()),
                expected: "expected a lower-case header name",
            })?;
        Ok(self)
    }

    /// Accepts timestamps up to `secs` away from the shim's clock (1..=3600).
    pub fn with_max_skew_secs(mut self, secs: u64) -> Result<Self, AuthConfigError> {
        if !(1..=MAX_SKEW_LIMIT_SECS).contains(&secs) {
            return Err(AuthConfigError {
                setting: "max_skew_secs",
                value: Some(secs.to_string()),
                expected: "expected 1..=3600",
            });
        }
        self.max_skew_secs = secs;
        Ok(self)
    }

    #[must_use]
    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    #[must_use]
    pub fn max_skew_secs(&self) -> u64 {
        self.max_skew_secs
    }

    /// Checks one request as received at `now_secs`.
    ///
    /// The signed host is the `Host` header as received (the URI authority for
    /// HTTP/2 requests without one); the signed target is the path and query
    /// exactly as received.
    pub fn verify(
        &self,
        method: &str,
        uri: &Uri,
        headers: &HeaderMap,
        now_secs: u64,
    ) -> Result<(), AuthError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => return Err(AuthError::Malformed("header repeated")),
            (Some(v), None) => Some(
                v.to_str()
                    .map_err(|_| AuthError::Malformed("header is not visible ASCII"))?,
            ),
        };
        let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .unwrap_or("");
        verify_origin_request(
            &self.keyring,
            value,
            method,
            path_and_query,
            host,
            now_secs,
            self.max_skew_secs,
        )
    }
}

/// A short machine-readable name for each refusal kind.
#[must_use]
pub fn reason(e: &AuthError) -> &'static str {
    match e {
        AuthError::Missing => "missing",
        AuthError::Malformed(_) => "malformed",
        AuthError::UnknownKey(_) => "unknown_key",
        AuthError::BadSignature => "bad_signature",
        AuthError::Expired { .. } => "expired",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use offload_core::route::auth::sign_origin_request;

    const SECRET: &[u8] = b"0123456789abcdef-test";
    const NOW: u64 = 1_700_000_000;

    fn auth() -> OriginAuth {
        OriginAuth::new("k1", Secret::new(SECRET.to_vec())).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn config_errors_name_the_setting_and_hide_the_secret() {
        let e = OriginAuth::new("k 1", Secret::new(SECRET.to_vec())).unwrap_err();
        assert_eq!(e.setting(), "key_id");
        assert!(e.to_string().contains("\"k 1\""), "{e}");
        let e = OriginAuth::new("k1", Secret::new(b"short-secret".to_vec())).unwrap_err();
        assert_eq!(e.setting(), "secret");
        assert!(!e.to_string().contains("short-secret"), "{e}");
        assert_eq!(
            auth().with_header("X-Auth").unwrap_err().setting(),
            "header"
        );
        assert_eq!(
            auth().with_max_skew_secs(0).unwrap_err().setting(),
            "max_skew_secs"
        );
        assert_eq!(
            auth().with_max_skew_secs(3601).unwrap_err().value(),
            Some("3601")
        );
        let dbg = format!("{:?}", auth());
        assert!(!dbg.contains("0123456789abcdef"), "{dbg}");
    }

    #[test]
    fn verifies_host_header_and_path_and_query() {
        let key = SigningKey::new("k1", Secret::new(SECRET.to_vec()));
        let sig = sign_origin_request(&key, "GET", "/api/x?a=1", "origin.test:8080", NOW);
        let uri: Uri = "/api/x?a=1".parse().unwrap();
        let a = auth();
        let ok = headers(&[("host", "Origin.Test:8080"), ("x-offload-auth", &sig)]);
        assert_eq!(a.verify("GET", &uri, &ok, NOW), Ok(()));
        let other_host = headers(&[("host", "evil.test"), ("x-offload-auth", &sig)]);
        assert_eq!(
            a.verify("GET", &uri, &other_host, NOW),
            Err(AuthError::BadSignature)
        );
        let twice = headers(&[
            ("host", "origin.test:8080"),
            ("x-offload-auth", &sig),
            ("x-offload-auth", &sig),
        ]);
        assert!(matches!(
            a.verify("GET", &uri, &twice, NOW),
            Err(AuthError::Malformed(_))
        ));
        let none = headers(&[("host", "origin.test:8080")]);
        assert_eq!(a.verify("GET", &uri, &none, NOW), Err(AuthError::Missing));
        // HTTP/2 style: no Host header, authority in the URI.
        let abs: Uri = "http://origin.test:8080/api/x?a=1".parse().unwrap();
        let h2 = headers(&[("x-offload-auth", &sig)]);
        assert_eq!(a.verify("GET", &abs, &h2, NOW), Ok(()));
    }
}
