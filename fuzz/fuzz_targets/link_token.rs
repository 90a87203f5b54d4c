//! Signed-link tokens (v2): `sign::link::verify_link` on any token, path,
//! method and client address, and on tampered copies of valid tokens.
//!
//! Input: `mode \0 token-or-edit \0 path \0 ip \0 now \0 method`.
//! Invariants: never panics; a token that verifies is byte-for-byte the
//! token `issue_link` makes for the claims it carries (no second spelling
//! of a valid token exists, so any accepted input was minted with the key);
//! the accepted path is inside the scope, the method allowed, not expired;
//! no link token is ever a presign grant; a valid token with any edit
//! (flip, insert, delete a byte, truncate) is refused.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use offload_core::sign::link::{issue_link, verify_grant, verify_link, GrantRequest, LinkClaims, LinkKey, LinkKeySet, Methods, Scope};
use offload_core::sign::PresignMethod;
use offload_fuzz::{Fields, LINK_KEY_ID, LINK_SECRET};

const OLD_SECRET: &[u8] = b"an-older-fuzz-key-0123456789abcdefghij";

fn keys() -> LinkKeySet {
    let k1 = LinkKey::new(LINK_KEY_ID, LINK_SECRET.as_bytes().to_vec()).expect("key");
    let k2 = LinkKey::new("old", OLD_SECRET.to_vec()).expect("key");
    LinkKeySet::new(vec![k1, k2], LINK_KEY_ID).expect("key set")
}

fn not_a_grant(keys: &LinkKeySet, token: &str, now: u64) {
    let req = GrantRequest { bucket: "uploads", key: "k", method: PresignMethod::Get, content_length: None, content_type: None, expires: 1 };
    assert!(verify_grant(keys, &req, None, token, now).is_err(), "a link token verified as a grant");
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let mode = f.bytes(0).first().copied().unwrap_or(0);
    let keys = keys();
    let path = f.text(2);
    let ip: Option<IpAddr> = f.text(3).parse().ok();
    let now = f.num(4).min(u64::MAX - 61);
    let method = f.text(5);
    let method = if method.is_empty() { "GET".to_owned() } else { method };

    if mode & 1 == 0 {
        // Any token at all.
        let token = f.text(1);
        if let Ok(claims) = verify_link(&keys, &path, &method, ip, &token, now) {
            assert!(now < claims.expires_at);
            assert!(claims.scope.allows(&path));
            assert!(claims.methods.allows(&method));
            let current = keys.current().expect("current key");
            let old = LinkKey::new("old", OLD_SECRET.to_vec()).expect("key");
            let spellings = [issue_link(current, &claims).expect("reissue"), issue_link(&old, &claims).expect("reissue")];
            assert!(spellings.contains(&token), "a second spelling of a valid token verified");
        }
        not_a_grant(&keys, &token, now);
        return;
    }

    // A valid token for `path`, then one edit chosen by the input.
    let Ok(scope) = Scope::parse(&path) else { return };
    let methods = if mode & 0x80 != 0 { Methods::ALL } else { Methods::READ };
    let claims = LinkClaims { expires_at: now.saturating_add(60).clamp(1, 999_999_999_999_999), scope, client_ip: ip, methods };
    if claims.expires_at <= now {
        return;
    }
    let key = keys.current().expect("current key");
    let Ok(token) = issue_link(key, &claims) else { return };
    assert_eq!(verify_link(&keys, &path, "GET", ip, &token, now), Ok(claims.clone()), "a fresh token is refused");
    not_a_grant(&keys, &token, now);
    let edit = f.bytes(1);
    let pos = usize::from(edit.first().copied().unwrap_or(0)) << 8 | usize::from(edit.get(1).copied().unwrap_or(0));
    let byte = edit.get(2).copied().unwrap_or(b'A');
    let mut bytes = token.clone().into_bytes();
    let at = pos % (bytes.len() + 1);
    match mode >> 1 & 3 {
        0 if at < bytes.len() => bytes[at] ^= byte.max(1),
        1 => bytes.insert(at, byte),
        2 if at < bytes.len() => {
            bytes.remove(at);
        }
        3 => bytes.truncate(at),
        _ => return,
    }
    let tampered = String::from_utf8_lossy(&bytes).into_owned();
    if tampered != token {
        assert!(verify_link(&keys, &path, "GET", ip, &tampered, now).is_err(), "a tampered token verified: {tampered:?}");
    }
});
