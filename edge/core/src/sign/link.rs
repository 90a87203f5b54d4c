//! Tokens with a purpose: signed links and presign grants, verified at the
//! edge.
//!
//! A token is `base64url(payload) "." base64url(MAC)` (no padding, canonical
//! base64url: no stray trailing bits), at most [`MAX_TOKEN_LEN`] bytes. The
//! payload is printable ASCII, `|`-separated fields, version 2:
//!
//! ```text
//! link:    v2|link|{kid}|{expires_at}|{ip}|{methods}|{scope}
//! presign: v2|presign|{kid}|{expires_at}|{ip}|{methods}|{bucket}|{key|prefix}|{key}|{max_length}|{types}|{max_expires}
//! ```
//!
//! - `audience` (`link` or `presign`) says what the token is for: a
//!   download link for a `signed_links` route ([`verify_link`]) or a grant
//!   for the presign endpoint ([`verify_grant`]). The MAC is domain
//!   separated per audience: `HMAC-SHA256(key, "offload-link-v2\n" payload)`
//!   or `HMAC-SHA256(key, "offload-presign-v2\n" payload)`, so a token of
//!   one audience can never verify as the other, even if a parser were
//!   confused about the audience field.
//! - `methods`: a comma-separated list (`GET,HEAD`), in the order
//!   GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS. Links default to
//!   `GET,HEAD`; grants allow a subset of `GET,HEAD,PUT`.
//! - `ip`: empty, or the only client address that may use the token.
//! - String fields (`scope`, `bucket`, `key`) are escaped: `%`, `|`, space,
//!   control and non-ASCII bytes are written `%XX` (upper-case hex), every
//!   other byte as itself, so a `|` in a value can never shift a field and
//!   each value has exactly one spelling.
//! - Grants carry their limits: `max_length` (bytes, required when PUT is
//!   allowed, empty otherwise), `types` (allowed content types, `image/png`,
//!   `image/*` or `*/*`; required when PUT is allowed, empty otherwise),
//!   `max_expires` (the longest presigned URL lifetime, seconds).
//!
//! Version 1 tokens (`v1|kid|exp|ip|scope`, one MAC for every purpose) are
//! refused with [`LinkError::RetiredVersion`]: they carried no audience, so
//! any link whose scope happened to cover `/_presign/...` was an upload
//! grant. Reissue them.
//!
//! The key id picks the key out of a [`LinkKeySet`], so keys rotate by
//! adding the new key, issuing with it, and removing the old one after the
//! longest token lifetime. Verification parses every field first (bad
//! syntax is [`LinkError::Malformed`] whoever signed it), then finds the key,
//! checks the MAC in constant time, and only then looks at the claims.
//!
//! ```
//! use offload_core::sign::link::*;
//!
//! let key = LinkKey::new("k1", b"0123456789abcdef0123456789abcdef".to_vec()).unwrap();
//! let claims = LinkClaims::new(Scope::parse("/media/").unwrap(), 1_000);
//! let token = issue_link(&key, &claims).unwrap();
//! assert_eq!(verify_link(&key, "/media/a.mp4", "GET", None, &token, 999), Ok(claims.clone()));
//! assert_eq!(verify_link(&key, "/media/a.mp4", "GET", None, &token, 1_000), Err(LinkError::Expired { expired_at: 1_000 }));
//! assert!(matches!(verify_link(&key, "/media/a.mp4", "DELETE", None, &token, 999), Err(LinkError::MethodNotAllowed { .. })));
//! ```

use std::fmt::{self, Write as _};
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::encode::{hmac_key, hmac_with, HmacSha256};
use super::presign::PresignMethod;

/// The query parameter that carries a token in a signed URL.
pub const TOKEN_PARAM: &str = "token";
/// Tokens longer than this are refused unread.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Shortest secret a [`LinkKey`] accepts.
pub const MIN_KEY_LEN: usize = 32;
/// Latest `expires_at` a token may carry (15 digits: exact in JavaScript
/// numbers, so the CloudFront Function reads it as Rust does).
pub const MAX_EXPIRES_AT: u64 = 999_999_999_999_999;
/// Longest presigned URL lifetime a grant may allow (S3's limit: 7 days).
pub const MAX_GRANT_EXPIRES: u64 = 604_800;
/// Longest object key or key prefix (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// The token format version this edge issues and accepts (the payload's
/// first field).
pub const VERSION: &str = "v2";
/// The version refused with [`LinkError::RetiredVersion`].
pub const RETIRED_VERSION: &str = "v1";
/// Number of `|`-separated fields in a download link's payload.
pub const LINK_FIELDS: usize = 7;
const PRESIGN_FIELDS: usize = 12;

/// Why a token is refused (verification) or cannot be issued. Messages name
/// what was wrong and never contain a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token of this format (bad base64, fields, lengths...).
    #[error("token: malformed token ({what})")]
    Malformed { what: &'static str },
    /// A version 1 token: no audience, so no longer accepted.
    #[error("token: token version v1 is no longer accepted; reissue")]
    RetiredVersion,
    /// A link presented as a presign grant, or the other way round.
    #[error("token: wrong audience: this is a {found} token, {expected} expected")]
    WrongAudience {
        expected: Audience,
        found: Audience,
    },
    /// The token names a key id this edge does not have.
    #[error("token: unknown key id {kid:?}")]
    UnknownKey { kid: String },
    /// The MAC does not match: tampered, or signed with another key.
    #[error("token: bad signature")]
    BadSignature,
    /// `now >= expires_at`.
    #[error("token: expired at {expired_at}")]
    Expired { expired_at: u64 },
    /// The request's method is not one the token allows.
    #[error("token: method {method} is not allowed (allowed: {allowed})")]
    MethodNotAllowed { method: String, allowed: Methods },
    /// The request path is not covered by the link's scope.
    #[error("token: path {path:?} is outside the token's scope")]
    OutOfScope { path: String },
    /// The token is bound to another client IP (or none was given).
    #[error("token: token is bound to another client address")]
    WrongIp,
    /// A grant used for another bucket.
    #[error("token: bucket {bucket:?} is not the grant's bucket")]
    WrongBucket { bucket: String },
    /// A grant used for a key outside its key or prefix.
    #[error("token: key {key:?} is outside the grant's key scope")]
    KeyOutOfScope { key: String },
    /// An upload without a content length.
    #[error("token: an upload needs content_length")]
    LengthRequired,
    /// An upload larger than the grant allows.
    #[error("token: content_length {length} is larger than the grant's {max}")]
    TooLarge { length: u64, max: u64 },
    /// An upload without a content type.
    #[error("token: an upload needs content_type")]
    ContentTypeRequired,
    /// An upload of a type the grant does not allow.
    #[error("token: content_type {content_type:?} is not allowed (allowed: {allowed})")]
    ContentTypeNotAllowed {
        content_type: String,
        allowed: String,
    },
    /// A presigned URL lifetime longer than the grant allows.
    #[error("token: expires {requested} s is longer than the grant's {max} s")]
    ExpiresTooLong { requested: u64, max: u64 },
    /// Issuing: a claim or key is unusable.
    #[error("token: invalid {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
}

impl LinkError {
    /// A short, stable reason for a refused link: exactly the text the
    /// generated CloudFront Function gives for the same token (so the
    /// platforms can be compared; see `tests/cloudfront-function/`).
    pub fn reason(&self) -> &'static str {
        match self {
            LinkError::Malformed { .. } => "malformed token",
            LinkError::RetiredVersion => "token version v1 is no longer accepted; reissue",
            LinkError::WrongAudience { .. } => "wrong audience",
            LinkError::UnknownKey { .. } => "unknown key id",
            LinkError::BadSignature => "bad signature",
            LinkError::Expired { .. } => "expired",
            LinkError::MethodNotAllowed { .. } => "method not allowed",
            LinkError::OutOfScope { .. } => "outside the token scope",
            LinkError::WrongIp => "bound to another client address",
            LinkError::WrongBucket { .. } => "wrong bucket",
            LinkError::KeyOutOfScope { .. } => "key outside the grant",
            LinkError::LengthRequired => "content length required",
            LinkError::TooLarge { .. } => "too large",
            LinkError::ContentTypeRequired => "content type required",
            LinkError::ContentTypeNotAllowed { .. } => "content type not allowed",
            LinkError::ExpiresTooLong { .. } => "expires too long",
            LinkError::Invalid { .. } => "invalid claims",
        }
    }

    /// The presign request field a grant refusal is about (`authorization`
    /// when it is the token itself).
    pub fn field(&self) -> &'static str {
        match self {
            LinkError::MethodNotAllowed { .. } => "method",
            LinkError::WrongBucket { .. } => "bucket",
            LinkError::KeyOutOfScope { .. } => "key",
            LinkError::LengthRequired | LinkError::TooLarge { .. } => "content_length",
            LinkError::ContentTypeRequired | LinkError::ContentTypeNotAllowed { .. } => {
                "content_type"
            }
            LinkError::ExpiresTooLong { .. } => "expires",
            _ => "authorization",
        }
    }
}

fn malformed(what: &'static str) -> LinkError {
    LinkError::Malformed { what }
}

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Audience {
    /// A download link for a `signed_links` route.
    Link,
    /// A grant for the presign endpoint.
    Presign,
}

impl Audience {
    pub fn as_str(self) -> &'static str {
        match self {
            Audience::Link => "link",
            Audience::Presign => "presign",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "link" => Some(Audience::Link),
            "presign" => Some(Audience::Presign),
            _ => None,
        }
    }
    /// The MAC's domain-separation prefix.
    pub fn mac_prefix(self) -> &'static [u8] {
        match self {
            Audience::Link => b"offload-link-v2\n",
            Audience::Presign => b"offload-presign-v2\n",
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The methods a token may name, in their canonical order.
pub const METHOD_NAMES: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A set of HTTP methods a token allows.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Methods(u8);

impl Methods {
    pub const GET: Methods = Methods(1);
    pub const HEAD: Methods = Methods(1 << 1);
    pub const POST: Methods = Methods(1 << 2);
    pub const PUT: Methods = Methods(1 << 3);
    pub const PATCH: Methods = Methods(1 << 4);
    pub const DELETE: Methods = Methods(1 << 5);
    pub const OPTIONS: Methods = Methods(1 << 6);
    /// Every method a link may allow.
    pub const ALL: Methods = Methods(0x7f);
    /// What a link allows unless told otherwise: `GET,HEAD`.
    pub const READ: Methods = Methods(0b11);
    /// Everything a presign grant may allow: `GET,HEAD,PUT`.
    pub const PRESIGNABLE: Methods = Methods(0b1011);

    pub fn union(self, other: Methods) -> Methods {
        Methods(self.0 | other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    /// Whether every method of `self` is in `other`.
    pub fn is_subset_of(self, other: Methods) -> bool {
        self.0 & !other.0 == 0
    }
    /// Whether `method` (case-sensitive, as HTTP methods are) is allowed.
    pub fn allows(self, method: &str) -> bool {
        Self::one(method).is_some_and(|m| m.0 & self.0 != 0)
    }
    /// The set holding just `method`, if it is one a token can name.
    pub fn one(method: &str) -> Option<Methods> {
        METHOD_NAMES
            .iter()
            .position(|m| *m == method)
            .map(|i| Methods(1 << i))
    }
    /// The presign operation's method.
    pub fn of_presign(m: PresignMethod) -> Methods {
        match m {
            PresignMethod::Get => Methods::GET,
            PresignMethod::Head => Methods::HEAD,
            PresignMethod::Put => Methods::PUT,
        }
    }
    /// `GET,HEAD` (any order, no repeats; case-insensitive for people,
    /// canonical upper case in tokens).
    pub fn parse_list(s: &str) -> Result<Methods, LinkError> {
        let mut set = Methods(0);
        for name in s.split(',') {
            let m = Self::one(&name.trim().to_ascii_uppercase()).ok_or(LinkError::Invalid {
                what: "methods",
                reason: "each must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS",
            })?;
            if m.0 & set.0 != 0 {
                return Err(LinkError::Invalid {
                    what: "methods",
                    reason: "a method is listed twice",
                });
            }
            set = set.union(m);
        }
        Ok(set)
    }
    /// Strict token form: canonical names, no repeats, at least one.
    fn parse_token_field(s: &str) -> Option<Methods> {
        let mut set = Methods(0);
        for name in s.split(',') {
            let m = Self::one(name)?;
            if m.0 & set.0 != 0 {
                return None;
            }
            set = set.union(m);
        }
        Some(set)
    }
}

impl fmt::Display for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (i, name) in METHOD_NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                if !first {
                    f.write_char(',')?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Methods {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Methods({self})")
    }
}

/// Which paths a link opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Exactly this path.
    Exact(String),
    /// Every path under this prefix (which ends with `/`).
    Prefix(String),
}

impl Scope {
    /// `/a/b` is exact, `/a/` a prefix. A path as sent on the wire: must
    /// start with `/`, printable ASCII without spaces, without dot
    /// segments, `%2f`, `%5c` or `\`.
    pub fn parse(s: &str) -> Result<Self, LinkError> {
        let invalid = |reason| LinkError::Invalid {
            what: "scope",
            reason,
        };
        if !s.starts_with('/') {
            return Err(invalid("must start with '/'"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "must be printable ASCII without spaces (percent-encode the rest)",
            ));
        }
        if !path_is_plain(s) {
            return Err(invalid("must not contain dot segments, '\\', %2f or %5c"));
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

    /// Whether `path` (the request path) is inside this scope.
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

/// Whether an object key is safe to presign under a prefix: no control
/// characters and no `.`/`..` segments (which clients and proxies may
/// resolve, escaping the prefix). Not empty, at most 1024 bytes.
pub fn key_is_plain(key: &str) -> bool {
    !key.is_empty() && prefix_is_plain(key)
}

/// [`key_is_plain`] for a prefix, which may be empty.
fn prefix_is_plain(prefix: &str) -> bool {
    prefix.len() <= MAX_KEY_LEN
        && !prefix.chars().any(char::is_control)
        && !prefix.split('/').any(|seg| seg == "." || seg == "..")
}

/// What a download link grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkClaims {
    /// Unix seconds; valid while `now < expires_at`.
    pub expires_at: u64,
    pub scope: Scope,
    /// When set, only this client address may use the link.
    pub client_ip: Option<IpAddr>,
    /// The request methods the link opens (default `GET,HEAD`).
    pub methods: Methods,
}

impl LinkClaims {
    /// A `GET,HEAD` link for anyone.
    pub fn new(scope: Scope, expires_at: u64) -> Self {
        Self {
            expires_at,
            scope,
            client_ip: None,
            methods: Methods::READ,
        }
    }
}

/// Which object keys a grant covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyScope {
    /// Exactly this key.
    Exact(String),
    /// Every key starting with this prefix (any string; `""` is the whole
    /// bucket).
    Prefix(String),
}

impl KeyScope {
    fn check(&self) -> Result<(), LinkError> {
        let invalid = |reason| LinkError::Invalid { what: "key", reason };
        match self {
            KeyScope::Exact(k) if !key_is_plain(k) => Err(invalid(
                "must be 1..=1024 bytes without control characters or dot segments",
            )),
            KeyScope::Prefix(p) if !prefix_is_plain(p) => Err(invalid(
                "prefix must be at most 1024 bytes without control characters or dot segments",
            )),
            _ => Ok(()),
        }
    }
    /// Whether `key` is inside this scope (and plain, see [`key_is_plain`]).
    pub fn allows(&self, key: &str) -> bool {
        key_is_plain(key)
            && match self {
                KeyScope::Exact(k) => k == key,
                KeyScope::Prefix(p) => key.starts_with(p.as_str()),
            }
    }
}

/// An allowed content type: `type/subtype`, `type/*` or `*/*`, compared
/// without parameters and case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContentTypePattern(String);

/// RFC 6838 restricted-name characters.
fn is_media_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 127
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
}

impl ContentTypePattern {
    pub fn parse(s: &str) -> Result<Self, LinkError> {
        let lowered = s.trim().to_ascii_lowercase();
        let ok = match lowered.split_once('/') {
            Some(("*", "*")) => true,
            Some((t, "*")) => is_media_name(t),
            Some((t, sub)) => is_media_name(t) && is_media_name(sub),
            None => false,
        };
        if ok {
            Ok(Self(lowered))
        } else {
            Err(LinkError::Invalid {
                what: "content type",
                reason: "must be type/subtype, type/* or */* (letters, digits, !#$&-^_.+)",
            })
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether a `Content-Type` value (parameters allowed) matches.
    pub fn allows(&self, content_type: &str) -> bool {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((t, sub)) = media.split_once('/') else {
            return false;
        };
        if !is_media_name(t) || !is_media_name(sub) {
            return false;
        }
        match self.0.split_once('/') {
            Some(("*", "*")) => true,
            Some((pt, "*")) => pt == t,
            _ => self.0 == media,
        }
    }
}

/// What a presign grant allows: the app's permission for one bucket, a key
/// or key prefix, some methods, and upload limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantClaims {
    /// Unix seconds; the grant can be used while `now < expires_at`.
    pub expires_at: u64,
    /// When set, only this client address may use the grant.
    pub client_ip: Option<IpAddr>,
    /// A non-empty subset of `GET,HEAD,PUT`.
    pub methods: Methods,
    /// The bucket alias (`[buckets.<alias>]`).
    pub bucket: String,
    pub keys: KeyScope,
    /// Largest upload, bytes. Required when PUT is allowed, else `None`.
    pub max_content_length: Option<u64>,
    /// Allowed upload types. Required when PUT is allowed, else empty.
    pub content_types: Vec<ContentTypePattern>,
    /// Longest presigned URL lifetime, seconds (1..=604800).
    pub max_expires: u64,
}

/// A request to the presign endpoint, as a grant sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRequest<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub method: PresignMethod,
    pub content_length: Option<u64>,
    pub content_type: Option<&'a str>,
    /// Presigned URL lifetime asked for, seconds.
    pub expires: u64,
}

/// A link-signing key with its id. `Debug` never shows the secret.
#[derive(Clone)]
pub struct LinkKey {
    id: String,
    secret: Vec<u8>,
    /// `secret` as HMAC states, so a MAC costs the message only.
    state: HmacSha256,
}

impl PartialEq for LinkKey {
    fn eq(&self, other: &Self) -> bool {
        // `state` is a function of `secret`.
        self.id == other.id && self.secret == other.secret
    }
}

impl Eq for LinkKey {}

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
        let state = hmac_key(&[&secret]);
        Ok(Self { id, secret, state })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    fn mac(&self, audience: Audience, payload: &[u8]) -> [u8; 32] {
        hmac_with(&self.state, &[audience.mac_prefix(), payload])
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

    /// The key new tokens are issued with.
    pub fn current(&self) -> Option<&LinkKey> {
        self.keys.get(self.current)
    }
}

impl LinkKeys for LinkKeySet {
    fn find(&self, kid: &str) -> Option<&LinkKey> {
        self.keys.iter().find(|k| k.id == kid)
    }
}

// ----- field encoding -----

/// Whether a byte is written `%XX` in a string field.
fn needs_escape(b: u8) -> bool {
    b == b'%' || b == b'|' || !b.is_ascii_graphic()
}

fn push_escaped(out: &mut String, s: &str) {
    for &b in s.as_bytes() {
        if needs_escape(b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            out.push(char::from(b));
        }
    }
}

/// The inverse of [`push_escaped`], strict: only upper-case `%XX` of a byte
/// that must be escaped, and the result must be UTF-8.
fn unescape(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        if b != b'%' {
            bytes.push(b);
            continue;
        }
        let hex = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        };
        let v = hex(it.next()?)? << 4 | hex(it.next()?)?;
        if !needs_escape(v) {
            return None;
        }
        bytes.push(v);
    }
    String::from_utf8(bytes).ok()
}

/// 1..=`max_digits` decimal digits, at most `max`.
fn parse_number(s: &str, max_digits: usize, max: u64) -> Option<u64> {
    if s.is_empty() || s.len() > max_digits || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok().filter(|n| *n <= max)
}

fn parse_ip(s: &str) -> Option<Option<IpAddr>> {
    if s.is_empty() {
        Some(None)
    } else {
        s.parse::<IpAddr>().ok().map(Some)
    }
}

/// The fields every token shares after the key id.
struct Common {
    expires_at: u64,
    client_ip: Option<IpAddr>,
    methods: Methods,
}

fn push_common(out: &mut String, key: &LinkKey, audience: Audience, c: &Common) {
    let ip = c
        .client_ip
        .map(|ip| ip.to_canonical().to_string())
        .unwrap_or_default();
    let _ = write!(
        out,
        "{VERSION}|{audience}|{}|{}|{ip}|{}",
        key.id, c.expires_at, c.methods
    );
}

fn check_common(c: &Common, allowed: Methods) -> Result<(), LinkError> {
    if c.expires_at > MAX_EXPIRES_AT {
        return Err(LinkError::Invalid {
            what: "expires_at",
            reason: "must be at most 15 digits",
        });
    }
    if c.methods.is_empty() || !c.methods.is_subset_of(allowed) {
        return Err(LinkError::Invalid {
            what: "methods",
            reason: if allowed == Methods::PRESIGNABLE {
                "a grant allows a non-empty subset of GET, HEAD, PUT"
            } else {
                "must not be empty"
            },
        });
    }
    Ok(())
}

/// Signs `payload` for `audience`: the token.
fn seal(key: &LinkKey, audience: Audience, payload: &str) -> Result<String, LinkError> {
    let token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(payload.as_bytes()),
        URL_SAFE_NO_PAD.encode(key.mac(audience, payload.as_bytes()))
    );
    if token.len() > MAX_TOKEN_LEN {
        return Err(LinkError::Invalid {
            what: "claims",
            reason: "too long for a token (4096 bytes)",
        });
    }
    Ok(token)
}

/// Signs an arbitrary payload as a token of `audience`. For tests and
/// tooling that need authentic tokens with odd claims (verification still
/// validates every field); applications use [`issue_link`] and
/// [`issue_grant`].
pub fn seal_raw(key: &LinkKey, audience: Audience, payload: &str) -> Result<String, LinkError> {
    seal(key, audience, payload)
}

/// Checks the envelope: length, base64url, MAC length, printable ASCII.
/// Returns the payload and the MAC, not yet authenticated.
fn open(token: &str) -> Result<(Vec<u8>, Vec<u8>), LinkError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(malformed("longer than 4096 bytes"));
    }
    let (payload_b64, mac_b64) = token.split_once('.').ok_or(malformed("no '.'"))?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| malformed("payload is not base64url"))?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| malformed("MAC is not base64url"))?;
    if mac.len() != 32 {
        return Err(malformed("MAC is not 32 bytes"));
    }
    if !payload.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(malformed("payload is not printable ASCII"));
    }
    Ok((payload, mac))
}

fn split_fields(payload: &[u8], expected: Audience) -> Result<Vec<&str>, LinkError> {
    let text = std::str::from_utf8(payload).map_err(|_| malformed("payload is not ASCII"))?;
    let fields: Vec<&str> = text.split('|').collect();
    match fields.first().copied() {
        Some(RETIRED_VERSION) => return Err(LinkError::RetiredVersion),
        Some(VERSION) => {}
        _ => return Err(malformed("unknown version")),
    }
    let found = fields
        .get(1)
        .and_then(|a| Audience::parse(a))
        .ok_or(malformed("unknown audience"))?;
    if found != expected {
        return Err(LinkError::WrongAudience { expected, found });
    }
    let want = match expected {
        Audience::Link => LINK_FIELDS,
        Audience::Presign => PRESIGN_FIELDS,
    };
    if fields.len() != want {
        return Err(malformed("wrong number of fields"));
    }
    Ok(fields)
}

fn parse_common(fields: &[&str]) -> Result<Common, LinkError> {
    let (Some(exp), Some(ip), Some(methods)) = (fields.get(3), fields.get(4), fields.get(5)) else {
        return Err(malformed("wrong number of fields"));
    };
    Ok(Common {
        expires_at: parse_number(exp, 15, MAX_EXPIRES_AT).ok_or(malformed("expires_at"))?,
        client_ip: parse_ip(ip).ok_or(malformed("client address"))?,
        methods: Methods::parse_token_field(methods).ok_or(malformed("methods"))?,
    })
}

/// Finds the key and checks the MAC in constant time.
fn authenticate(
    keys: &impl LinkKeys,
    audience: Audience,
    kid: &str,
    payload: &[u8],
    mac: &[u8],
) -> Result<(), LinkError> {
    let key = keys.find(kid).ok_or_else(|| LinkError::UnknownKey {
        kid: kid.chars().take(32).collect(),
    })?;
    let expected = key.mac(audience, payload);
    if bool::from(expected.ct_eq(mac)) {
        Ok(())
    } else {
        Err(LinkError::BadSignature)
    }
}

fn check_ip(bound: Option<IpAddr>, client: Option<IpAddr>) -> Result<(), LinkError> {
    match (bound, client) {
        (None, _) => Ok(()),
        (Some(b), Some(c)) if b.to_canonical() == c.to_canonical() => Ok(()),
        _ => Err(LinkError::WrongIp),
    }
}

fn check_method(methods: Methods, method: &str) -> Result<(), LinkError> {
    if methods.allows(method) {
        Ok(())
    } else {
        Err(LinkError::MethodNotAllowed {
            method: method.chars().take(16).collect(),
            allowed: methods,
        })
    }
}

// ----- links -----

/// Issues a download link token for `claims`, signed with `key`.
pub fn issue_link(key: &LinkKey, claims: &LinkClaims) -> Result<String, LinkError> {
    // Re-validate: a Scope built by hand may be anything.
    let checked = Scope::parse(claims.scope.as_str())?;
    if checked != claims.scope {
        return Err(LinkError::Invalid {
            what: "scope",
            reason: "Exact must not end with '/', Prefix must",
        });
    }
    let common = Common {
        expires_at: claims.expires_at,
        client_ip: claims.client_ip,
        methods: claims.methods,
    };
    check_common(&common, Methods::ALL)?;
    let mut payload = String::with_capacity(64 + claims.scope.as_str().len());
    push_common(&mut payload, key, Audience::Link, &common);
    payload.push('|');
    push_escaped(&mut payload, claims.scope.as_str());
    seal(key, Audience::Link, &payload)
}

/// `path?token=...`: a signed URL path for `path`, which must be inside
/// the link's scope.
pub fn issue_link_url(key: &LinkKey, claims: &LinkClaims, path: &str) -> Result<String, LinkError> {
    let bare = path.split_once('?').map_or(path, |(p, _)| p);
    if !claims.scope.allows(bare) {
        return Err(LinkError::OutOfScope {
            path: path.to_owned(),
        });
    }
    let token = issue_link(key, claims)?;
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

/// Verifies a download link `token` for a `method` request of `path` from
/// `client_ip` at `now` (unix seconds). Checks, in order: format (every
/// field), version, audience, key id, MAC (constant time), expiry, method,
/// scope, client address. Only `link` tokens pass.
pub fn verify_link(
    keys: &impl LinkKeys,
    path: &str,
    method: &str,
    client_ip: Option<IpAddr>,
    token: &str,
    now: u64,
) -> Result<LinkClaims, LinkError> {
    let (payload, mac) = open(token)?;
    let fields = split_fields(&payload, Audience::Link)?;
    let common = parse_common(&fields)?;
    let scope = fields
        .get(6)
        .and_then(|s| unescape(s))
        .and_then(|s| Scope::parse(&s).ok())
        .ok_or(malformed("scope"))?;
    authenticate(keys, Audience::Link, fields[2], &payload, &mac)?;
    if now >= common.expires_at {
        return Err(LinkError::Expired {
            expired_at: common.expires_at,
        });
    }
    check_method(common.methods, method)?;
    if !scope.allows(path) {
        return Err(LinkError::OutOfScope {
            path: path.chars().take(256).collect(),
        });
    }
    check_ip(common.client_ip, client_ip)?;
    Ok(LinkClaims {
        expires_at: common.expires_at,
        scope,
        client_ip: common.client_ip,
        methods: common.methods,
    })
}

// ----- presign grants -----

fn check_grant(claims: &GrantClaims) -> Result<(), LinkError> {
    let invalid = |what, reason| Err(LinkError::Invalid { what, reason });
    if claims.bucket.is_empty()
        || claims.bucket.len() > 128
        || claims.bucket.chars().any(char::is_control)
    {
        return invalid("bucket", "must be 1..=128 bytes without control characters");
    }
    claims.keys.check()?;
    let put = claims.methods.allows("PUT");
    match (put, claims.max_content_length, claims.content_types.is_empty()) {
        (true, Some(_), false) | (false, None, true) => {}
        (true, None, _) => return invalid("max_content_length", "required when PUT is allowed"),
        (true, _, true) => return invalid("content_types", "required when PUT is allowed (*/* for any)"),
        (false, _, _) => {
            return invalid("limits", "max_content_length and content_types are for grants that allow PUT")
        }
    }
    if !(1..=MAX_GRANT_EXPIRES).contains(&claims.max_expires) {
        return invalid("max_expires", "must be 1..=604800 seconds");
    }
    Ok(())
}

/// Issues a presign grant for `claims`, signed with `key`.
pub fn issue_grant(key: &LinkKey, claims: &GrantClaims) -> Result<String, LinkError> {
    let common = Common {
        expires_at: claims.expires_at,
        client_ip: claims.client_ip,
        methods: claims.methods,
    };
    check_common(&common, Methods::PRESIGNABLE)?;
    check_grant(claims)?;
    for t in &claims.content_types {
        ContentTypePattern::parse(t.as_str())?;
    }
    let mut payload = String::with_capacity(128);
    push_common(&mut payload, key, Audience::Presign, &common);
    payload.push('|');
    push_escaped(&mut payload, &claims.bucket);
    let (kind, k) = match &claims.keys {
        KeyScope::Exact(k) => ("key", k),
        KeyScope::Prefix(p) => ("prefix", p),
    };
    let _ = write!(payload, "|{kind}|");
    push_escaped(&mut payload, k);
    payload.push('|');
    if let Some(max) = claims.max_content_length {
        let _ = write!(payload, "{max}");
    }
    payload.push('|');
    let types: Vec<&str> = claims.content_types.iter().map(ContentTypePattern::as_str).collect();
    payload.push_str(&types.join(","));
    let _ = write!(payload, "|{}", claims.max_expires);
    seal(key, Audience::Presign, &payload)
}

fn parse_grant(fields: &[&str]) -> Result<GrantClaims, LinkError> {
    let common = parse_common(fields)?;
    let field = |i: usize| fields.get(i).copied().ok_or(malformed("wrong number of fields"));
    let bucket = unescape(field(6)?).ok_or(malformed("bucket"))?;
    let key = unescape(field(8)?).ok_or(malformed("key"))?;
    let keys = match field(7)? {
        "key" => KeyScope::Exact(key),
        "prefix" => KeyScope::Prefix(key),
        _ => return Err(malformed("key kind")),
    };
    let max_content_length = match field(9)? {
        "" => None,
        n => Some(parse_number(n, 20, u64::MAX).ok_or(malformed("max_content_length"))?),
    };
    let content_types = match field(10)? {
        "" => Vec::new(),
        list => list
            .split(',')
            .map(|t| {
                ContentTypePattern::parse(t)
                    .ok()
                    .filter(|p| p.as_str() == t)
                    .ok_or(malformed("content_types"))
            })
            .collect::<Result<_, _>>()?,
    };
    let max_expires = parse_number(field(11)?, 6, MAX_GRANT_EXPIRES).ok_or(malformed("max_expires"))?;
    let claims = GrantClaims {
        expires_at: common.expires_at,
        client_ip: common.client_ip,
        methods: common.methods,
        bucket,
        keys,
        max_content_length,
        content_types,
        max_expires,
    };
    check_common(&common, Methods::PRESIGNABLE).map_err(|_| malformed("methods"))?;
    check_grant(&claims).map_err(|e| match e {
        LinkError::Invalid { what, .. } => malformed(what),
        other => other,
    })?;
    Ok(claims)
}

/// Verifies a presign grant `token` for `request` from `client_ip` at `now`
/// (unix seconds). Checks, in order: format (every field), version,
/// audience, key id, MAC (constant time), expiry, client address, method,
/// bucket, key, content length, content type, URL lifetime. Only `presign`
/// tokens pass.
pub fn verify_grant(
    keys: &impl LinkKeys,
    request: &GrantRequest<'_>,
    client_ip: Option<IpAddr>,
    token: &str,
    now: u64,
) -> Result<GrantClaims, LinkError> {
    let (payload, mac) = open(token)?;
    let fields = split_fields(&payload, Audience::Presign)?;
    let claims = parse_grant(&fields)?;
    authenticate(keys, Audience::Presign, fields[2], &payload, &mac)?;
    if now >= claims.expires_at {
        return Err(LinkError::Expired {
            expired_at: claims.expires_at,
        });
    }
    check_ip(claims.client_ip, client_ip)?;
    check_method(claims.methods, request.method.as_str())?;
    if request.bucket != claims.bucket {
        return Err(LinkError::WrongBucket {
            bucket: request.bucket.chars().take(128).collect(),
        });
    }
    if !claims.keys.allows(request.key) {
        return Err(LinkError::KeyOutOfScope {
            key: request.key.chars().take(256).collect(),
        });
    }
    if request.method == PresignMethod::Put {
        let length = request.content_length.ok_or(LinkError::LengthRequired)?;
        let max = claims.max_content_length.unwrap_or(0);
        if length > max {
            return Err(LinkError::TooLarge { length, max });
        }
        let content_type = request.content_type.ok_or(LinkError::ContentTypeRequired)?;
        if !claims.content_types.iter().any(|p| p.allows(content_type)) {
            let allowed: Vec<&str> = claims.content_types.iter().map(ContentTypePattern::as_str).collect();
            return Err(LinkError::ContentTypeNotAllowed {
                content_type: content_type.chars().take(128).collect(),
                allowed: allowed.join(","),
            });
        }
    }
    if request.expires > claims.max_expires {
        return Err(LinkError::ExpiresTooLong {
            requested: request.expires,
            max: claims.max_expires,
        });
    }
    Ok(claims)
}
