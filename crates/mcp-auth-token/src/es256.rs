//! ES256 signatures in one form only. An ECDSA signature `(r, s)` is
//! equally valid as `(r, n - s)`, so every signed token has a twin with
//! the same claims. mcp-auth signs with the low `s` (at most `n / 2`) and
//! refuses the other, so a token has exactly one valid encoding.

/// The order `n` of the P-256 group, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n / 2`, rounded down, big-endian.
const HALF_N: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

/// Whether `signature` (JOSE form: `r || s`, 32 bytes each) has a low
/// `s`. Anything that is not 64 bytes is not.
pub fn is_low_s(signature: &[u8]) -> bool {
    signature.len() == 64 && signature[32..] <= HALF_N[..]
}

/// Rewrites a JOSE-form signature (`r || s`) with a high `s` into its low
/// twin `(r, n - s)`, which verifies the same. Signatures already low, and
/// anything that is not 64 bytes, are left alone.
pub fn normalize(signature: &mut [u8]) {
    if signature.len() != 64 || is_low_s(signature) {
        return;
    }
    let s = &mut signature[32..];
    let mut borrow = 0u16;
    for i in (0..32).rev() {
        // n[i] - s[i] - borrow, with 256 added if that is negative.
        let minuend = u16::from(N[i]) + 256;
        let diff = minuend - u16::from(s[i]) - borrow;
        borrow = u16::from(diff < 256);
        s[i] = diff.to_le_bytes()[0];
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn half_n_is_n_shifted_right() {
        let mut half = [0u8; 32];
        let mut carry = 0u8;
        for (h, b) in half.iter_mut().zip(N) {
            *h = (b >> 1) | (carry << 7);
            carry = b & 1;
        }
        assert_eq!(half, HALF_N);
    }

    #[test]
    fn normalize_gives_the_low_twin_which_still_verifies() {
        use aws_lc_rs::rand::SystemRandom;
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
            UnparsedPublicKey,
        };
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let kp =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref());
        let (mut low, mut high) = (0, 0);
        for i in 0..64u32 {
            let msg = i.to_be_bytes();
            let mut sig = kp.sign(&rng, &msg).unwrap().as_ref().to_vec();
            if is_low_s(&sig) {
                low += 1;
            } else {
                high += 1;
            }
            let before = sig.clone();
            normalize(&mut sig);
            assert!(is_low_s(&sig));
            assert_eq!(sig[..32], before[..32], "r is kept");
            assert!(public.verify(&msg, &sig).is_ok());
            // Normalizing twice changes nothing; the high twin verifies too
            // (which is why it must be refused by form).
            let again = sig.clone();
            normalize(&mut sig);
            assert_eq!(sig, again);
        }
        assert!(
            low > 0 && high > 0,
            "aws-lc signs with either s: {low} low, {high} high"
        );
    }

    #[test]
    fn the_boundary_and_odd_lengths() {
        let mut sig = [0u8; 64];
        sig[32..].copy_from_slice(&HALF_N);
        assert!(is_low_s(&sig));
        sig[63] += 1;
        assert!(!is_low_s(&sig));
        normalize(&mut sig);
        assert_eq!(sig[32..], HALF_N[..], "n - (n/2 + 1) = n/2 for odd n");
        assert!(!is_low_s(&[0u8; 63]));
        let mut short = [0xffu8; 10];
        normalize(&mut short);
        assert_eq!(short, [0xffu8; 10]);
    }
}
