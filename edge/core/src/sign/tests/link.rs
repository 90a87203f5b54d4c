#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::sign::link::{
    issue, issue_url, token_from_query, verify, Claims, LinkError, LinkKey, LinkKeySet, Scope,
};

fn key(id: &str, fill: u8) -> LinkKey {
    LinkKey::new(id, vec![fill; 32]).unwrap()
}

fn claims(scope: &str, exp: u64, ip: Option<&str>) -> Claims {
    Claims {
        expires_at: exp,
        scope: Scope::parse(scope).unwrap(),
        client_ip: ip.map(|s| s.parse().unwrap()),
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn round_trip_and_expiry_boundary() {
    let k = key("k1", 7);
    let c = claims("/video/a.mp4", 1_000, None);
    let t = issue(&k, &c).unwrap();
    assert!(
        t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
        "{t}"
    );
    assert_eq!(verify(&k, "/video/a.mp4", None, &t, 0), Ok(c.clone()));
    assert_eq!(verify(&k, "/video/a.mp4", None, &t, 999), Ok(c));
    assert_eq!(
        verify(&k, "/video/a.mp4", None, &t, 1_000),
        Err(LinkError::Expired { expired_at: 1_000 })
    );
    assert_eq!(
        verify(&k, "/video/a.mp4", None, &t, u64::MAX),
        Err(LinkError::Expired { expired_at: 1_000 })
    );
}

#[test]
fn tampering_is_a_bad_signature() {
    let k = key("k1", 7);
    let t = issue(&k, &claims("/a", 1_000, None)).unwrap();
    let (payload, mac) = t.split_once('.').unwrap();
    // A payload with a later expiry, the old MAC.
    let forged = URL_SAFE_NO_PAD.encode("v1|k1|999999|||/a".replace("|||", "||"));
    assert_eq!(
        verify(&k, "/a", None, &format!("{forged}.{mac}"), 0),
        Err(LinkError::BadSignature)
    );
    // Every single-character change of the MAC.
    for i in 0..mac.len() {
        let mut bytes = mac.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let changed = format!("{payload}.{}", String::from_utf8(bytes).unwrap());
        let r = verify(&k, "/a", None, &changed, 0);
        assert!(
            matches!(r, Err(LinkError::BadSignature) | Err(LinkError::Malformed)),
            "{r:?}"
        );
    }
    // Another key with the same id.
    assert_eq!(
        verify(&key("k1", 8), "/a", None, &t, 0),
        Err(LinkError::BadSignature)
    );
}

#[test]
fn scope_exact_prefix_and_traversal() {
    let k = key("k1", 7);
    let exact = issue(&k, &claims("/a/b.txt", 10, None)).unwrap();
    assert!(verify(&k, "/a/b.txt", None, &exact, 0).is_ok());
    for p in ["/a/b.txt2", "/a/b", "/a/", "/A/b.txt"] {
        assert_eq!(
            verify(&k, p, None, &exact, 0),
            Err(LinkError::OutOfScope { path: p.into() })
        );
    }
    let prefix = issue(&k, &claims("/media/", 10, None)).unwrap();
    assert!(verify(&k, "/media/x/y.mp4", None, &prefix, 0).is_ok());
    assert!(verify(&k, "/media/", None, &prefix, 0).is_ok());
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
                verify(&k, p, None, &prefix, 0),
                Err(LinkError::OutOfScope { .. })
            ),
            "{p}"
        );
    }
    for bad in ["", "media/", "/a/../b", "/a/./", "/a\\b", "/a\nb"] {
        assert!(Scope::parse(bad).is_err(), "{bad:?}");
    }
    // Hand-built inconsistent scopes are refused at issue.
    let c = Claims {
        expires_at: 1,
        scope: Scope::Exact("/dir/".into()),
        client_ip: None,
    };
    assert!(issue(&k, &c).is_err());
}

#[test]
fn client_ip_binding() {
    let k = key("k1", 7);
    let t = issue(&k, &claims("/a", 10, Some("192.0.2.7"))).unwrap();
    assert!(verify(&k, "/a", ip("192.0.2.7"), &t, 0).is_ok());
    assert!(verify(&k, "/a", ip("::ffff:192.0.2.7"), &t, 0).is_ok());
    assert_eq!(
        verify(&k, "/a", ip("192.0.2.8"), &t, 0),
        Err(LinkError::WrongIp)
    );
    assert_eq!(verify(&k, "/a", None, &t, 0), Err(LinkError::WrongIp));
    let t6 = issue(&k, &claims("/a", 10, Some("2001:db8::1"))).unwrap();
    assert!(verify(&k, "/a", ip("2001:db8:0::1"), &t6, 0).is_ok());
    assert_eq!(
        verify(&k, "/a", ip("2001:db8::2"), &t6, 0),
        Err(LinkError::WrongIp)
    );
    // Unbound tokens work from anywhere.
    let free = issue(&k, &claims("/a", 10, None)).unwrap();
    assert!(verify(&k, "/a", ip("203.0.113.1"), &free, 0).is_ok());
}

#[test]
fn key_rotation_by_key_id() {
    let old = key("2024-01", 1);
    let new = key("2024-02", 2);
    let before = LinkKeySet::new(vec![old.clone()], "2024-01").unwrap();
    let during = LinkKeySet::new(vec![old.clone(), new.clone()], "2024-02").unwrap();
    let after = LinkKeySet::new(vec![new.clone()], "2024-02").unwrap();
    let old_token = issue(before.current().unwrap(), &claims("/a", 10, None)).unwrap();
    let new_token = issue(during.current().unwrap(), &claims("/a", 10, None)).unwrap();
    assert_eq!(during.current().unwrap().id(), "2024-02");
    assert!(verify(&during, "/a", None, &old_token, 0).is_ok());
    assert!(verify(&during, "/a", None, &new_token, 0).is_ok());
    assert!(verify(&after, "/a", None, &new_token, 0).is_ok());
    assert_eq!(
        verify(&after, "/a", None, &old_token, 0),
        Err(LinkError::UnknownKey {
            kid: "2024-01".into()
        })
    );
    assert_eq!(
        verify(&before, "/a", None, &new_token, 0),
        Err(LinkError::UnknownKey {
            kid: "2024-02".into()
        })
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
    let dbg = format!(
        "{k:?} {:?}",
        LinkKeySet::new(vec![k.clone()], "kid").unwrap()
    );
    assert!(
        !dbg.contains("supersecret") && !dbg.contains("115, 117"),
        "{dbg}"
    );
    assert!(dbg.contains("kid"));
}

#[test]
fn urls_carry_the_token() {
    let k = key("k1", 7);
    let c = claims("/dl/", 10, None);
    let url = issue_url(&k, &c, "/dl/file.zip").unwrap();
    let (path, query) = url.split_once('?').unwrap();
    assert_eq!(path, "/dl/file.zip");
    let t = token_from_query(query).unwrap();
    assert!(verify(&k, path, None, t, 0).is_ok());
    let with_query = issue_url(&k, &c, "/dl/f?x=1").unwrap();
    assert!(with_query.starts_with("/dl/f?x=1&token="));
    assert_eq!(token_from_query("a=1&token=abc&b=2"), Some("abc"));
    assert_eq!(token_from_query("tokenx=1"), None);
    assert!(matches!(
        issue_url(&k, &c, "/other"),
        Err(LinkError::OutOfScope { .. })
    ));
}

#[test]
fn malformed_tokens_never_panic() {
    let k = key("k1", 7);
    let good = issue(&k, &claims("/a", 10, None)).unwrap();
    let (_, mac) = good.split_once('.').unwrap();
    let enc = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let fixed = [
        String::new(),
        ".".into(),
        "..".into(),
        "abc".into(),
        "abc.def".into(),
        "!!!.???".into(),
        format!("{}.{mac}", enc("v2|k1|10||/a")),
        format!("{}.{mac}", enc("v1|k1|10|")),
        format!("{}.{mac}", enc("v1|k1")),
        format!("{}.{}", enc("v1|k1|10||/a"), enc("short")),
        format!("{}.{mac}", URL_SAFE_NO_PAD.encode([0xff, 0xfe, b'|'])),
        "a".repeat(5000),
        format!("{good}.extra"),
        format!("{good}="),
    ];
    for t in &fixed {
        let r = verify(&k, "/a", None, t, 0);
        assert!(
            matches!(r, Err(LinkError::Malformed) | Err(LinkError::BadSignature)),
            "{t:?}: {r:?}"
        );
    }
    // Authentic payloads with bad claims are still refused, not trusted.
    for payload in [
        "v1|k1|x||/a",
        "v1|k1|10|nope|/a",
        "v1|k1|10||a",
        "v1|k1|||/a",
        "v1|k1|99999999999999999999||/a",
    ] {
        let mac =
            crate::sign::encode::hmac_sha256(&[7; 32], &[b"offload-link\n", payload.as_bytes()]);
        let t = format!("{}.{}", enc(payload), URL_SAFE_NO_PAD.encode(mac));
        assert_eq!(
            verify(&k, "/a", None, &t, 0),
            Err(LinkError::Malformed),
            "{payload}"
        );
    }
    // Pseudo-random garbage.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 120) as usize;
        let alphabet = b"ab.|-_=+/v1k0\xc3";
        let s: String = (0..len)
            .map(|i| char::from(alphabet[((x >> (i % 60)) as usize + i) % alphabet.len()]))
            .collect();
        let _ = verify(&k, "/a", None, &s, 0);
        let mut mutated = good.clone().into_bytes();
        let at = (x as usize) % mutated.len();
        mutated[at] = b"AZaz09-_."[(x >> 32) as usize % 9];
        let _ = verify(&k, "/a", None, &String::from_utf8_lossy(&mutated), 0);
    }
}
