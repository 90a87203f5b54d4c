//! Percent-encoding, hex and HMAC helpers shared by the signing modules.

use hmac::digest::generic_array::GenericArray;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// SigV4 `UriEncode`: everything except the RFC 3986 unreserved characters
/// `A-Z a-z 0-9 - . _ ~` is percent-encoded (upper-case hex). Non-ASCII bytes
/// are always encoded by `percent_encoding`.
pub(crate) const URI_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `UriEncode` for paths: like [`URI_ENCODE`] but `/` stays a separator.
pub(crate) const URI_ENCODE_PATH: &AsciiSet = &URI_ENCODE.remove(b'/');

/// Characters that can never appear raw in a URI path. Used when a path is
/// taken "as already encoded" (single encoding) but still contains them.
pub(crate) const NOT_IN_URI_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

pub(crate) fn uri_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URI_ENCODE).to_string()
}

pub(crate) fn uri_encode_path(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, URI_ENCODE_PATH).to_string()
}

pub(crate) fn uri_encode_path_bytes(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, URI_ENCODE_PATH).to_string()
}

/// `application/x-www-form-urlencoded` decoding of one name or value, as the
/// `form_urlencoded` crate (and so `aws-sigv4`) does it: `+` is a space,
/// `%XX` is a byte, malformed escapes stay literal, invalid UTF-8 becomes
/// U+FFFD.
pub(crate) fn form_decode(s: &str) -> String {
    let replaced;
    let s = if s.contains('+') {
        replaced = s.replace('+', " ");
        replaced.as_str()
    } else {
        s
    };
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Splits a raw query string into form-decoded pairs (empty pieces skipped).
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((k, v)) => (form_decode(k), form_decode(v)),
            None => (form_decode(piece), String::new()),
        })
        .collect()
}

const HEX: &[u8; 16] = b"0123456789abcdef";

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// HMAC-SHA256 over the concatenation of `parts`.
///
/// The key is brought to the block size by hand (hashed when longer, zero
/// padded when shorter, exactly as RFC 2104 does) so that the fixed-size
/// constructor is used and there is no fallible path at all.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut block: GenericArray<
        u8,
        <Hmac<Sha256> as hmac::digest::crypto_common::KeySizeUser>::KeySize,
    > = GenericArray::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        for (dst, src) in block.iter_mut().zip(digest.iter()) {
            *dst = *src;
        }
    } else {
        for (dst, src) in block.iter_mut().zip(key.iter()) {
            *dst = *src;
        }
    }
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block);
    for part in parts {
        mac.update(part);
    }
    let tag = mac.finalize().into_bytes();
    let mut out = [0u8; 32];
    for (dst, src) in out.iter_mut().zip(tag.iter()) {
        *dst = *src;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2_and_6() {
        // RFC 4231 test case 2 (short key) and 6 (key longer than a block).
        assert_eq!(
            hex(&hmac_sha256(
                b"Jefe",
                &[b"what do ya want ", b"for nothing?"]
            )),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let key = [0xaau8; 131];
        assert_eq!(
            hex(&hmac_sha256(
                &key,
                &[b"Test Using Larger Than Block-Size Key - Hash Key First"]
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn uri_encode_keeps_only_unreserved() {
        assert_eq!(uri_encode("a-b_c.d~e/f g+h%"), "a-b_c.d~e%2Ff%20g%2Bh%25");
        assert_eq!(uri_encode_path("a b/ሴ"), "a%20b/%E1%88%B4");
    }

    #[test]
    fn form_decode_treats_plus_as_space_and_keeps_bad_escapes() {
        assert_eq!(form_decode("a+b%20c%zz%"), "a b c%zz%");
    }
}
