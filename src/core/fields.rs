//! Checks of request fields shared by every operation, and fresh ids.

use crate::core::error::Error;
use crate::secret::random_base62;

/// Longest subject or audience, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 256;
/// Longest id (key id, session id) accepted in a request.
const MAX_ID_LEN: usize = 64;

/// A fresh random id such as `ses_...` (22 base62 characters, ~131 bits).
///
/// # Errors
/// The OS random source failed.
pub(crate) fn new_id(prefix: &str) -> Result<String, Error> {
    Ok(format!("{prefix}{}", random_base62(22)?))
}

/// Checks a request's id field: non-empty, short, printable ASCII.
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub(crate) fn check_id(field: &'static str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// Checks a free-text request field: 1 to `max` bytes, no control
/// characters.
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_id_checks() {
        assert!(check_text("subject", "user-1", 256).is_ok());
        assert!(check_text("subject", "", 256).is_err());
        assert!(check_text("subject", &"x".repeat(257), 256).is_err());
        assert!(check_text("subject", "a\nb", 256).is_err());
        assert!(check_id("key_id", "key_abc").is_ok());
        assert!(check_id("key_id", "key abc").is_err());
        assert!(check_id("key_id", &"k".repeat(65)).is_err());
        assert!(new_id("ses_").unwrap().starts_with("ses_"));
    }
}
