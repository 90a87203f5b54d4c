//! The one canonical form of a viewer request.
//!
//! Every decision the edge makes about a request (dispatch to the purge and
//! presign endpoints, route matching, the signed-link gate, the cache key,
//! the bucket object key, the origin-auth signature, `X-Forwarded-Host` and
//! the request sent upstream) reads the [`CanonicalRequest`] made here, once,
//! by [`CanonicalRequest::new`]. Two parsers of one path are a vulnerability
//! waiting for a spelling they read differently (`/private%2Freport.txt`,
//! `/%70rivate/report.txt`, `/public/..%2Fprivate/x`, `//private/x`, …); with
//! one canonical form there is nothing left to disagree about.
//!
//! The rules (RFC 3986 §6.2.2 normalization, then refusals):
//!
//! - `%xx` escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are
//!   decoded; every other escape is written with upper-case hex. Reserved
//!   characters keep their meaning: `%3B` and `;` stay distinct.
//! - Bytes that may not appear raw in a path or query (space, `"`, `<`, `>`,
//!   `` ` ``, `^`, `{`, `|`, `}`, non-ASCII) are percent-encoded.
//! - Refused with a 400 that names what was wrong ([`CanonicalError`]):
//!   an encoded `/` (`%2F`) or `\` (`%5C`) in the path, a raw `\`, NUL and
//!   other control bytes (raw anywhere; encoded in the path; encoded NUL in
//!   the query), malformed escapes (`%`, `%zz`), dot segments (`.`, `..`,
//!   also spelled `%2E`), empty segments (`//`; a trailing `/` is allowed),
//!   a path whose decoded bytes are not UTF-8 (overlong forms such as
//!   `%C0%AE` included), targets that are not origin-form (`*`), and
//!   oversized targets.
//! - The host is lower-cased, one trailing dot and the scheme's default port
//!   are dropped; userinfo, bad characters and bad ports are refused.
//!
//! The byte classes are one table, [`BYTE_CLASS`], which the CloudFront
//! Function generator also emits, so the JavaScript edge applies exactly
//! these rules.
//!
//! ```
//! use offload_core::proxy::canonical::CanonicalRequest;
//! let req = http::Request::get("https://WWW.Example.com:443/%70rivate/a%7eb%2a?q=%3b%7E")
//!     .body(())
//!     .unwrap();
//! let c = CanonicalRequest::new(&req).unwrap();
//! assert_eq!(c.host(), "www.example.com");
//! assert_eq!(c.path(), "/private/a~b%2A");
//! assert_eq!(c.query(), Some("q=%3B~"));
//! assert_eq!(c.object_key_path().unwrap(), "/private/a~b*");
//!
//! let bad = http::Request::get("https://example.com/private%2Freport.txt").body(()).unwrap();
//! let e = CanonicalRequest::new(&bad).unwrap_err();
//! assert_eq!(e.to_string(), "request target: path: encoded '/' (%2F) at byte 8 is not allowed");
//! ```

use std::fmt;

use http::header::{self, HeaderValue};
use http::{Method, Request, Uri};

/// Longest path or query the edge accepts (bytes, as received).
pub const MAX_TARGET_BYTES: usize = 8192;

/// What a byte is, raw in a request target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ByteClass {
    /// `A-Z a-z 0-9 - . _ ~`: kept raw; an escape of one is decoded.
    Unreserved = b'u',
    /// Sub-delimiters, `:`, `@`, `/`, `?`: kept raw; an escape of one stays
    /// an (upper-case) escape.
    Reserved = b'r',
    /// `%`: starts an escape.
    Percent = b'%',
    /// Allowed, but only percent-encoded: space, `"`, `<`, `>`, `` ` ``,
    /// `^`, `{`, `|`, `}`, `#`, `[`, `]`, and every byte ≥ 0x80.
    Encode = b'e',
    /// Never allowed, raw or (in the path) encoded: control bytes.
    Control = b'c',
    /// `\`: read as `/` by some servers; never allowed in a path.
    Backslash = b'b',
}

/// The class of every byte, indexed by the byte.
pub const BYTE_CLASS: [ByteClass; 256] = {
    let mut t = [ByteClass::Encode; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_' || b == b'~' {
            ByteClass::Unreserved
        } else if b < 0x20 || b == 0x7f {
            ByteClass::Control
        } else if b == b'%' {
            ByteClass::Percent
        } else if b == b'\\' {
            ByteClass::Backslash
        } else if matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@' | b'/' | b'?'
        ) {
            ByteClass::Reserved
        } else {
            ByteClass::Encode
        };
        i += 1;
    }
    t
};

/// [`BYTE_CLASS`] as a 256-character string of class letters (`u r % e c
/// b`), the form the CloudFront Function generator embeds.
pub fn byte_class_table() -> String {
    BYTE_CLASS.iter().map(|c| char::from(*c as u8)).collect()
}

/// Which part of the request target was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Path,
    Query,
    Host,
    Method,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Path => "path",
            Part::Query => "query",
            Part::Host => "host",
            Part::Method => "method",
        })
    }
}

/// Why a request target has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalError {
    part: Part,
    kind: ErrorKind,
    at: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    NotOriginForm,
    TooLong,
    EncodedSlash,
    EncodedBackslash,
    Backslash,
    Control(u8),
    EncodedControl(u8),
    BadEscape,
    DotSegment,
    EmptySegment,
    NotUtf8,
    MissingHost,
    SeveralHosts,
    BadHost(&'static str),
    BadScheme,
    MethodCase,
}

impl CanonicalError {
    fn new(part: Part, kind: ErrorKind, at: Option<usize>) -> Self {
        Self { part, kind, at }
    }
    /// The part of the target that was wrong.
    pub fn part(&self) -> Part {
        self.part
    }
}

impl fmt::Display for CanonicalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind as K;
        write!(f, "request target: {}: ", self.part)?;
        let at = self.at.unwrap_or(0);
        // Forbidden content: "<what> at byte N is not allowed".
        let forbidden = |f: &mut fmt::Formatter<'_>, what: &dyn fmt::Display| {
            write!(f, "{what} at byte {at} is not allowed")
        };
        match &self.kind {
            K::NotOriginForm => f.write_str("must start with '/'"),
            K::TooLong => write!(f, "longer than {MAX_TARGET_BYTES} bytes"),
            K::EncodedSlash => forbidden(f, &"encoded '/' (%2F)"),
            K::EncodedBackslash => forbidden(f, &"encoded '\\' (%5C)"),
            K::Backslash => forbidden(f, &"'\\'"),
            K::Control(0) | K::EncodedControl(0) => forbidden(f, &"NUL byte"),
            K::Control(b) => forbidden(f, &format_args!("control byte 0x{b:02X}")),
            K::EncodedControl(b) => forbidden(f, &format_args!("encoded control byte %{b:02X}")),
            K::BadEscape => write!(f, "malformed percent-encoding at byte {at}"),
            K::DotSegment => forbidden(f, &"dot segment ('.' or '..')"),
            K::EmptySegment => forbidden(f, &"empty segment ('//')"),
            K::NotUtf8 if self.at.is_some() => write!(f, "segment at byte {at} decodes to invalid UTF-8"),
            K::NotUtf8 => f.write_str("decodes to invalid UTF-8"),
            K::MissingHost => f.write_str("missing (no Host header)"),
            K::SeveralHosts => f.write_str("more than one Host header"),
            K::BadHost(why) => f.write_str(why),
            K::BadScheme => f.write_str("scheme must be http or https"),
            K::MethodCase => f.write_str("must be upper-case (methods are case-sensitive)"),
        }
    }
}

impl std::error::Error for CanonicalError {}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a `%xx` escape at `i` names, if two hex digits follow.
fn escape_at(bytes: &[u8], i: usize) -> Option<u8> {
    Some(hex_val(*bytes.get(i + 1)?)? * 16 + hex_val(*bytes.get(i + 2)?)?)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn push_escape(out: &mut String, b: u8) {
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// The canonical form of a path (see the module docs). The input is the
/// path as received (origin-form, starting with `/`).
///
/// ```
/// use offload_core::proxy::canonical::canonical_path;
/// assert_eq!(canonical_path("/a/%7Euser/b%c3%a9/").unwrap(), "/a/~user/b%C3%A9/");
/// assert!(canonical_path("/a/%2e%2E/b").is_err());
/// assert!(canonical_path("/a//b").is_err());
/// ```
pub fn canonical_path(raw: &str) -> Result<String, CanonicalError> {
    let err = |kind, at| Err(CanonicalError::new(Part::Path, kind, Some(at)));
    let bytes = raw.as_bytes();
    if bytes.len() > MAX_TARGET_BYTES {
        return Err(CanonicalError::new(Part::Path, ErrorKind::TooLong, None));
    }
    if bytes.first() != Some(&b'/') {
        return Err(CanonicalError::new(Part::Path, ErrorKind::NotOriginForm, None));
    }
    let mut out = String::with_capacity(raw.len());
    // The decoded bytes of the current segment (for the dot-segment and
    // UTF-8 checks) and where it started in the input.
    let mut segment: Vec<u8> = Vec::new();
    let mut seg_start = 0;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match BYTE_CLASS[usize::from(b)] {
            ByteClass::Reserved if b == b'/' => {
                if i > 0 {
                    check_segment(&segment, seg_start, false)?;
                }
                segment.clear();
                seg_start = i + 1;
                out.push('/');
                i += 1;
                continue;
            }
            ByteClass::Percent => {
                let Some(decoded) = escape_at(bytes, i) else { return err(ErrorKind::BadEscape, i) };
                match BYTE_CLASS[usize::from(decoded)] {
                    ByteClass::Unreserved => out.push(char::from(decoded)),
                    ByteClass::Control => return err(ErrorKind::EncodedControl(decoded), i),
                    ByteClass::Backslash => return err(ErrorKind::EncodedBackslash, i),
                    _ if decoded == b'/' => return err(ErrorKind::EncodedSlash, i),
                    _ => push_escape(&mut out, decoded),
                }
                segment.push(decoded);
                i += 3;
                continue;
            }
            ByteClass::Control => return err(ErrorKind::Control(b), i),
            ByteClass::Backslash => return err(ErrorKind::Backslash, i),
            ByteClass::Unreserved | ByteClass::Reserved => out.push(char::from(b)),
            ByteClass::Encode => push_escape(&mut out, b),
        }
        segment.push(b);
        i += 1;
    }
    check_segment(&segment, seg_start, true)?;
    // The limit holds for the canonical form too (encoding can triple a
    // target), so a canonical path always canonicalizes to itself.
    if out.len() > MAX_TARGET_BYTES {
        return Err(CanonicalError::new(Part::Path, ErrorKind::TooLong, None));
    }
    Ok(out)
}

fn check_segment(decoded: &[u8], start: usize, last: bool) -> Result<(), CanonicalError> {
    let at = Some(start);
    if decoded == b"." || decoded == b".." {
        return Err(CanonicalError::new(Part::Path, ErrorKind::DotSegment, at));
    }
    if decoded.is_empty() && !last {
        return Err(CanonicalError::new(Part::Path, ErrorKind::EmptySegment, at));
    }
    if std::str::from_utf8(decoded).is_err() {
        return Err(CanonicalError::new(Part::Path, ErrorKind::NotUtf8, at));
    }
    Ok(())
}

/// The canonical form of a query (see the module docs); `None` for an
/// absent or empty query.
///
/// ```
/// use offload_core::proxy::canonical::canonical_query;
/// assert_eq!(canonical_query("a=%7e&b=%2f/x%20y").unwrap().as_deref(), Some("a=~&b=%2F/x%20y"));
/// assert_eq!(canonical_query("").unwrap(), None);
/// assert!(canonical_query("a=%00").is_err());
/// ```
pub fn canonical_query(raw: &str) -> Result<Option<String>, CanonicalError> {
    let err = |kind, at| Err(CanonicalError::new(Part::Query, kind, Some(at)));
    let bytes = raw.as_bytes();
    if bytes.len() > MAX_TARGET_BYTES {
        return Err(CanonicalError::new(Part::Query, ErrorKind::TooLong, None));
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match BYTE_CLASS[usize::from(b)] {
            ByteClass::Percent => {
                let Some(decoded) = escape_at(bytes, i) else { return err(ErrorKind::BadEscape, i) };
                match BYTE_CLASS[usize::from(decoded)] {
                    ByteClass::Unreserved => out.push(char::from(decoded)),
                    _ if decoded == 0 => return err(ErrorKind::EncodedControl(0), i),
                    _ => push_escape(&mut out, decoded),
                }
                i += 3;
                continue;
            }
            ByteClass::Control => return err(ErrorKind::Control(b), i),
            ByteClass::Unreserved | ByteClass::Reserved => out.push(char::from(b)),
            // A raw `\` in a query is data: encode it like any other.
            ByteClass::Backslash | ByteClass::Encode => push_escape(&mut out, b),
        }
        i += 1;
    }
    // As for paths: the canonical form is within the limit too (found by
    // the cache_key fuzz target: a query that encoding grew past it).
    if out.len() > MAX_TARGET_BYTES {
        return Err(CanonicalError::new(Part::Query, ErrorKind::TooLong, None));
    }
    Ok(Some(out))
}

/// `raw` (a path and query as received) with every byte of class
/// [`ByteClass::Encode`] (non-ASCII, space, `"`, `<`, `>`, `` ` ``, `^`,
/// `{`, `|`, `}`, `#`, `[`, `]`) percent-encoded: the bytes the `http`
/// crate refuses in a URI but the canonical form encodes anyway. An
/// adapter that gets the target as a string (workerd's `request.url`, a
/// CloudFront event's `uri`) hands it to an `http::Uri` this way instead of
/// through another URL parser (the WHATWG one resolves `%2e%2e` and reads
/// `\` as `/`), so [`CanonicalRequest::new`] judges what the viewer sent:
/// the canonical form of the result is the canonical form of `raw` (only
/// the byte offsets in refusals can move).
///
/// ```
/// use offload_core::proxy::canonical::{canonical_path, escape_for_uri};
/// assert_eq!(escape_for_uri("/caf\u{e9} x#y?q=a b"), "/caf%C3%A9%20x%23y?q=a%20b");
/// assert_eq!(canonical_path(&escape_for_uri("/a\u{e9}")).unwrap(), canonical_path("/a\u{e9}").unwrap());
/// assert_eq!(escape_for_uri("/a/%2e%2e/b\\c"), "/a/%2e%2e/b\\c");
/// ```
pub fn escape_for_uri(raw: &str) -> std::borrow::Cow<'_, str> {
    if !raw.bytes().any(|b| BYTE_CLASS[usize::from(b)] == ByteClass::Encode) {
        return std::borrow::Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            if BYTE_CLASS[usize::from(b)] == ByteClass::Encode {
                push_escape(&mut out, b);
            } else {
                out.push(char::from(b));
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The canonical authority for `scheme`: lower-case host, one trailing dot
/// and the default port dropped.
///
/// ```
/// use offload_core::proxy::canonical::canonical_host;
/// assert_eq!(canonical_host("https", "WWW.Example.COM.:443").unwrap(), "www.example.com");
/// assert_eq!(canonical_host("http", "[::1]:8080").unwrap(), "[::1]:8080");
/// assert!(canonical_host("https", "user@example.com").is_err());
/// ```
pub fn canonical_host(scheme: &str, authority: &str) -> Result<String, CanonicalError> {
    let bad = |why| Err(CanonicalError::new(Part::Host, ErrorKind::BadHost(why), None));
    let a = authority.trim();
    if a.len() > 255 {
        return bad("longer than 255 bytes");
    }
    if a.contains('@') {
        return bad("must not contain userinfo ('@')");
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else { return bad("unclosed '[' in an IPv6 literal") };
        if inside.is_empty() || !inside.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            return bad("bad IPv6 literal");
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return bad("junk after ']'"),
            },
        };
        (format!("[{}]", inside.to_ascii_lowercase()), port)
    } else {
        let (h, p) = match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        };
        let h = h.strip_suffix('.').unwrap_or(h);
        if h.is_empty() || !h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return bad("not a valid host name");
        }
        // Empty labels (`a..b`, `.a`, `a..`, `..`) name no host; allowing
        // them made `a..` canonical as `a.`, which canonicalizes again to
        // `a` (found by the cache_key and purge fuzz targets).
        if h.split('.').any(str::is_empty) {
            return bad("empty label in host name");
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = match port {
        None | Some("") => None,
        Some(p) if p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return bad("bad port"),
        },
        Some(_) => return bad("bad port"),
    };
    let default = if scheme == "https" { 443 } else { 80 };
    Ok(match port {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host,
    })
}

/// Percent-decode a canonical path into the bytes it names (for bucket
/// object keys). Canonical paths are valid UTF-8 once decoded.
fn decode(canonical: &str) -> Result<String, CanonicalError> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(canonical).collect();
    String::from_utf8(bytes).map_err(|_| CanonicalError::new(Part::Path, ErrorKind::NotUtf8, None))
}

/// A viewer request in its one canonical form. Only
/// [`CanonicalRequest::new`] makes one, so a function that takes a
/// `&CanonicalRequest` cannot be handed a target nobody normalized.
#[derive(Debug, Clone)]
pub struct CanonicalRequest {
    request: Request<()>,
    scheme: &'static str,
    host: String,
    path: String,
    query: Option<String>,
}

impl CanonicalRequest {
    /// Canonicalize a viewer request: its target (absolute-form, or
    /// origin-form with `Host`), method and headers. The scheme is the
    /// URI's (`https` if it has none). The result's URI is absolute
    /// (`scheme://host/path?query`) and its `Host` header the canonical host.
    pub fn new(req: &Request<()>) -> Result<Self, CanonicalError> {
        let scheme = match req.uri().scheme_str() {
            None => "https",
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            Some(s) if s.eq_ignore_ascii_case("http") => "http",
            Some(_) => return Err(CanonicalError::new(Part::Host, ErrorKind::BadScheme, None)),
        };
        if req.method().as_str().bytes().any(|b| b.is_ascii_lowercase()) {
            // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET,
            // and no origin should be asked to guess.
            return Err(CanonicalError::new(Part::Method, ErrorKind::MethodCase, None));
        }
        let mut hosts = req.headers().get_all(header::HOST).iter();
        let host_header = hosts.next();
        if hosts.next().is_some() {
            return Err(CanonicalError::new(Part::Host, ErrorKind::SeveralHosts, None));
        }
        let authority = match (req.uri().authority(), host_header) {
            (Some(a), _) => a.as_str().to_owned(),
            (None, Some(h)) => match h.to_str() {
                Ok(h) => h.to_owned(),
                Err(_) => return Err(CanonicalError::new(Part::Host, ErrorKind::BadHost("not ASCII"), None)),
            },
            (None, None) => return Err(CanonicalError::new(Part::Host, ErrorKind::MissingHost, None)),
        };
        let host = canonical_host(scheme, &authority)?;
        let path = canonical_path(req.uri().path())?;
        let query = canonical_query(req.uri().query().unwrap_or(""))?;
        Self::assemble(req, scheme, host, path, query)
    }

    fn assemble(
        req: &Request<()>,
        scheme: &'static str,
        host: String,
        path: String,
        query: Option<String>,
    ) -> Result<Self, CanonicalError> {
        let mut target = String::with_capacity(scheme.len() + host.len() + path.len() + 8);
        target.push_str(scheme);
        target.push_str("://");
        target.push_str(&host);
        target.push_str(&path);
        if let Some(q) = &query {
            target.push('?');
            target.push_str(q);
        }
        // Every byte of `target` is one the `http` crate accepts (the
        // canonical forms are printable ASCII without `#`), so this only
        // fails on a bug; it is still an error, never a panic.
        let uri: Uri = target
            .parse()
            .map_err(|_| CanonicalError::new(Part::Path, ErrorKind::BadEscape, None))?;
        let host_value = HeaderValue::from_str(&host)
            .map_err(|_| CanonicalError::new(Part::Host, ErrorKind::BadHost("not a valid header value"), None))?;
        let mut request = Request::new(());
        *request.method_mut() = req.method().clone();
        *request.uri_mut() = uri;
        *request.version_mut() = req.version();
        *request.headers_mut() = req.headers().clone();
        request.headers_mut().insert(header::HOST, host_value);
        Ok(Self { request, scheme, host, path, query })
    }

    /// The same request without the query parameters named `name` (the
    /// signed-link token once it is verified). Still canonical.
    pub fn without_query_param(&self, name: &str) -> Self {
        let query = self.query.as_deref().map(|q| {
            q.split('&').filter(|p| !p.is_empty() && p.split('=').next() != Some(name)).collect::<Vec<_>>().join("&")
        });
        let query = query.filter(|q| !q.is_empty());
        let mut out = self.clone();
        let mut target = format!("{}://{}{}", self.scheme, self.host, self.path);
        if let Some(q) = &query {
            target.push('?');
            target.push_str(q);
        }
        if let Ok(uri) = target.parse::<Uri>() {
            *out.request.uri_mut() = uri;
            out.query = query;
        }
        out
    }

    /// The request (absolute canonical URI, canonical `Host`, the viewer's
    /// other headers).
    pub fn request(&self) -> &Request<()> {
        &self.request
    }
    pub fn method(&self) -> &Method {
        self.request.method()
    }
    pub fn headers(&self) -> &http::HeaderMap {
        self.request.headers()
    }
    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }
    /// The canonical authority (`host[:port]`, default port dropped).
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The canonical path (percent-encoded form).
    pub fn path(&self) -> &str {
        &self.path
    }
    /// The canonical query, if any.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }
    /// The path with every escape decoded: what a bucket object key is
    /// made from (valid UTF-8 by construction).
    pub fn object_key_path(&self) -> Result<String, CanonicalError> {
        decode(&self.path)
    }
}

/// Decode a canonical path (or a suffix of one) into an object key.
pub fn object_key(canonical: &str) -> Result<String, CanonicalError> {
    decode(canonical)
}

#[cfg(test)]
mod tests;
