//! What the pages keep in the browser, and how their forms are protected.
//!
//! - The browser cookie (`__Host-mcp_auth_browser`, or `mcp_auth_browser`
//!   on a plaintext listener): a random value that binds each interaction
//!   to the browser that began it (the core keeps its hash). HTTP-only,
//!   `Secure` (on TLS), `SameSite=Lax`, `Path=/`, for the browser's
//!   session.
//! - The login cookie (`__Host-mcp_auth_login`): the login session token
//!   of a signed-in user, for `login_remember_seconds`; same attributes.
//! - The CSRF field of every form: the base64url SHA-256 of the
//!   interaction id and the browser value, so a form is good only in the
//!   browser, and for the interaction, it was made for; compared in
//!   constant time. `SameSite=Lax` keeps the cookies off cross-site POSTs
//!   besides.

use aws_lc_rs::digest;
use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, SameSite};
use subtle::ConstantTimeEq;

use crate::secret::random_base62;

/// Longest cookie value looked at.
const MAX_COOKIE_VALUE: usize = 128;

/// The cookie names of a listener: `__Host-` prefixed (the browser then
/// insists on `Secure`, `Path=/` and no `Domain`) on TLS.
#[derive(Clone, Copy, Debug)]
pub struct CookieNames {
    /// The browser binding.
    pub browser: &'static str,
    /// The login session.
    pub login: &'static str,
    /// Whether cookies are `Secure` (TLS).
    pub secure: bool,
}

impl CookieNames {
    /// The names for a TLS (`secure`) or plaintext listener.
    pub fn new(secure: bool) -> Self {
        if secure {
            CookieNames {
                browser: "__Host-mcp_auth_browser",
                login: "__Host-mcp_auth_login",
                secure,
            }
        } else {
            CookieNames {
                browser: "mcp_auth_browser",
                login: "mcp_auth_login",
                secure,
            }
        }
    }
}

/// The value of cookie `name` in the request, if well formed.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= MAX_COOKIE_VALUE
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
}

/// A `Set-Cookie` value: HTTP-only, `SameSite=Lax`, `Path=/`, `Secure` on
/// TLS; `max_age` seconds, or for the browser's session when `None`.
pub fn set_cookie(
    names: CookieNames,
    name: &str,
    value: &str,
    max_age: Option<i64>,
) -> Option<HeaderValue> {
    let mut c = Cookie::build((name.to_owned(), value.to_owned()))
        .http_only(true)
        .secure(names.secure)
        .same_site(SameSite::Lax)
        .path("/");
    if let Some(seconds) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(seconds));
    }
    HeaderValue::from_str(&c.build().to_string()).ok()
}

/// The browser's binding value, or a new one (then `true`: it must be
/// set).
///
/// # Errors
/// The random source.
pub fn binding(
    headers: &HeaderMap,
    names: CookieNames,
) -> Result<(String, bool), getrandom::Error> {
    match cookie(headers, names.browser) {
        Some(v) if v.len() == 43 => Ok((v, false)),
        _ => Ok((random_base62(43)?, true)),
    }
}

/// The CSRF field of the forms of interaction `id` in the browser
/// holding `binding`.
pub fn csrf_token(id: &str, binding: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"mcp-auth csrf\0");
    ctx.update(id.as_bytes());
    ctx.update(b"\0");
    ctx.update(binding.as_bytes());
    URL_SAFE_NO_PAD.encode(ctx.finish())
}

/// Whether `presented` is the CSRF field of interaction `id` for
/// `binding`.
pub fn csrf_ok(presented: Option<&str>, id: &str, binding: &str) -> bool {
    presented.is_some_and(|p| {
        p.as_bytes()
            .ct_eq(csrf_token(id, binding).as_bytes())
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_is_bound_to_the_interaction_and_the_browser() {
        let t = csrf_token("ia_1", "b1");
        assert!(csrf_ok(Some(&t), "ia_1", "b1"));
        assert!(!csrf_ok(Some(&t), "ia_2", "b1"));
        assert!(!csrf_ok(Some(&t), "ia_1", "b2"));
        assert!(!csrf_ok(None, "ia_1", "b1"));
        assert!(!csrf_ok(Some(""), "ia_1", "b1"));
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_on_tls() {
        let names = CookieNames::new(true);
        let v = set_cookie(names, names.browser, "abc", None).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("__Host-mcp_auth_browser=abc"), "{v}");
        for part in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(v.contains(part), "{v}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; __Host-mcp_auth_browser=xyz_9"),
        );
        assert_eq!(cookie(&h, names.browser).as_deref(), Some("xyz_9"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("__Host-mcp_auth_browser=<script>"),
        );
        assert_eq!(cookie(&h, names.browser), None);
    }
}
