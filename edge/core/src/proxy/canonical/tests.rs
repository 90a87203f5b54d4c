#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use super::*;

fn req(target: &str) -> Request<()> {
    Request::get(target).body(()).unwrap()
}

/// Spellings of one path: every one canonicalizes to the same value.
#[test]
fn spellings_of_one_path_agree() {
    let want = "/private/report.txt";
    for spelling in [
        "/private/report.txt",
        "/%70rivate/report.txt",
        "/%70%72%69%76%61%74%65/%72%65%70%6f%72%74%2e%74%78%74",
        "/priv%61te/report%2Etxt",
        "/priv%61te/report%2etxt",
    ] {
        assert_eq!(canonical_path(spelling).unwrap(), want, "{spelling}");
    }
}

/// Escapes of reserved and other characters stay escapes, upper-cased;
/// raw characters that need encoding get encoded.
#[test]
fn normalization_table() {
    for (raw, want) in [
        ("/", "/"),
        ("/a/", "/a/"),
        ("/a%3bb;c", "/a%3Bb;c"),
        ("/a%2ab*", "/a%2Ab*"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%25b", "/a%25b"),
        ("/a%252Fb", "/a%252Fb"),
        ("/a b", "/a%20b"),
        ("/a\"<>`^{|}", "/a%22%3C%3E%60%5E%7B%7C%7D"),
        ("/a:b@c!$&'()+,=", "/a:b@c!$&'()+,="),
        ("/.well-known/x", "/.well-known/x"),
        ("/...", "/..."),
        ("/a.", "/a."),
    ] {
        assert_eq!(canonical_path(raw).unwrap(), want, "{raw}");
        // Idempotent.
        assert_eq!(canonical_path(want).unwrap(), want, "{want}");
    }
}

#[test]
fn refusals_name_what_was_wrong() {
    for (raw, want) in [
        ("/private%2Freport.txt", "encoded '/' (%2F) at byte 8"),
        ("/private%2freport.txt", "encoded '/' (%2F) at byte 8"),
        ("/public/..%2Fprivate/x", "encoded '/' (%2F)"),
        ("/private%5Creport.txt", "encoded '\\' (%5C)"),
        ("/private%5creport.txt", "encoded '\\' (%5C)"),
        ("/private\\report.txt", "path: '\\' at byte 8"),
        ("/a%00b", "path: NUL byte at byte 2"),
        ("/a%0Ab", "encoded control byte %0A"),
        ("/a%7fb", "encoded control byte %7F"),
        ("/a/../private/x", "dot segment"),
        ("/a/./x", "dot segment"),
        ("/a/%2e%2E/x", "dot segment"),
        ("/a/.%2e/x", "dot segment"),
        ("/a/..", "dot segment"),
        ("/.", "dot segment"),
        ("//private/x", "empty segment"),
        ("/private//x", "empty segment"),
        ("/a%", "malformed percent-encoding"),
        ("/a%g1", "malformed percent-encoding"),
        ("/a%1", "malformed percent-encoding"),
        ("/%C0%AE%C0%AE/private", "invalid UTF-8"),
        ("/%C0%AF", "invalid UTF-8"),
        ("/%E0%80%AF", "invalid UTF-8"),
        ("/%FF", "invalid UTF-8"),
        ("/%ED%A0%80", "invalid UTF-8"),
        ("*", "must start with '/'"),
        ("a/b", "must start with '/'"),
    ] {
        let e = canonical_path(raw).unwrap_err().to_string();
        assert!(e.starts_with("request target: path: ") && e.contains(want), "{raw}: {e}");
    }
    let long = format!("/{}", "a".repeat(MAX_TARGET_BYTES));
    assert!(canonical_path(&long).unwrap_err().to_string().contains("longer than"));
}

#[test]
fn query_rules() {
    for (raw, want) in [
        ("a=1", Some("a=1")),
        ("", None),
        ("a=%7e%41", Some("a=~A")),
        ("a=%2f&b=/x?y", Some("a=%2F&b=/x?y")),
        ("msg=line1%0aline2", Some("msg=line1%0Aline2")),
        ("a=b\\c", Some("a=b%5Cc")),
        ("a b", Some("a%20b")),
    ] {
        assert_eq!(canonical_query(raw).unwrap().as_deref(), want, "{raw}");
    }
    for (raw, want) in [("a=%00", "NUL"), ("a=%", "malformed"), ("a=%zz", "malformed"), ("a=\u{1}", "control")] {
        let e = canonical_query(raw).unwrap_err().to_string();
        assert!(e.starts_with("request target: query: ") && e.contains(want), "{raw}: {e}");
    }
}

#[test]
fn hosts() {
    for (scheme, raw, want) in [
        ("https", "Example.COM", "example.com"),
        ("https", "example.com.", "example.com"),
        ("https", "example.com:443", "example.com"),
        ("http", "example.com:80", "example.com"),
        ("http", "example.com:443", "example.com:443"),
        ("https", "[2001:DB8::1]:443", "[2001:db8::1]"),
    ] {
        assert_eq!(canonical_host(scheme, raw).unwrap(), want, "{raw}");
    }
    for raw in ["", "a@b", "exa mple.com", "example.com:0", "example.com:99999", "example.com:x", "[::1", "ex%41.com", "é.com"] {
        assert!(canonical_host("https", raw).is_err(), "{raw}");
    }
    // Regression (fuzz targets cache_key, purge): empty labels are refused,
    // so a canonical host is a fixed point (`a..` was `a.`, then `a`).
    for raw in ["example..", "example..:79", "..", ".", ".example.com", "a..b", "a.b..:8080"] {
        assert!(canonical_host("https", raw).is_err(), "{raw}");
    }
    for raw in ["Example.COM.", "a.b:8080", "a.b.:8080", "[::1]:80", "x_y.z"] {
        let once = canonical_host("http", raw).unwrap();
        assert_eq!(canonical_host("http", &once).unwrap(), once, "{raw}");
    }
}

#[test]
fn a_request_becomes_one_absolute_canonical_request() {
    let mut r = Request::get("/%70rivate/a?b=%7e").body(()).unwrap();
    r.headers_mut().insert(header::HOST, HeaderValue::from_static("WWW.Example.com:443"));
    let c = CanonicalRequest::new(&r).unwrap();
    assert_eq!(c.request().uri(), "https://www.example.com/private/a?b=~");
    assert_eq!(c.request().headers()[header::HOST], "www.example.com");
    assert_eq!((c.scheme(), c.host(), c.path(), c.query()), ("https", "www.example.com", "/private/a", Some("b=~")));
    // The URI's authority wins over a Host header; canonicalizing the
    // result again changes nothing.
    let mut r = req("http://a.example/x");
    r.headers_mut().insert(header::HOST, HeaderValue::from_static("b.example"));
    let c = CanonicalRequest::new(&r).unwrap();
    assert_eq!(c.host(), "a.example");
    let again = CanonicalRequest::new(c.request()).unwrap();
    assert_eq!(again.request().uri(), c.request().uri());
    assert_eq!(again.request().headers()[header::HOST], "a.example");
}

#[test]
fn request_level_refusals() {
    let mut two = Request::get("/x").body(()).unwrap();
    two.headers_mut().append(header::HOST, HeaderValue::from_static("a.example"));
    two.headers_mut().append(header::HOST, HeaderValue::from_static("b.example"));
    assert!(CanonicalRequest::new(&two).unwrap_err().to_string().contains("more than one Host"));
    let none = Request::get("/x").body(()).unwrap();
    assert_eq!(CanonicalRequest::new(&none).unwrap_err().part(), Part::Host);
    let lower = Request::builder().method("get").uri("https://a.example/").body(()).unwrap();
    assert_eq!(CanonicalRequest::new(&lower).unwrap_err().part(), Part::Method);
    assert!(CanonicalRequest::new(&req("https://a.example/a%2Fb")).is_err());
}

#[test]
fn token_removal_keeps_the_request_canonical() {
    let c = CanonicalRequest::new(&req("https://a.example/p?x=1&token=abc&y=%7e")).unwrap();
    let d = c.without_query_param("token");
    assert_eq!(d.request().uri(), "https://a.example/p?x=1&y=~");
    assert_eq!(d.query(), Some("x=1&y=~"));
    let e = CanonicalRequest::new(&req("https://a.example/p?token=abc")).unwrap().without_query_param("token");
    assert_eq!((e.query(), e.request().uri().to_string().as_str()), (None, "https://a.example/p"));
}

#[test]
fn object_keys_decode_every_escape() {
    let c = CanonicalRequest::new(&req("https://a.example/dir/caf%C3%A9%20menu%3B1.txt")).unwrap();
    assert_eq!(c.object_key_path().unwrap(), "/dir/café menu;1.txt");
}

#[test]
fn byte_table_matches_rfc3986() {
    let t = byte_class_table();
    assert_eq!(t.len(), 256);
    for b in 0..=255u8 {
        let c = BYTE_CLASS[usize::from(b)];
        let unreserved = b.is_ascii_alphanumeric() || b"-._~".contains(&b);
        assert_eq!(c == ByteClass::Unreserved, unreserved, "{b:#x}");
        if b >= 0x80 {
            assert_eq!(c, ByteClass::Encode);
        }
    }
}

/// `escape_for_uri` changes nothing the canonical form decides: the same
/// canonical path and query, or a refusal for the same reason.
#[test]
fn escaping_for_a_uri_keeps_the_canonical_form() {
    let kind = |r: Result<Option<String>, CanonicalError>| r.map_err(|e| e.to_string().split(" at byte").next().unwrap_or("").to_owned());
    let inputs = [
        "/caf\u{e9}", "/a b", "/a#b", "/[x]", "/a\"<>`^{|}", "/%C3%A9\u{e9}", "/a/%2e%2e/b", "/a\\b", "/a//b#", "/\u{e9}/..",
        "/\u{1F600}/%F0", "/a?q=a b#c", "/a?q=\u{e9}&r=%e9",
    ];
    for raw in inputs {
        let escaped = escape_for_uri(raw);
        let (rp, rq) = raw.split_once('?').unwrap_or((raw, ""));
        let (ep, eq) = escaped.split_once('?').unwrap_or((&escaped, ""));
        assert_eq!(kind(canonical_path(ep).map(Some)), kind(canonical_path(rp).map(Some)), "{raw:?}");
        assert_eq!(kind(canonical_query(eq)), kind(canonical_query(rq)), "{raw:?}");
        assert!(escaped.bytes().all(|b| BYTE_CLASS[usize::from(b)] != ByteClass::Encode), "{escaped}");
        if canonical_path(ep).is_ok() {
            assert!(ep.parse::<http::uri::PathAndQuery>().is_ok(), "{escaped} is not a valid URI path");
        }
    }
}

/// The length limit holds for the canonical form, so canonicalizing twice
/// gives the same answer (found by the cache_key fuzz target: 3 000 raw
/// non-ASCII bytes fit the limit, their 9 000-byte encoding did not).
#[test]
fn limits_hold_for_the_canonical_form() {
    let grown = "\u{e9}".repeat(2000); // 4 000 bytes raw, 12 000 encoded
    assert!(canonical_query(&format!("a={grown}")).unwrap_err().to_string().contains("longer than"));
    assert!(canonical_path(&format!("/{grown}")).unwrap_err().to_string().contains("longer than"));
    let fits = "\u{e9}".repeat(1000); // 6 000 bytes encoded
    let q = canonical_query(&format!("a={fits}")).unwrap().unwrap();
    assert_eq!(canonical_query(&q).unwrap().as_deref(), Some(q.as_str()));
    let p = canonical_path(&format!("/{fits}")).unwrap();
    assert_eq!(canonical_path(&p).unwrap(), p);
}
