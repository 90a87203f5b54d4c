//! Signed links verified at the edge.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(key, payload))`
//! (no padding), where the payload is
//! `v1|{kid}|{expires_at}|{client ip or empty}|{scope}`. The key id picks the
//! key out of a [`LinkKeySet`], so keys rotate by adding the new key,
//! issuing with it, and removing the old one after the longest link lifetime.
//! The MAC is checked in constant time before any claim is trusted.
//!
//! ```
//! use offload_core::sign::link::*;
//!
//! let key = LinkKey::new("k1", b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
//! let claims = Claims { expires_at: 1_000, scope: Scope::parse("/media/").unwrap(), client_ip: None };
//! let token = issue(&key, &claims).unwrap();
//! assert_eq!(verify(&key, "/media/a.mp4", None, &token, 999), Ok(claims.clone()));
//! assert_eq!(verify(&key, "/media/a.mp4", None, &token, 1_000), Err(LinkError::Expired { expired_at: 1_000 }));
//! ```

use std::fmt;
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::encode::hmac_sha256;

/// The query parameter that carries a token in a signed URL.
pub const TOKEN_PARAM: &str = "token";
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Shortest secret a [`LinkKey`] accepts.
pub const MIN_KEY_LEN: usize = 32;
const VERSION: &str = "v1";

/// Why a link is refused (verification) or cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of this format (bad base64, fields, lengths...).
    #[error("link: malformed token")]
    Malformed,
    /// The token names a key id this edge does not have.
    #[error("link: unknown key id {kid:?}")]
    UnknownKey { kid: String },
    /// The MAC does not match: tampered, or signed with another key.
    #[error("link: bad signature")]
    BadSignature,
    /// `now >= expires_at`.
    #[error("link: expired at {expired_at}")]
    Expired { expired_at: u64 },
    /// The request path is not covered by the token's scope.
    #[error("link: path {path:?} is outside the token's scope")]
    OutOfScope { path: String },
    /// The token is bound to another client IP (or none was given).
    #[error("link: token is bound to another client address")]
    WrongIp,
    /// Issuing: a claim or key is unusable.
    #[error("link: invalid {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
}

/// Which paths a token opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Exactly this path.
    Exact(String),
    /// Every path under this prefix (which ends with `/`).
    Prefix(String),
}

impl Scope {
    /// `/a/b` is exact, `/a/` a prefix. Must start with `/`, without dot
    /// segments, `\`, or control characters.
    pub fn parse(s: &str) -> Result<Self, LinkError> {
        let invalid = |reason| LinkError::Invalid {
            what: "scope",
            reason,
        };
        if !s.starts_with('/') {
            return Err(invalid("must start with '/'"));
        }
        if !path_is_plain(s) {
            return Err(invalid(
                "must not contain dot segments, '\\' or control characters",
            ));
        }
        Ok(if s.ends_with('/') {
            Scope::Prefix(s.to_owned())
        } else {
            Scope::Exact(s.to_owned())
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Scope::Exact(s) | Scope::Prefix(s) => s,
        }
    }

    /// Whether `path` (the raw request path) is inside this scope.
    pub fn allows(&self, path: &str) -> bool {
        if !path_is_plain(path) {
            return false;
        }
        match self {
            Scope::Exact(s) => s == path,
            Scope::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// No `.`/`..` segments (raw or `%2e`-encoded), no `\`, no control
/// characters: a prefix match on such a path cannot escape the prefix.
fn path_is_plain(path: &str) -> bool {
    if path.contains('\\') || path.chars().any(char::is_control) {
        return false;
    }
    let lowered = path.to_ascii_lowercase();
    let decoded_dots = lowered.replace("%2e", ".");
    !decoded_dots
        .split(['/', '?'])
        .any(|seg| seg == "." || seg == "..")
        && !lowered.contains("%2f")
        && !lowered.contains("%5c")
}

/// What a token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Unix seconds; valid while `now < expires_at`.
    pub expires_at: u64,
    pub scope: Scope,
    /// When set, only this client address may use the link.
    pub client_ip: Option<IpAddr>,
}

/// A link-signing key with its id. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey {
    id: String,
    secret: Vec<u8>,
}

impl LinkKey {
    /// `id`: 1..=32 of `A-Za-z0-9_-`; `secret`: at least 32 bytes.
    pub fn new(id: impl Into<String>, secret: Vec<u8>) -> Result<Self, LinkError> {
        let id = id.into();
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(LinkError::Invalid {
                what: "key id",
                reason: "must be 1..=32 of A-Za-z0-9_-",
            });
        }
        if secret.len() < MIN_KEY_LEN {
            return Err(LinkError::Invalid {
                what: "key",
                reason: "secret must be at least 32 bytes",
            });
        }
        Ok(Self { id, secret })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, payload: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.secret, &[b"offload-link\n", payload])
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkKey")
            .field("id", &self.id)
            .field("secret", &"** redacted **")
            .finish()
    }
}

/// Where verification finds the key a token names.
pub trait LinkKeys {
    fn find(&self, kid: &str) -> Option<&LinkKey>;
}

impl LinkKeys for LinkKey {
    fn find(&self, kid: &str) -> Option<&LinkKey> {
        (self.id == kid).then_some(self)
    }
}

/// The keys an edge accepts, and the one it issues with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkKeySet {
    keys: Vec<LinkKey>,
    current: usize,
}

impl LinkKeySet {
    /// `current` names the key used to issue; all keys verify.
    pub fn new(keys: Vec<LinkKey>, current: &str) -> Result<Self, LinkError> {
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|other| other.id == k.id) {
                return Err(LinkError::Invalid {
                    what: "key set",
                    reason: "duplicate key id",
                });
            }
        }
        let current = keys
            .iter()
            .position(|k| k.id == current)
            .ok_or(LinkError::Invalid {
                what: "key set",
                reason: "current key id is not in the set",
            })?;
        Ok(Self { keys, current })
    }

    /// The key new links are issued with.
    pub fn current(&self) -> Option<&LinkKey> {
        self.keys.get(self.current)
    }
}

impl LinkKeys for LinkKeySet {
    fn find(&self, kid: &str) -> Option<&LinkKey> {
        self.keys.iter().find(|k| k.id == kid)
    }
}

/// Issues a token for `claims`, signed with `key`.
pub fn issue(key: &LinkKey, claims: &Claims) -> Result<String, LinkError> {
    // Re-validate: a Scope built by hand may be anything.
    let checked = Scope::parse(claims.scope.as_str())?;
    if checked != claims.scope {
        return Err(LinkError::Invalid {
            what: "scope",
            reason: "Exact must not end with '/', Prefix must",
        });
    }
    let ip = claims
        .client_ip
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_default();
    let payload = format!(
        "{VERSION}|{}|{}|{ip}|{}",
        key.id,
        claims.expires_at,
        claims.scope.as_str()
    );
    let token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(key.mac(payload.as_bytes()))
    );
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Invalid {
            what: "scope",
            reason: "too long for a token",
        });
    }
    Ok(token)
}

/// `path?token=...`: a signed URL path for `claims.scope` when it is exact,
/// else for `path` (which must be inside the scope).
pub fn issue_url(key: &LinkKey, claims: &Claims, path: &str) -> Result<String, LinkError> {
    if !claims.scope.allows(path) {
        return Err(LinkError::OutOfScope {
            path: path.to_owned(),
        });
    }
    let token = issue(key, claims)?;
    let sep = if path.contains('?') { '&' } else { '?' };
    Ok(format!("{path}{sep}{TOKEN_PARAM}={token}"))
}

/// The token in a raw query string (`a=1&token=...`), if any. Tokens are
/// base64url, so no decoding is needed.
pub fn token_from_query(query: &str) -> Option<&str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(TOKEN_PARAM)?.strip_prefix('='))
}

/// Verifies `token` for a request of `path` from `client_ip` at `now` (unix
/// seconds). Checks, in order: format, key id, MAC (constant time), expiry,
/// scope, client address.
pub fn verify(
    keys: &impl LinkKeys,
    path: &str,
    client_ip: Option<IpAddr>,
    token: &str,
    now: u64,
) -> Result<Claims, LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Malformed);
    }
    let (payload_b64, mac_b64) = token.split_once('.').ok_or(LinkError::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| LinkError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| LinkError::Malformed)?;
    if mac.len() != 32 {
        return Err(LinkError::Malformed);
    }
    let text = std::str::from_utf8(&payload).map_err(|_| LinkError::Malformed)?;
    let mut fields = text.splitn(5, '|');
    let (Some(version), Some(kid), Some(exp), Some(ip), Some(scope)) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(LinkError::Malformed);
    };
    if version != VERSION {
        return Err(LinkError::Malformed);
    }
    let key = keys.find(kid).ok_or_else(|| LinkError::UnknownKey {
        kid: kid.chars().take(32).collect(),
    })?;
    let expected = key.mac(&payload);
    if !bool::from(expected.ct_eq(mac.as_slice())) {
        return Err(LinkError::BadSignature);
    }
    // Authentic from here on; still parse defensively.
    if exp.is_empty() || !exp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LinkError::Malformed);
    }
    let expires_at: u64 = exp.parse().map_err(|_| LinkError::Malformed)?;
    let bound_ip = if ip.is_empty() {
        None
    } else {
        Some(ip.parse::<IpAddr>().map_err(|_| LinkError::Malformed)?)
    };
    let scope = Scope::parse(scope).map_err(|_| LinkError::Malformed)?;
    if now >= expires_at {
        return Err(LinkError::Expired {
            expired_at: expires_at,
        });
    }
    if !scope.allows(path) {
        return Err(LinkError::OutOfScope {
            path: path.chars().take(256).collect(),
        });
    }
    if let Some(bound) = bound_ip {
        match client_ip {
            Some(ip) if ip.to_canonical() == bound.to_canonical() => {}
            _ => return Err(LinkError::WrongIp),
        }
    }
    Ok(Claims {
        expires_at,
        scope,
        client_ip: bound_ip,
    })
}
