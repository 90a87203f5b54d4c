//! Percent-encoding, hex and HMAC helpers shared by the signing modules.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 (RustCrypto `hmac` over `sha2`). A value made by
/// [`hmac_key`] holds the inner and outer hash states after the padded key
/// block, so cloning it and feeding only the message is how a key used more
/// than once pays for its two key blocks once.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// SHA-256 block size (bytes), the length HMAC pads its key to.
const BLOCK: usize = 64;

/// SigV4 `UriEncode`: everything except the RFC 3986 unreserved characters
/// `A-Z a-z 0-9 - . _ ~` is percent-encoded (upper-case hex). Non-ASCII bytes
/// are always encoded by `percent_encoding`.
#[cfg_attr(not(test), allow(dead_code))] // the reference for `push_uri_encoded`
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

#[cfg(test)]
pub(crate) fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_uri_encoded(&mut out, s, false);
    out
}

pub(crate) fn uri_encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_uri_encoded(&mut out, s, true);
    out
}

pub(crate) fn uri_encode_path_bytes(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, URI_ENCODE_PATH).to_string()
}

/// Bytes `UriEncode` keeps: `A-Z a-z 0-9 - . _ ~` (1), and `/` in paths (2).
const KEEP: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'.' || c == b'_' || c == b'~' {
            t[b] = 3;
        }
        b += 1;
    }
    t[b'/' as usize] = 2;
    t
};

/// Appends `UriEncode(s)` to `out` (with `/` kept when `keep_slash`): the
/// same bytes as `percent_encoding` with [`URI_ENCODE`] / [`URI_ENCODE_PATH`],
/// without its `Display` round trip. Unreserved runs are copied whole.
pub(crate) fn push_uri_encoded(out: &mut String, s: &str, keep_slash: bool) {
    const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mask = if keep_slash { 2 } else { 1 };
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if KEEP[usize::from(b)] & mask != 0 {
            continue;
        }
        // `i` is at a byte that is not ASCII-unreserved and `start` just
        // after one: both are char boundaries, so this never falls back.
        out.push_str(s.get(start..i).unwrap_or_default());
        out.push('%');
        out.push(char::from(UPPER_HEX[usize::from(b >> 4)]));
        out.push(char::from(UPPER_HEX[usize::from(b & 0x0f)]));
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
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

/// Lower-case hex of a 32-byte digest, on the stack.
pub(crate) fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0x0f)];
    }
    out
}

/// Appends the lower-case hex of a 32-byte digest to `out`.
pub(crate) fn push_hex32(out: &mut String, bytes: &[u8; 32]) {
    let h = hex32(bytes);
    // Hex digits are ASCII.
    out.push_str(std::str::from_utf8(&h).unwrap_or_default());
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    push_hex32(&mut out, &sha256(data));
    out
}

/// The HMAC-SHA256 key `key_parts[0] ‖ key_parts[1] ‖ …` (e.g. `"AWS4"` and
/// a secret, without building the joined string), ready to clone.
///
/// RFC 2104: a key longer than a block is hashed first, a shorter one is
/// zero padded — done here so the key is always exactly one block and
/// making the state cannot fail (`new_from_slice` returns a `Result`).
pub(crate) fn hmac_key(key_parts: &[&[u8]]) -> HmacSha256 {
    let mut block = [0u8; BLOCK];
    let len: usize = key_parts.iter().map(|p| p.len()).sum();
    if len > BLOCK {
        let mut h = Sha256::new();
        for part in key_parts {
            h.update(part);
        }
        block[..32].copy_from_slice(&h.finalize());
    } else {
        for (b, k) in block.iter_mut().zip(key_parts.iter().flat_map(|p| p.iter())) {
            *b = *k;
        }
    }
    <HmacSha256 as KeyInit>::new(&block.into())
}

/// HMAC over the concatenation of `parts` with a prepared key state.
pub(crate) fn hmac_with(key: &HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = key.clone();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 over the concatenation of `parts`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    hmac_with(&hmac_key(&[key]), parts)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn sha256_known_answers() {
        // FIPS 180-2 examples: empty, one block, two blocks.
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn hmac_key_parts_join_into_one_key() {
        // "AWS4" + secret given in two parts is the joined key, for keys
        // shorter than, equal to and longer than a block.
        for len in [0, 1, 60, 64, 65, 131] {
            let secret = vec![0x5a; len];
            let joined = [b"AWS4".as_slice(), &secret].concat();
            assert_eq!(
                hmac_with(&hmac_key(&[b"AWS4", &secret]), &[b"20150830"]),
                hmac_sha256(&joined, &[b"20150830"]),
                "{len}"
            );
        }
    }

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
        // Same bytes as `percent_encoding` for every byte value.
        let all: String = (0..=0x3ffu32)
            .filter_map(char::from_u32)
            .chain("a/b~c😀日本%é".chars())
            .collect();
        assert_eq!(
            uri_encode_path(&all),
            percent_encoding::utf8_percent_encode(&all, URI_ENCODE_PATH).to_string()
        );
        assert_eq!(
            uri_encode(&all),
            percent_encoding::utf8_percent_encode(&all, URI_ENCODE).to_string()
        );
    }

    #[test]
    fn form_decode_treats_plus_as_space_and_keeps_bad_escapes() {
        assert_eq!(form_decode("a+b%20c%zz%"), "a b c%zz%");
    }
}
