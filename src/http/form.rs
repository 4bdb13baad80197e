//! The form bodies of the OAuth endpoints (`application/x-www-form-urlencoded`,
//! RFC 6749 appendix B), read strictly: the content type must say so, the
//! body is bounded, every name and value is UTF-8 after decoding, and no
//! parameter may appear twice (RFC 6749 section 3.1). An empty value
//! counts as the parameter left out (section 3.1 again).

use axum::extract::{FromRequest, Request};
use axum::http::header;
use percent_encoding::percent_decode;

use super::App;
use super::error::HttpError;
use crate::untrusted::Echo;

/// Most parameters one form may carry.
const MAX_PARAMETERS: usize = 64;

/// The content type of an OAuth request body.
pub const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// A parsed form: each name once, in the order sent.
#[derive(Debug, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Parses a form body.
    ///
    /// # Errors
    /// `invalid_request` for a repeated parameter, an empty name, bytes
    /// that are not UTF-8 after decoding, or more than 64 parameters.
    pub fn parse(body: &[u8]) -> Result<Form, HttpError> {
        Self::parse_repeating(body, &[])
    }

    /// Parses a form (or a query string) in which the parameters named in
    /// `repeatable` may appear more than once (`resource`, RFC 8707).
    ///
    /// # Errors
    /// As [`Form::parse`].
    pub fn parse_repeating(body: &[u8], repeatable: &[&str]) -> Result<Form, HttpError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in body.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
            let (name, value) = match part.iter().position(|b| *b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &[][..]),
            };
            let name = decode(name)?;
            if name.is_empty() {
                return Err(HttpError::invalid_request("a form parameter has no name"));
            }
            if !repeatable.contains(&name.as_str()) && pairs.iter().any(|(n, _)| *n == name) {
                return Err(HttpError::invalid_request(format!(
                    "parameter {} is repeated",
                    Echo(&name)
                )));
            }
            if pairs.len() == MAX_PARAMETERS {
                return Err(HttpError::invalid_request(format!(
                    "more than {MAX_PARAMETERS} form parameters"
                )));
            }
            let value = decode(value)?;
            pairs.push((name, value));
        }
        Ok(Form { pairs })
    }

    /// The value of `name`; `None` if it is absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// The value of `name`, which the request must carry.
    ///
    /// # Errors
    /// `invalid_request` naming the missing parameter.
    pub fn require(&self, name: &str) -> Result<&str, HttpError> {
        self.get(name)
            .ok_or_else(|| HttpError::invalid_request(format!("missing parameter {name}")))
    }

    /// Every non-empty value of `name`, in the order sent.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The names sent, in order (empty values included).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }
}

/// One name or value: `+` is a space, `%XX` a byte; the bytes must be
/// UTF-8.
pub(crate) fn decode(raw: &[u8]) -> Result<String, HttpError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_decode(&spaced)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| HttpError::invalid_request("a form parameter is not UTF-8"))
}

/// Whether `value` names the form content type (any case, parameters
/// allowed; a charset other than UTF-8 is not).
pub(crate) fn is_form_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case(FORM_CONTENT_TYPE) {
        return false;
    }
    parts.all(|p| {
        let (key, val) = p.split_once('=').unwrap_or((p, ""));
        !key.trim().eq_ignore_ascii_case("charset")
            || val.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    })
}

impl FromRequest<App> for Form {
    type Rejection = HttpError;

    async fn from_request(req: Request, app: &App) -> Result<Self, HttpError> {
        let form_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_form_content_type);
        if !form_type {
            return Err(HttpError::invalid_request(format!(
                "the content type must be {FORM_CONTENT_TYPE}"
            )));
        }
        let limit = app.settings.body_limit;
        let body = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|err| {
                if is_length_limit(&err) {
                    HttpError::body_too_large(limit)
                } else {
                    HttpError::invalid_request("the request body could not be read")
                }
            })?;
        Form::parse(&body)
    }
}

/// Whether reading a body failed because it passed its limit.
pub(super) fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order() {
        let form = Form::parse(b"grant_type=client_credentials&scope=a+b%3Ac&&resource=").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), Some("a b:c"));
        assert_eq!(form.get("resource"), None, "an empty value is left out");
        assert_eq!(form.get("missing"), None);
        assert_eq!(
            form.names().collect::<Vec<_>>(),
            ["grant_type", "scope", "resource"]
        );
        assert_eq!(form.require("scope").unwrap(), "a b:c");
        let err = form.require("client_id").unwrap_err();
        assert_eq!(err.code(), "invalid_request");
    }

    #[test]
    fn a_repeated_parameter_is_refused_even_encoded_differently() {
        for body in [&b"scope=a&scope=b"[..], b"scope=a&sc%6Fpe=a", b"a=1&a"] {
            let err = Form::parse(body).unwrap_err();
            assert_eq!(err.code(), "invalid_request");
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn bad_names_and_bytes_are_refused() {
        for body in [&b"=x"[..], b"a=%ff", b"%c3=1"] {
            assert_eq!(Form::parse(body).unwrap_err().code(), "invalid_request");
        }
        let many: String = (0..=MAX_PARAMETERS).map(|i| format!("p{i}=1&")).collect();
        assert!(Form::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn the_content_type_is_the_form_type_in_utf8() {
        for good in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=\"utf-8\"",
        ] {
            assert!(is_form_content_type(good), "{good}");
        }
        for bad in [
            "application/json",
            "multipart/form-data",
            "application/x-www-form-urlencoded; charset=latin1",
            "",
        ] {
            assert!(!is_form_content_type(bad), "{bad}");
        }
    }
}
