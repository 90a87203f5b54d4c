//! Signed-link tokens: `sign::link::verify` on any token, path and client
//! address, and on tampered copies of valid tokens.
//!
//! Input: `mode \0 token-or-edit \0 path \0 ip \0 now`.
//! Invariants: never panics; a token that verifies is byte-for-byte the
//! token `issue` makes for the claims it carries (no second spelling of a
//! valid token exists, so any accepted input was minted with the key); the
//! accepted path is inside the scope and not expired; a valid token with
//! any edit (flip, insert, delete a byte) is refused.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use offload_core::sign::link::{issue, verify, Claims, LinkKey, LinkKeySet, Scope};
use offload_fuzz::{Fields, LINK_KEY_ID, LINK_SECRET};

fn keys() -> LinkKeySet {
    let k1 = LinkKey::new(LINK_KEY_ID, LINK_SECRET.as_bytes().to_vec()).expect("key");
    let k2 = LinkKey::new("old", b"an-older-fuzz-key-0123456789abcdefghij".to_vec()).expect("key");
    LinkKeySet::new(vec![k1, k2], LINK_KEY_ID).expect("key set")
}

fuzz_target!(|data: &[u8]| {
    let f = Fields::new(data);
    let mode = f.bytes(0).first().copied().unwrap_or(0);
    let keys = keys();
    let path = f.text(2);
    let ip: Option<IpAddr> = f.text(3).parse().ok();
    let now = f.num(4).min(u64::MAX - 61);

    if mode & 1 == 0 {
        // Any token at all.
        let token = f.text(1);
        if let Ok(claims) = verify(&keys, &path, ip, &token, now) {
            assert!(now < claims.expires_at);
            assert!(claims.scope.allows(&path));
            let key = keys.current().expect("current key");
            let reissued = issue(key, &claims).expect("reissue");
            let other = LinkKey::new("old", b"an-older-fuzz-key-0123456789abcdefghij".to_vec()).expect("key");
            let reissued_old = issue(&other, &claims).expect("reissue");
            assert!(token == reissued || token == reissued_old, "a second spelling of a valid token verified");
        }
        return;
    }

    // A valid token for `path`, then one edit chosen by the input.
    let Ok(scope) = Scope::parse(&path) else { return };
    let claims = Claims { expires_at: now.saturating_add(60).max(1), scope, client_ip: ip };
    let key = keys.current().expect("current key");
    let Ok(token) = issue(key, &claims) else { return };
    assert_eq!(verify(&keys, &path, ip, &token, now), Ok(claims.clone()), "a fresh token is refused");
    let edit = f.bytes(1);
    let pos = usize::from(edit.first().copied().unwrap_or(0)) << 8 | usize::from(edit.get(1).copied().unwrap_or(0));
    let byte = edit.get(2).copied().unwrap_or(b'A');
    let mut bytes = token.clone().into_bytes();
    let at = pos % (bytes.len() + 1);
    match mode >> 1 & 3 {
        0 => {
            if at == bytes.len() {
                return;
            }
            bytes[at] ^= byte.max(1);
        }
        1 => bytes.insert(at, byte),
        2 => {
            if at == bytes.len() {
                return;
            }
            bytes.remove(at);
        }
        _ => bytes.truncate(at),
    }
    let tampered = String::from_utf8_lossy(&bytes).into_owned();
    if tampered != token {
        assert!(verify(&keys, &path, ip, &tampered, now).is_err(), "a tampered token verified: {tampered:?}");
    }
});
