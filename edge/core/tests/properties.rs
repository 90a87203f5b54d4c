//! Property tests (proptest), native only: canonicalization is idempotent,
//! the key of a request is the key of the request the edge sends upstream,
//! and every tampered token is refused (signed links and presign grants).
//!
//! The upstream key is rebuilt here from the viewer's scheme and host and
//! the path and query the edge forwards (the core has no
//! `key_for_upstream` yet; when it does, compare with it too).
#![cfg(not(target_arch = "wasm32"))]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use http::header::AUTHORIZATION;
use http::{Method, Request};
use offload_core::cache::key::{KeyRules, UrlKey};
use offload_core::proxy::canonical::{canonical_path, canonical_query, CanonicalRequest};
use offload_core::sign::link::{
    issue_grant, issue_link, verify_link, ContentTypePattern, GrantClaims, KeyScope, LinkClaims, LinkError, LinkKey,
    Methods, Scope,
};
use offload_core::{Config, Edge, EdgeState, Plan, Step, Viewer};
use proptest::prelude::*;

const LINK_SECRET: &str = "props-link-key-0123456789abcdef-0123456789";

const CONFIG: &str = r#"
[edge]
name = "Props"

[regions.r1]
location = { lat = 38.9, lon = -77.4 }
continents = ["NA"]
origins = [{ url = "http://127.0.0.1:18701" }]

[buckets.uploads]
endpoint = "http://127.0.0.1:18703"
bucket = "uploads"
region = "us-east-1"
signed = true
access_key_id = { binding = "PROPS_S3_ID" }
secret_access_key = { binding = "PROPS_S3_SECRET" }

[links]
current = "p1"
keys = [{ id = "p1", secret = { binding = "PROPS_LINK_KEY" } }]

[presign]
buckets = ["uploads"]
max_expires = 3600

[[routes]]
path = "/api/*"
cache = { default_ttl = 60 }
cache_key = { sort_query = true, query_deny = ["session"] }

[[routes]]
path = "/*"
cache = { default_ttl = 60 }
"#;

fn edge() -> Edge {
    let secrets = offload_core::secret::SecretMap::from_bindings([
        ("PROPS_S3_ID", "PROPSKEY"),
        ("PROPS_S3_SECRET", "props-s3-secret-key"),
        ("PROPS_LINK_KEY", "props-link-key-0123456789abcdef-0123456789"),
    ]);
    Edge::new(Config::from_toml(CONFIG).unwrap(), &secrets).unwrap()
}

fn link_key() -> LinkKey {
    LinkKey::new("p1", LINK_SECRET.as_bytes().to_vec()).unwrap()
}

/// Path and query text rich in what normalization touches: escapes (valid,
/// partial, of unreserved and reserved bytes), delimiters, tracking
/// parameters, raw bytes that are not allowed in a URI, non-ASCII.
fn target_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just("%".to_owned()),
        "%[0-9a-fA-FgG]{0,2}",
        "[a-zA-Z0-9._~-]{1,4}",
        Just("?".to_owned()),
        Just("&".to_owned()),
        Just("=".to_owned()),
        Just("#".to_owned()),
        Just("utm_source=x".to_owned()),
        Just("session=1".to_owned()),
        "[!$'()*+,;:@ <>\"{}|^`\\[\\]\\\\]",
        Just("é€".to_owned()),
        Just("%2e%2E".to_owned()),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

fn rules() -> impl Strategy<Value = KeyRules> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(sort, track, deny)| KeyRules {
        sort_query: sort,
        drop_tracking: track,
        query_deny: if deny { vec!["session".into(), "x*".into()] } else { Vec::new() },
        ..KeyRules::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A key built from its own normalized path and query is the same key.
    #[test]
    fn url_key_normalization_is_idempotent(
        rules in rules(),
        scheme in prop::sample::select(vec!["http", "https", "HTTPS"]),
        host in "[a-zA-Z0-9-]{1,8}(\\.[a-zA-Z0-9-]{1,8}){0,2}\\.?(:[0-9]{1,5})?",
        target in target_text(),
    ) {
        let pq = format!("/{target}");
        let Ok(key) = UrlKey::new(&rules, scheme, &host, &pq) else { return Ok(()) };
        let (s, h) = key.origin().split_once("://").unwrap();
        let again = UrlKey::new(&rules, s, h, key.path_and_query()).unwrap();
        prop_assert_eq!(&again, &key);
        // Nothing a URI may not carry raw survives normalization.
        let raw_ok = key.path_and_query().bytes().all(|b| b.is_ascii_graphic() && !b"\"<>\\^`{|}[]#".contains(&b));
        prop_assert!(raw_ok, "not URI-safe: {:?}", key.path_and_query());
    }

    /// The canonical request is a fixed point: canonicalizing its own
    /// request, path or query again changes nothing.
    #[test]
    fn canonical_request_is_idempotent(
        target in target_text(),
        host in "[a-zA-Z0-9-]{1,8}(\\.[a-zA-Z0-9-]{1,8}){0,2}\\.?(:[0-9]{1,5})?",
    ) {
        let Ok(req) = Request::get(format!("/{target}")).header("host", host.as_str()).body(()) else { return Ok(()) };
        let Ok(c) = CanonicalRequest::new(&req) else { return Ok(()) };
        let again = CanonicalRequest::new(c.request()).unwrap();
        prop_assert_eq!((again.host(), again.path(), again.query()), (c.host(), c.path(), c.query()));
        prop_assert_eq!(canonical_path(c.path()).unwrap(), c.path());
        if let Some(q) = c.query() {
            prop_assert_eq!(canonical_query(q).unwrap(), Some(q.to_owned()));
        }
    }

    /// The request the edge sends upstream has the key of the viewer's
    /// request: the origin can never see a URL the cache keyed differently.
    #[test]
    fn upstream_request_has_the_viewers_key(
        prefix in prop::sample::select(vec!["/api/", "/", "/other/"]),
        target in target_text(),
        tls in any::<bool>(),
        host in "[a-z0-9]{1,8}\\.example\\.com",
    ) {
        let e = edge();
        let scheme = if tls { "https" } else { "http" };
        let Ok(req) = Request::get(format!("{scheme}://{host}{prefix}{target}")).body(()) else { return Ok(()) };
        let mut state = EdgeState::new(e.config());
        let viewer = Viewer { tls, ..Viewer::default() };
        let Ok(canonical) = e.canonicalize(&req) else { return Ok(()) };
        let Plan::Forward(mut fwd) = e.plan(&canonical, &viewer, 1_700_000_000_000) else { return Ok(()) };
        e.begin(&mut fwd, &mut state, 1_700_000_000_000, 1);
        let Step::Send { request, .. } = &fwd.step else { panic!("a GET to a healthy origin is sent") };
        let rules = &e.config().routes()[fwd.route].cache().expect("cached route").key;
        let viewer_key = UrlKey::for_request(rules, scheme, req.uri(), req.headers()).unwrap();
        let sent = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let upstream_key = UrlKey::new(rules, scheme, &host, sent).unwrap();
        prop_assert_eq!(upstream_key, viewer_key);
    }

    /// Any edit of a valid link token (flip, insert, delete a byte,
    /// truncate) is refused.
    #[test]
    fn tampered_link_tokens_are_refused(
        scope in "/[a-z0-9]{1,6}(/[a-z0-9]{1,6}){0,2}/?",
        exp in 1u64..=offload_core::sign::link::MAX_EXPIRES_AT,
        ip in prop::option::of(any::<[u8; 4]>().prop_map(IpAddr::from)),
        edit in 0u8..4,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let key = link_key();
        let claims = LinkClaims { expires_at: exp, scope: Scope::parse(&scope).unwrap(), client_ip: ip, methods: Methods::READ };
        let token = issue_link(&key, &claims).unwrap();
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        match edit {
            0 => bytes[i] ^= byte.max(1),
            1 => bytes.insert(i, byte),
            2 => { bytes.remove(i); }
            _ => bytes.truncate(i),
        }
        let tampered = String::from_utf8_lossy(&bytes).into_owned();
        prop_assume!(tampered != token);
        prop_assert!(verify_link(&key, &scope, "GET", ip, &tampered, exp - 1).is_err());
        // The genuine token still verifies (the edit is what was refused).
        prop_assert_eq!(verify_link(&key, &scope, "GET", ip, &token, exp - 1), Ok(claims));
    }

    /// A token whose claims were changed (scope, expiry, address, key id)
    /// while keeping the original MAC is refused.
    #[test]
    fn changed_claims_are_refused(
        scope in "/[a-z0-9]{1,6}/",
        other_scope in "/[a-z0-9]{1,6}/",
        exp in 1u64..1_000_000_000,
        later in 1u64..1_000_000,
        claim in 0u8..6,
    ) {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let key = link_key();
        let token = issue_link(&key, &LinkClaims::new(Scope::parse(&scope).unwrap(), exp)).unwrap();
        let (payload, mac) = token.split_once('.').unwrap();
        let text = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
        let changed = match claim {
            0 => text.replacen(&format!("|{scope}"), &format!("|{other_scope}"), 1),
            1 => text.replacen(&format!("|{exp}|"), &format!("|{}|", exp + later), 1),
            2 => text.replacen(&format!("|{exp}||"), &format!("|{exp}|203.0.113.9|"), 1),
            3 => text.replacen("|GET,HEAD|", "|GET,HEAD,PUT|", 1),
            4 => text.replacen("v2|link|", "v2|presign|", 1),
            _ => text.replacen("|p1|", "|p2|", 1),
        };
        prop_assume!(changed != text);
        let forged = format!("{}.{mac}", b64.encode(changed.as_bytes()));
        let path = if claim == 0 { other_scope.clone() } else { scope.clone() };
        let r = verify_link(&key, &path, "GET", None, &forged, 0);
        prop_assert!(r.is_err(), "{:?}", r);
        if claim != 4 {
            prop_assert!(matches!(r, Err(LinkError::BadSignature | LinkError::UnknownKey { .. })), "{:?}", r);
        }
    }

    /// A presign grant with any edit is refused by the presign endpoint
    /// (403), while the genuine grant presigns.
    #[test]
    fn tampered_presign_grants_are_refused(
        prefix in "[a-z0-9]{1,8}/",
        name in "[a-z0-9]{1,8}\\.jpg",
        edit in 0u8..3,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let e = edge();
        let now = 1_700_000_000;
        let grant = GrantClaims {
            expires_at: now + 60,
            client_ip: None,
            methods: Methods::PUT,
            bucket: "uploads".to_owned(),
            keys: KeyScope::Prefix(prefix.clone()),
            max_content_length: Some(1000),
            content_types: vec![ContentTypePattern::parse("image/*").unwrap()],
            max_expires: 600,
        };
        let token = issue_grant(&link_key(), &grant).unwrap();
        let body = serde_json::json!({ "bucket": "uploads", "key": format!("{prefix}{name}"), "method": "PUT", "expires": 60,
            "content_length": 10, "content_type": "image/jpeg" }).to_string();
        let call = |t: &str| {
            let req = Request::builder().method(Method::POST).uri("https://h/_offload/presign")
                .header(AUTHORIZATION, format!("Bearer {t}")).body(()).unwrap();
            let req = CanonicalRequest::new(&req).unwrap();
            e.presign_endpoint(&req, body.as_bytes(), &Viewer::default(), now).status().as_u16()
        };
        prop_assert_eq!(call(&token), 200);
        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        match edit {
            0 => bytes[i] ^= byte.max(1),
            1 => bytes.insert(i, byte),
            _ => { bytes.remove(i); }
        }
        let Ok(tampered) = String::from_utf8(bytes) else { return Ok(()) };
        // Header values cannot carry control bytes; trimmed spaces are no edit.
        prop_assume!(tampered != token && tampered.trim() != token);
        prop_assume!(http::HeaderValue::from_str(&format!("Bearer {tampered}")).is_ok());
        let status = call(&tampered);
        prop_assert!(status == 403 || status == 401, "tampered grant got {}", status);
    }
}
