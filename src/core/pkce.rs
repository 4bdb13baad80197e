//! PKCE (RFC 7636) as OAuth 2.1 requires it: `S256` only. A code
//! challenge is the unpadded base64url SHA-256 of the verifier (43
//! characters); a verifier is 43 to 128 characters of `[A-Za-z0-9-._~]`.
//! The comparison is constant-time.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

use crate::core::error::Error;

/// The one challenge method accepted.
pub(crate) const S256: &str = "S256";

/// Checks an authorization request's `code_challenge` and
/// `code_challenge_method`: both present, the method `S256`, the
/// challenge 43 base64url characters.
///
/// # Errors
/// INVALID_ARGUMENT naming the parameter.
pub(crate) fn check_challenge(
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<String, Error> {
    let Some(challenge) = challenge else {
        return Err(Error::invalid(
            "code_challenge",
            "PKCE is required: send code_challenge and code_challenge_method=S256",
        ));
    };
    match method {
        Some(S256) => {}
        Some("plain") => {
            return Err(Error::invalid(
                "code_challenge_method",
                "plain is not accepted: use S256",
            ));
        }
        _ => {
            return Err(Error::invalid("code_challenge_method", "must be S256"));
        }
    }
    let decoded = URL_SAFE_NO_PAD.decode(challenge).ok();
    if challenge.len() != 43 || decoded.is_none_or(|d| d.len() != 32) {
        return Err(Error::invalid(
            "code_challenge",
            "must be the base64url SHA-256 of the verifier (43 characters)",
        ));
    }
    Ok(challenge.to_owned())
}

/// Whether `verifier` is well formed and its S256 challenge is
/// `challenge`.
pub(crate) fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    computed.as_bytes().ct_eq(challenge.as_bytes()).into()
}

/// The S256 challenge of `verifier` (for tests and clients).
pub fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_example_verifies() {
        // RFC 7636 appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(challenge_of(verifier), challenge);
        assert!(verifier_matches(verifier, challenge));
        assert!(check_challenge(Some(challenge), Some("S256")).is_ok());
        assert!(!verifier_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK",
            challenge
        ));
        assert!(!verifier_matches("short", &challenge_of("short")));
        assert!(!verifier_matches(
            &"a b".repeat(20),
            &challenge_of(&"a b".repeat(20))
        ));
    }

    #[test]
    fn only_s256_with_a_proper_challenge() {
        let c = challenge_of(&"v".repeat(43));
        for (challenge, method, field) in [
            (None, Some("S256"), "code_challenge"),
            (Some(c.as_str()), None, "code_challenge_method"),
            (Some(c.as_str()), Some("plain"), "code_challenge_method"),
            (Some(c.as_str()), Some("s256"), "code_challenge_method"),
            (Some("abc"), Some("S256"), "code_challenge"),
        ] {
            match check_challenge(challenge, method) {
                Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{challenge:?} {method:?}: {other:?}"),
            }
        }
    }
}
