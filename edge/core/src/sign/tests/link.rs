#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::sign::link::{
    issue_grant, issue_link, issue_link_url, seal_raw, token_from_query, verify_grant, verify_link,
    Audience, ContentTypePattern, GrantClaims, GrantRequest, KeyScope, LinkClaims, LinkError,
    LinkKey, LinkKeySet, Methods, Scope, MAX_TOKEN_LEN,
};
use crate::sign::PresignMethod;

fn key(id: &str, fill: u8) -> LinkKey {
    LinkKey::new(id, vec![fill; 32]).unwrap()
}

fn claims(scope: &str, exp: u64, ip: Option<&str>) -> LinkClaims {
    LinkClaims {
        client_ip: ip.map(|s| s.parse().unwrap()),
        ..LinkClaims::new(Scope::parse(scope).unwrap(), exp)
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

fn payload_of(token: &str) -> String {
    let (p, _) = token.split_once('.').unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap()
}

fn with_payload(token: &str, payload: &str) -> String {
    let (_, mac) = token.split_once('.').unwrap();
    format!("{}.{mac}", URL_SAFE_NO_PAD.encode(payload))
}

/// Bucket `up`, keys under `u/`, GET/HEAD/PUT, ≤ 100 bytes of `image/*`
/// or `text/plain`, URLs of ≤ 300 s, valid until 1000.
fn grant_claims() -> GrantClaims {
    GrantClaims {
        expires_at: 1_000,
        client_ip: None,
        methods: Methods::PRESIGNABLE,
        bucket: "up".into(),
        keys: KeyScope::Prefix("u/".into()),
        max_content_length: Some(100),
        content_types: vec![
            ContentTypePattern::parse("image/*").unwrap(),
            ContentTypePattern::parse("text/plain").unwrap(),
        ],
        max_expires: 300,
    }
}

fn put<'a>(key: &'a str, len: u64, ct: &'a str) -> GrantRequest<'a> {
    GrantRequest {
        bucket: "up",
        key,
        method: PresignMethod::Put,
        content_length: Some(len),
        content_type: Some(ct),
        expires: 300,
    }
}

fn get(key: &str) -> GrantRequest<'_> {
    GrantRequest {
        bucket: "up",
        key,
        method: PresignMethod::Get,
        content_length: None,
        content_type: None,
        expires: 60,
    }
}

#[test]
fn link_round_trip_and_expiry_boundary() {
    let k = key("k1", 7);
    let c = claims("/video/a.mp4", 1_000, None);
    let t = issue_link(&k, &c).unwrap();
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
        "{t}"
    );
    assert_eq!(payload_of(&t), "v2|link|k1|1000||GET,HEAD|/video/a.mp4");
    assert_eq!(verify_link(&k, "/video/a.mp4", "GET", None, &t, 0), Ok(c.clone()));
    assert_eq!(verify_link(&k, "/video/a.mp4", "HEAD", None, &t, 999), Ok(c));
    for now in [1_000, u64::MAX] {
        assert_eq!(
            verify_link(&k, "/video/a.mp4", "GET", None, &t, now),
            Err(LinkError::Expired { expired_at: 1_000 })
        );
    }
}

#[test]
fn grant_round_trip_and_layout() {
    let k = key("k1", 7);
    let g = grant_claims();
    let t = issue_grant(&k, &g).unwrap();
    assert_eq!(
        payload_of(&t),
        "v2|presign|k1|1000||GET,HEAD,PUT|up|prefix|u/|100|image/*,text/plain|300"
    );
    assert_eq!(verify_grant(&k, &put("u/a.png", 100, "image/png"), None, &t, 999), Ok(g));
}

#[test]
fn links_and_grants_never_stand_in_for_each_other() {
    let k = key("k1", 7);
    let link = issue_link(&k, &claims("/_presign/up/u/", 1_000, None)).unwrap();
    let g = issue_grant(
        &k,
        &GrantClaims {
            keys: KeyScope::Prefix(String::new()),
            ..grant_claims()
        },
    )
    .unwrap();
    assert_eq!(
        verify_grant(&k, &get("u/a"), None, &link, 0),
        Err(LinkError::WrongAudience {
            expected: Audience::Presign,
            found: Audience::Link
        })
    );
    assert_eq!(
        verify_link(&k, "/_presign/up/u/a", "GET", None, &g, 0),
        Err(LinkError::WrongAudience {
            expected: Audience::Link,
            found: Audience::Presign
        })
    );
    // Domain separation: the audience field rewritten, or a payload of one
    // audience MAC'd under the other's prefix, never verifies.
    let relabeled = payload_of(&link).replacen("|link|", "|presign|", 1);
    assert!(matches!(
        verify_grant(&k, &get("u/a"), None, &with_payload(&link, &relabeled), 0),
        Err(LinkError::Malformed { .. })
    ));
    let grant_payload = payload_of(&g);
    let cross = seal_raw(&k, Audience::Link, &grant_payload).unwrap();
    assert_eq!(verify_grant(&k, &get("u/a"), None, &cross, 0), Err(LinkError::BadSignature));
    let link_payload = payload_of(&link);
    let cross = seal_raw(&k, Audience::Presign, &link_payload).unwrap();
    assert_eq!(
        verify_link(&k, "/_presign/up/u/a", "GET", None, &cross, 0),
        Err(LinkError::BadSignature)
    );
    // The MAC differs per audience for the very same bytes.
    let a = seal_raw(&k, Audience::Link, "x").unwrap();
    let b = seal_raw(&k, Audience::Presign, "x").unwrap();
    assert_ne!(a.split_once('.').unwrap().1, b.split_once('.').unwrap().1);
}

#[test]
fn every_claim_tampered_is_a_bad_signature() {
    let k = key("k1", 7);
    let link = issue_link(&k, &claims("/a/", 1_000, Some("192.0.2.1"))).unwrap();
    // Field index, replacement: each still parses, so only the MAC stops it.
    let link_cases: &[(usize, &str)] = &[
        (3, "2000"),
        (4, ""),
        (4, "192.0.2.2"),
        (5, "GET,HEAD,POST"),
        (5, "PUT"),
        (6, "/"),
        (6, "/a/b"),
    ];
    let link_payload = payload_of(&link);
    for (i, value) in link_cases {
        let mut f: Vec<&str> = link_payload.split('|').collect();
        f[*i] = value;
        let t = with_payload(&link, &f.join("|"));
        assert_eq!(
            verify_link(&k, "/a/b", "GET", ip("192.0.2.1"), &t, 0),
            Err(LinkError::BadSignature),
            "link field {i} = {value:?}"
        );
    }
    let g = issue_grant(&k, &grant_claims()).unwrap();
    let grant_cases: &[(usize, &str)] = &[
        (3, "2000"),
        (4, "192.0.2.1"),
        (5, "PUT"),
        (6, "other"),
        (7, "key"),
        (8, ""),
        (8, "u/a.png"),
        (9, "1000000"),
        (10, "*/*"),
        (10, "image/*"),
        (11, "604800"),
    ];
    let grant_payload = payload_of(&g);
    for (i, value) in grant_cases {
        let mut f: Vec<&str> = grant_payload.split('|').collect();
        f[*i] = value;
        let t = with_payload(&g, &f.join("|"));
        assert_eq!(
            verify_grant(&k, &put("u/a.png", 10, "image/png"), ip("192.0.2.1"), &t, 0),
            Err(LinkError::BadSignature),
            "grant field {i} = {value:?}"
        );
    }
    // Every single-character change of the MAC.
    for t in [&link, &g] {
        let (payload, mac) = t.split_once('.').unwrap();
        for i in 0..mac.len() {
            let mut bytes = mac.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = format!("{payload}.{}", String::from_utf8(bytes).unwrap());
            let r = verify_link(&k, "/a/b", "GET", ip("192.0.2.1"), &changed, 0);
            let r2 = verify_grant(&k, &put("u/a.png", 10, "image/png"), None, &changed, 0);
            for r in [r.map(|_| ()), r2.map(|_| ())] {
                assert!(
                    matches!(
                        r,
                        Err(LinkError::BadSignature)
                            | Err(LinkError::Malformed { .. })
                            | Err(LinkError::WrongAudience { .. })
                    ),
                    "{r:?}"
                );
            }
        }
    }
    // Another key with the same id.
    assert_eq!(
        verify_link(&key("k1", 8), "/a/b", "GET", ip("192.0.2.1"), &link, 0),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn link_methods() {
    let k = key("k1", 7);
    let read = issue_link(&k, &claims("/a", 10, None)).unwrap();
    for (method, ok) in [
        ("GET", true),
        ("HEAD", true),
        ("POST", false),
        ("PUT", false),
        ("DELETE", false),
        ("get", false),
        ("BREW", false),
    ] {
        let r = verify_link(&k, "/a", method, None, &read, 0);
        assert_eq!(r.is_ok(), ok, "{method}: {r:?}");
        if !ok {
            assert_eq!(
                r,
                Err(LinkError::MethodNotAllowed {
                    method: method.into(),
                    allowed: Methods::READ
                })
            );
        }
    }
    let post = LinkClaims {
        methods: Methods::parse_list("post, get").unwrap(),
        ..claims("/a", 10, None)
    };
    let t = issue_link(&k, &post).unwrap();
    assert!(payload_of(&t).contains("|GET,POST|"));
    assert!(verify_link(&k, "/a", "POST", None, &t, 0).is_ok());
    assert!(verify_link(&k, "/a", "HEAD", None, &t, 0).is_err());
    for bad in ["", "GET,,HEAD", "GET,GET", "FETCH"] {
        assert!(Methods::parse_list(bad).is_err(), "{bad:?}");
    }
    let none = LinkClaims {
        methods: Methods::default(),
        ..claims("/a", 10, None)
    };
    assert!(matches!(issue_link(&k, &none), Err(LinkError::Invalid { what: "methods", .. })));
}

#[test]
fn grant_limits() {
    let k = key("k1", 7);
    let t = issue_grant(&k, &grant_claims()).unwrap();
    let get_only = issue_grant(
        &k,
        &GrantClaims {
            methods: Methods::GET,
            max_content_length: None,
            content_types: vec![],
            ..grant_claims()
        },
    )
    .unwrap();
    let exact = issue_grant(
        &k,
        &GrantClaims {
            keys: KeyScope::Exact("u/a.png".into()),
            ..grant_claims()
        },
    )
    .unwrap();
    let any_type = issue_grant(
        &k,
        &GrantClaims {
            content_types: vec![ContentTypePattern::parse("*/*").unwrap()],
            ..grant_claims()
        },
    )
    .unwrap();
    let r = |token: &str, req: GrantRequest<'_>| verify_grant(&k, &req, None, token, 999).map(|_| ());
    let cases: Vec<(&str, &str, GrantRequest<'_>, Result<(), LinkError>)> = vec![
        ("within limits", &t, put("u/a.png", 100, "image/png"), Ok(())),
        ("zero bytes", &t, put("u/a.png", 0, "text/plain"), Ok(())),
        ("type params and case", &t, put("u/a", 1, "Text/Plain; charset=utf-8"), Ok(())),
        ("get", &t, get("u/x"), Ok(())),
        ("head", &t, GrantRequest { method: PresignMethod::Head, ..get("u/x") }, Ok(())),
        ("too large", &t, put("u/a.png", 101, "image/png"), Err(LinkError::TooLarge { length: 101, max: 100 })),
        (
            "type not allowed",
            &t,
            put("u/a", 1, "text/html"),
            Err(LinkError::ContentTypeNotAllowed {
                content_type: "text/html".into(),
                allowed: "image/*,text/plain".into(),
            }),
        ),
        ("type prefix is not a wildcard", &t, put("u/a", 1, "imagex/png"), Err(LinkError::ContentTypeNotAllowed { content_type: "imagex/png".into(), allowed: "image/*,text/plain".into() })),
        ("type without subtype", &t, put("u/a", 1, "image"), Err(LinkError::ContentTypeNotAllowed { content_type: "image".into(), allowed: "image/*,text/plain".into() })),
        ("any type", &any_type, put("u/a", 1, "application/x-anything"), Ok(())),
        ("no length", &t, GrantRequest { content_length: None, ..put("u/a", 1, "image/png") }, Err(LinkError::LengthRequired)),
        ("no type", &t, GrantRequest { content_type: None, ..put("u/a", 1, "image/png") }, Err(LinkError::ContentTypeRequired)),
        ("url lifetime", &t, GrantRequest { expires: 301, ..get("u/x") }, Err(LinkError::ExpiresTooLong { requested: 301, max: 300 })),
        ("other bucket", &t, GrantRequest { bucket: "down", ..get("u/x") }, Err(LinkError::WrongBucket { bucket: "down".into() })),
        ("other prefix", &t, get("v/x"), Err(LinkError::KeyOutOfScope { key: "v/x".into() })),
        ("prefix itself is raw", &t, get("u"), Err(LinkError::KeyOutOfScope { key: "u".into() })),
        ("dot segments", &t, get("u/../v/x"), Err(LinkError::KeyOutOfScope { key: "u/../v/x".into() })),
        ("exact key", &exact, put("u/a.png", 1, "image/png"), Ok(())),
        ("exact key, other key", &exact, put("u/a.png2", 1, "image/png"), Err(LinkError::KeyOutOfScope { key: "u/a.png2".into() })),
        ("get-only grant cannot upload", &get_only, put("u/a", 1, "image/png"), Err(LinkError::MethodNotAllowed { method: "PUT".into(), allowed: Methods::GET })),
        ("get-only grant cannot head", &get_only, GrantRequest { method: PresignMethod::Head, ..get("u/x") }, Err(LinkError::MethodNotAllowed { method: "HEAD".into(), allowed: Methods::GET })),
        ("get-only grant gets", &get_only, get("u/x"), Ok(())),
    ];
    for (name, token, req, want) in cases {
        assert_eq!(r(token, req), want, "{name}");
    }
    assert_eq!(
        verify_grant(&k, &get("u/x"), None, &t, 1_000),
        Err(LinkError::Expired { expired_at: 1_000 })
    );
    // Every refusal names its field for the presign endpoint.
    assert_eq!(LinkError::TooLarge { length: 1, max: 0 }.field(), "content_length");
    assert_eq!(LinkError::BadSignature.field(), "authorization");
}

#[test]
fn grants_are_validated_at_issue() {
    let k = key("k1", 7);
    let bad: Vec<(&str, GrantClaims)> = vec![
        ("methods", GrantClaims { methods: Methods::POST, ..grant_claims() }),
        ("methods", GrantClaims { methods: Methods::default(), ..grant_claims() }),
        ("max_content_length", GrantClaims { max_content_length: None, ..grant_claims() }),
        ("content_types", GrantClaims { content_types: vec![], ..grant_claims() }),
        ("limits", GrantClaims { methods: Methods::GET, ..grant_claims() }),
        ("max_expires", GrantClaims { max_expires: 0, ..grant_claims() }),
        ("max_expires", GrantClaims { max_expires: 604_801, ..grant_claims() }),
        ("bucket", GrantClaims { bucket: String::new(), ..grant_claims() }),
        ("key", GrantClaims { keys: KeyScope::Exact(String::new()), ..grant_claims() }),
        ("key", GrantClaims { keys: KeyScope::Prefix("u/../".into()), ..grant_claims() }),
        ("key", GrantClaims { keys: KeyScope::Prefix("u/\n".into()), ..grant_claims() }),
        ("expires_at", GrantClaims { expires_at: 1_000_000_000_000_000, ..grant_claims() }),
    ];
    for (what, c) in bad {
        match issue_grant(&k, &c) {
            Err(LinkError::Invalid { what: w, .. }) => assert_eq!(w, what, "{c:?}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    for bad in ["image", "image/", "/png", "*/png", "image/p ng", "image/png,text/plain", "image/p|ng"] {
        assert!(ContentTypePattern::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(ContentTypePattern::parse(" Image/PNG ").unwrap().as_str(), "image/png");
}

#[test]
fn separators_and_escapes_cannot_shift_fields() {
    let k = key("k1", 7);
    // A `|` and a `%` in a link scope.
    let c = claims("/a|b/%7C/", 10, None);
    let t = issue_link(&k, &c).unwrap();
    assert_eq!(payload_of(&t), "v2|link|k1|10||GET,HEAD|/a%7Cb/%257C/");
    assert_eq!(verify_link(&k, "/a|b/%7C/x", "GET", None, &t, 0), Ok(c));
    assert!(verify_link(&k, "/a|b/|/x", "GET", None, &t, 0).is_err());
    // Grant strings: bucket, key prefix with `|`, `%`, spaces, non-ASCII.
    let g = GrantClaims {
        bucket: "b|x".into(),
        keys: KeyScope::Prefix("u|100|*/*|9/ü %".into()),
        ..grant_claims()
    };
    let t = issue_grant(&k, &g).unwrap();
    assert_eq!(
        payload_of(&t),
        "v2|presign|k1|1000||GET,HEAD,PUT|b%7Cx|prefix|u%7C100%7C*/*%7C9/%C3%BC%20%25|100|image/*,text/plain|300"
    );
    let req = GrantRequest { bucket: "b|x", ..put("u|100|*/*|9/ü %/f", 1, "image/png") };
    assert_eq!(verify_grant(&k, &req, None, &t, 0), Ok(g));
    // Non-canonical or broken escapes in authentic tokens are malformed.
    for payload in [
        "v2|link|k1|10||GET|/a%41",
        "v2|link|k1|10||GET|/a%7c",
        "v2|link|k1|10||GET|/a%7",
        "v2|link|k1|10||GET|/a%",
        "v2|link|k1|10||GET|/a%20b",
        "v2|presign|k1|10||GET|up|prefix|%FF|||60",
    ] {
        let aud = if payload.contains("presign") { Audience::Presign } else { Audience::Link };
        let t = seal_raw(&k, aud, payload).unwrap();
        let r = match aud {
            Audience::Link => verify_link(&k, "/aA", "GET", None, &t, 0).map(|_| ()),
            Audience::Presign => verify_grant(&k, &get("x"), None, &t, 0).map(|_| ()),
        };
        assert!(matches!(r, Err(LinkError::Malformed { .. })), "{payload}: {r:?}");
    }
}

#[test]
fn version_1_is_refused_with_a_reason() {
    let k = key("k1", 7);
    for aud in [Audience::Link, Audience::Presign] {
        let v1 = seal_raw(&k, aud, "v1|k1|9999999999||/a").unwrap();
        assert_eq!(verify_link(&k, "/a", "GET", None, &v1, 0), Err(LinkError::RetiredVersion));
        assert_eq!(verify_grant(&k, &get("a"), None, &v1, 0), Err(LinkError::RetiredVersion));
    }
    // The v1 MAC layout too (HMAC over "offload-link\n" payload).
    let payload = "v1|k1|9999999999||/a";
    let mac = crate::sign::encode::hmac_sha256(&[7; 32], &[b"offload-link\n", payload.as_bytes()]);
    let t = format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(mac));
    let e = verify_link(&k, "/a", "GET", None, &t, 0).unwrap_err();
    assert_eq!(e.to_string(), "token: token version v1 is no longer accepted; reissue");
}

#[test]
fn scope_exact_prefix_and_traversal() {
    let k = key("k1", 7);
    let exact = issue_link(&k, &claims("/a/b.txt", 10, None)).unwrap();
    assert!(verify_link(&k, "/a/b.txt", "GET", None, &exact, 0).is_ok());
    for p in ["/a/b.txt2", "/a/b", "/a/", "/A/b.txt"] {
        assert_eq!(
            verify_link(&k, p, "GET", None, &exact, 0),
            Err(LinkError::OutOfScope { path: p.into() })
        );
    }
    let prefix = issue_link(&k, &claims("/media/", 10, None)).unwrap();
    assert!(verify_link(&k, "/media/x/y.mp4", "GET", None, &prefix, 0).is_ok());
    assert!(verify_link(&k, "/media/", "GET", None, &prefix, 0).is_ok());
    for p in [
        "/media",
        "/mediax/a",
        "/media/../secret",
        "/media/%2e%2e/secret",
        "/media/..%2fsecret",
        "/media/.%2E/x",
        "/media/a\\..\\b",
        "/other/",
    ] {
        assert!(
            matches!(
                verify_link(&k, p, "GET", None, &prefix, 0),
                Err(LinkError::OutOfScope { .. })
            ),
            "{p}"
        );
    }
    for bad in ["", "media/", "/a/../b", "/a/./", "/a\\b", "/a\nb", "/a b", "/ü"] {
        assert!(Scope::parse(bad).is_err(), "{bad:?}");
    }
    // Hand-built inconsistent scopes are refused at issue.
    let c = LinkClaims::new(Scope::Exact("/dir/".into()), 1);
    assert!(issue_link(&k, &c).is_err());
}

#[test]
fn client_ip_binding() {
    let k = key("k1", 7);
    let t = issue_link(&k, &claims("/a", 10, Some("192.0.2.7"))).unwrap();
    assert!(verify_link(&k, "/a", "GET", ip("192.0.2.7"), &t, 0).is_ok());
    assert!(verify_link(&k, "/a", "GET", ip("::ffff:192.0.2.7"), &t, 0).is_ok());
    assert_eq!(verify_link(&k, "/a", "GET", ip("192.0.2.8"), &t, 0), Err(LinkError::WrongIp));
    assert_eq!(verify_link(&k, "/a", "GET", None, &t, 0), Err(LinkError::WrongIp));
    let t6 = issue_link(&k, &claims("/a", 10, Some("2001:db8::1"))).unwrap();
    assert!(verify_link(&k, "/a", "GET", ip("2001:db8:0::1"), &t6, 0).is_ok());
    assert_eq!(verify_link(&k, "/a", "GET", ip("2001:db8::2"), &t6, 0), Err(LinkError::WrongIp));
    // Unbound tokens work from anywhere.
    let free = issue_link(&k, &claims("/a", 10, None)).unwrap();
    assert!(verify_link(&k, "/a", "GET", ip("203.0.113.1"), &free, 0).is_ok());
    let bound = issue_grant(&k, &GrantClaims { client_ip: ip("192.0.2.7"), ..grant_claims() }).unwrap();
    assert!(verify_grant(&k, &get("u/a"), ip("192.0.2.7"), &bound, 0).is_ok());
    assert_eq!(verify_grant(&k, &get("u/a"), ip("192.0.2.8"), &bound, 0), Err(LinkError::WrongIp));
}

#[test]
fn key_rotation_by_key_id() {
    let old = key("2024-01", 1);
    let new = key("2024-02", 2);
    let before = LinkKeySet::new(vec![old.clone()], "2024-01").unwrap();
    let during = LinkKeySet::new(vec![old.clone(), new.clone()], "2024-02").unwrap();
    let after = LinkKeySet::new(vec![new.clone()], "2024-02").unwrap();
    let old_token = issue_link(before.current().unwrap(), &claims("/a", 10, None)).unwrap();
    let new_token = issue_link(during.current().unwrap(), &claims("/a", 10, None)).unwrap();
    assert_eq!(during.current().unwrap().id(), "2024-02");
    assert!(verify_link(&during, "/a", "GET", None, &old_token, 0).is_ok());
    assert!(verify_link(&during, "/a", "GET", None, &new_token, 0).is_ok());
    assert!(verify_link(&after, "/a", "GET", None, &new_token, 0).is_ok());
    assert_eq!(
        verify_link(&after, "/a", "GET", None, &old_token, 0),
        Err(LinkError::UnknownKey { kid: "2024-01".into() })
    );
    assert_eq!(
        verify_link(&before, "/a", "GET", None, &new_token, 0),
        Err(LinkError::UnknownKey { kid: "2024-02".into() })
    );
    assert!(LinkKeySet::new(vec![old.clone(), old.clone()], "2024-01").is_err());
    assert!(LinkKeySet::new(vec![old], "nope").is_err());
}

#[test]
fn keys_are_validated_and_redacted() {
    assert!(LinkKey::new("k", vec![0; 31]).is_err());
    assert!(LinkKey::new("", vec![0; 32]).is_err());
    assert!(LinkKey::new("a|b", vec![0; 32]).is_err());
    assert!(LinkKey::new("x".repeat(33), vec![0; 32]).is_err());
    let k = LinkKey::new("kid", b"supersecretsupersecretsupersecret".to_vec()).unwrap();
    let dbg = format!("{k:?} {:?}", LinkKeySet::new(vec![k.clone()], "kid").unwrap());
    assert!(!dbg.contains("supersecret") && !dbg.contains("115, 117"), "{dbg}");
    assert!(dbg.contains("kid"));
    // No refusal message contains the secret.
    let t = issue_link(&k, &claims("/a", 10, None)).unwrap();
    for e in [
        verify_link(&k, "/b", "GET", None, &t, 0).unwrap_err(),
        verify_link(&k, "/a", "PUT", None, &t, 0).unwrap_err(),
        verify_grant(&k, &get("a"), None, &t, 0).unwrap_err(),
    ] {
        assert!(!e.to_string().contains("supersecret"), "{e}");
    }
}

#[test]
fn urls_carry_the_token() {
    let k = key("k1", 7);
    let c = claims("/dl/", 10, None);
    let url = issue_link_url(&k, &c, "/dl/file.zip").unwrap();
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, "/dl/file.zip");
    let t = token_from_query(query).unwrap();
    assert!(verify_link(&k, path, "GET", None, t, 0).is_ok());
    let with_query = issue_link_url(&k, &c, "/dl/f?x=1").unwrap();
    assert!(with_query.starts_with("/dl/f?x=1&token="));
    assert_eq!(token_from_query("a=1&token=abc&b=2"), Some("abc"));
    assert_eq!(token_from_query("tokenx=1"), None);
    assert!(matches!(issue_link_url(&k, &c, "/other"), Err(LinkError::OutOfScope { .. })));
}

#[test]
fn tokens_are_bounded() {
    let k = key("k1", 7);
    let long = format!("/{}", "a".repeat(3100));
    assert!(matches!(
        issue_link(&k, &claims(&long, 10, None)),
        Err(LinkError::Invalid { what: "claims", .. })
    ));
    let fits = format!("/{}", "a".repeat(2900));
    let t = issue_link(&k, &claims(&fits, 10, None)).unwrap();
    assert!(t.len() <= MAX_TOKEN_LEN);
    let oversized = format!("{t}{}", "A".repeat(MAX_TOKEN_LEN));
    assert_eq!(
        verify_link(&k, &fits, "GET", None, &oversized, 0),
        Err(LinkError::Malformed { what: "longer than 4096 bytes" })
    );
}

#[test]
fn malformed_tokens_never_panic() {
    let k = key("k1", 7);
    let good = issue_link(&k, &claims("/a", 10, None)).unwrap();
    let (_, mac) = good.split_once('.').unwrap();
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let fixed = [
        String::new(),
        ".".into(),
        "..".into(),
        "abc".into(),
        "abc.def".into(),
        "!!!.???".into(),
        format!("{}.{mac}", enc("v3|link|k1|10||GET|/a")),
        format!("{}.{mac}", enc("v2|link|k1|10||GET")),
        format!("{}.{mac}", enc("v2|link|k1")),
        format!("{}.{mac}", enc("v2|other|k1|10||GET|/a")),
        format!("{}.{}", enc("v2|link|k1|10||GET|/a"), enc("short")),
        format!("{}.{mac}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, b'|'])),
        "a".repeat(5000),
        format!("{good}.extra"),
        format!("{good}="),
    ];
    for t in &fixed {
        let r = verify_link(&k, "/a", "GET", None, t, 0);
        assert!(
            matches!(r, Err(LinkError::Malformed { .. }) | Err(LinkError::BadSignature)),
            "{t:?}: {r:?}"
        );
    }
    // Non-canonical base64 (stray trailing bits) is malformed, not a
    // second spelling of the same token.
    let (p, m) = good.split_once('.').unwrap();
    let last = m.chars().last().unwrap();
    let stray = format!("{p}.{}{}", &m[..m.len() - 1], if last == 'B' { 'C' } else { 'B' });
    assert!(matches!(verify_link(&k, "/a", "GET", None, &stray, 0), Err(LinkError::Malformed { .. })));
    // Authentic payloads with bad claims are still refused, not trusted.
    for payload in [
        "v2|link|k1|x||GET|/a",
        "v2|link|k1|10|nope|GET|/a",
        "v2|link|k1|10||GET|a",
        "v2|link|k1|||GET|/a",
        "v2|link|k1|10|||/a",
        "v2|link|k1|10||get|/a",
        "v2|link|k1|10||GET,GET|/a",
        "v2|link|k1|1000000000000000||GET|/a",
        "v2|link|k1|99999999999999999999||GET|/a",
        "v2|link|k1|10||GET|/a|extra",
    ] {
        let t = seal_raw(&k, Audience::Link, payload).unwrap();
        let r = verify_link(&k, "/a", "GET", None, &t, 0);
        assert!(matches!(r, Err(LinkError::Malformed { .. })), "{payload}: {r:?}");
    }
    for payload in [
        "v2|presign|k1|10||POST|up|prefix|u/|||60",
        "v2|presign|k1|10||PUT|up|prefix|u/|||60",
        "v2|presign|k1|10||PUT|up|prefix|u/|10||60",
        "v2|presign|k1|10||PUT|up|prefix|u/|10|Image/*|60",
        "v2|presign|k1|10||GET|up|prefix|u/|10||60",
        "v2|presign|k1|10||GET|up|dir|u/|||60",
        "v2|presign|k1|10||GET|up|key||||60",
        "v2|presign|k1|10||GET|up|prefix|u/|||0",
        "v2|presign|k1|10||GET|up|prefix|u/|||604801",
        "v2|presign|k1|10||GET||prefix|u/|||60",
    ] {
        let t = seal_raw(&k, Audience::Presign, payload).unwrap();
        let r = verify_grant(&k, &get("u/a"), None, &t, 0);
        assert!(matches!(r, Err(LinkError::Malformed { .. })), "{payload}: {r:?}");
    }
    // Pseudo-random garbage.
    let g = issue_grant(&k, &grant_claims()).unwrap();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        let alphabet = b"ab.|-_=+/v2k0%\xc3";
        let s: String = (0..len)
            .map(|i| char::from(alphabet[((x >> (i % 60)) as usize + i) % alphabet.len()]))
            .collect();
        let _ = verify_link(&k, "/a", "GET", None, &s, 0);
        let _ = verify_grant(&k, &get("u/a"), None, &s, 0);
        for t in [&good, &g] {
            let mut mutated = t.clone().into_bytes();
            let at = (x as usize) % mutated.len();
            mutated[at] = b"AZaz09-_."[(x >> 32) as usize % 9];
            let m = String::from_utf8_lossy(&mutated);
            assert!(m == t.as_str() || verify_link(&k, "/a", "GET", None, &m, 0).is_err(), "{m}");
            let _ = verify_grant(&k, &put("u/a", 1, "image/png"), None, &m, 0);
        }
    }
}
