//! SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104) for the signers.
//!
//! Why not the `sha2` crate here: the release profile is `opt-level = "s"`,
//! and under it `sha2` 0.10's portable backend (the one used on CPUs
//! without SHA-NI and on Wasm) keeps its round helpers out of line, which
//! made hashing ~2× slower than it needs to be — and a presigned URL is
//! ~30 compressions. Here a round is a macro, written out in the compression
//! loop, so its speed does not depend on the optimizer's inlining choices.
//! (The 64 rounds stay a loop: unrolling them was ~10% faster natively but
//! ~7 KB more Wasm.) It is checked against `sha2` in the tests below (every
//! length up to several blocks, split updates) and by the whole AWS signing
//! suite.
//!
//! HMAC keys are kept as the two hash states after the padded key block
//! ([`HmacKey`]), so a key used more than once costs its two key blocks once.

const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

const H0: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const BLOCK: usize = 64;

fn compress(state: &mut [u32; 8], block: &[u8; BLOCK]) {
    let mut w = [0u32; 16];
    for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;

    // One round; rounds 16.. first extend the message schedule in place.
    macro_rules! round {
        ($i:expr) => {{
            let i: usize = $i;
            if i >= 16 {
                let w15 = w[(i + 1) & 15];
                let w2 = w[(i + 14) & 15];
                let s0 = w15.rotate_right(7) ^ w15.rotate_right(18) ^ (w15 >> 3);
                let s1 = w2.rotate_right(17) ^ w2.rotate_right(19) ^ (w2 >> 10);
                w[i & 15] = w[i & 15]
                    .wrapping_add(s0)
                    .wrapping_add(w[(i + 9) & 15])
                    .wrapping_add(s1);
            }
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i & 15]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }};
    }
    for i in 0..64 {
        round!(i);
    }

    for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
        *s = s.wrapping_add(v);
    }
}

/// Incremental SHA-256.
#[derive(Clone)]
pub(crate) struct Sha256 {
    state: [u32; 8],
    buf: [u8; BLOCK],
    buf_len: usize,
    /// Bytes hashed so far (the length field counts bits, mod 2^64).
    len: u64,
}

impl Sha256 {
    pub(crate) const fn new() -> Self {
        Self {
            state: H0,
            buf: [0; BLOCK],
            buf_len: 0,
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (BLOCK - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < BLOCK {
                return;
            }
            compress(&mut self.state, &self.buf);
            self.buf_len = 0;
        }
        let mut blocks = data.chunks_exact(BLOCK);
        for block in &mut blocks {
            let mut b = [0u8; BLOCK];
            b.copy_from_slice(block);
            compress(&mut self.state, &b);
        }
        let rest = blocks.remainder();
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    pub(crate) fn finalize(mut self) -> [u8; 32] {
        let bits = self.len.wrapping_mul(8);
        let n = self.buf_len;
        self.buf[n] = 0x80;
        self.buf[n + 1..].fill(0);
        if n + 1 > BLOCK - 8 {
            compress(&mut self.state, &self.buf);
            self.buf.fill(0);
        }
        self.buf[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, &self.buf);
        let mut out = [0u8; 32];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_be_bytes());
        }
        out
    }

    pub(crate) fn digest(data: &[u8]) -> [u8; 32] {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

/// An HMAC-SHA256 key, as the inner and outer hash states after its padded
/// key block. Cloning one is cheap; [`HmacKey::mac`] costs only the message.
#[derive(Clone)]
pub(crate) struct HmacKey {
    inner: Sha256,
    outer: Sha256,
}

impl HmacKey {
    /// RFC 2104: a key longer than a block is hashed first, shorter keys
    /// are zero padded.
    pub(crate) fn new(key: &[u8]) -> Self {
        let mut block = [0u8; BLOCK];
        if key.len() > BLOCK {
            block[..32].copy_from_slice(&Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        Self::from_block(block)
    }

    /// The key `prefix ‖ key` without building it (`"AWS4" + secret`).
    pub(crate) fn with_prefix(prefix: &[u8], key: &[u8]) -> Self {
        let total = prefix.len() + key.len();
        if total > BLOCK {
            let mut h = Sha256::new();
            h.update(prefix);
            h.update(key);
            let mut block = [0u8; BLOCK];
            block[..32].copy_from_slice(&h.finalize());
            Self::from_block(block)
        } else {
            let mut block = [0u8; BLOCK];
            block[..prefix.len()].copy_from_slice(prefix);
            block[prefix.len()..total].copy_from_slice(key);
            Self::from_block(block)
        }
    }

    fn from_block(block: [u8; BLOCK]) -> Self {
        let mut ipad = [0x36u8; BLOCK];
        let mut opad = [0x5cu8; BLOCK];
        for ((i, o), k) in ipad.iter_mut().zip(opad.iter_mut()).zip(block) {
            *i ^= k;
            *o ^= k;
        }
        let mut inner = Sha256::new();
        inner.update(&ipad);
        let mut outer = Sha256::new();
        outer.update(&opad);
        Self { inner, outer }
    }

    /// HMAC over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut inner = self.inner.clone();
        for part in parts {
            inner.update(part);
        }
        let mut outer = self.outer.clone();
        outer.update(&inner.finalize());
        outer.finalize()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use hmac::{Hmac, Mac};
    use sha2::Digest;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn matches_sha2_for_every_length_and_split() {
        for n in 0..400 {
            let d = data(n);
            let want: [u8; 32] = sha2::Sha256::digest(&d).into();
            assert_eq!(Sha256::digest(&d), want, "length {n}");
            for split in [1, 3, 55, 56, 63, 64, 65, 130] {
                let mut h = Sha256::new();
                for piece in d.chunks(split) {
                    h.update(piece);
                }
                assert_eq!(h.finalize(), want, "length {n} in pieces of {split}");
            }
        }
    }

    #[test]
    fn known_vectors() {
        let hex = super::super::encode::hex;
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hmac_matches_the_hmac_crate_for_key_lengths_around_a_block() {
        for key_len in [0, 1, 4, 32, 44, 60, 63, 64, 65, 100, 200] {
            let key = data(key_len);
            for msg_len in [0, 1, 55, 64, 150] {
                let msg = data(msg_len);
                let mut m = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
                m.update(&msg);
                let want: [u8; 32] = m.finalize().into_bytes().into();
                assert_eq!(HmacKey::new(&key).mac(&[&msg]), want, "{key_len}/{msg_len}");
                let (p, k) = key.split_at(key_len.min(4));
                assert_eq!(HmacKey::with_prefix(p, k).mac(&[&msg]), want);
            }
        }
    }
}
