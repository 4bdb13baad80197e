//! The HTML pages of the browser flow: the sign-in form, the consent form
//! and the error page. Plain forms that work without JavaScript; every
//! value they show is escaped; each answer is `Cache-Control: no-store`
//! with a strict Content-Security-Policy (nothing but the page's own
//! stylesheet loads, no script at all, forms post only to this server
//! and, for the consent form, to the client's redirect URI's origin that
//! the answer redirects to), `X-Frame-Options: DENY`,
//! `frame-ancestors 'none'` and `Referrer-Policy: no-referrer`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::core::CheckedAuthorization;

/// Where the stylesheet is served.
pub const STYLESHEET_PATH: &str = "/assets/mcp-auth.css";

// Every page is served one level under the issuer's path (`P/authorize`,
// `P/login`, `P/consent`), so the pages link with relative URLs
// (`login`, `consent`, `assets/...`) and work under any issuer path.

/// The stylesheet of every page.
pub const STYLESHEET: &str = "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}\
h1{font-size:1.4rem}label{display:block;margin:.8rem 0 .2rem}\
input[type=text],input[type=password]{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}\
button{padding:.55rem 1.2rem;font-size:1rem;margin:1rem .5rem 0 0;cursor:pointer}\
.host{font-size:1.2rem;font-weight:bold;padding:.4rem .6rem;background:#fff4d6;border:1px solid #e0b84c;display:inline-block}\
.error{color:#a4000f;font-weight:bold}code{background:#f2f2f2;padding:0 .2rem}ul{padding-left:1.2rem}";

/// `value` safe to place in HTML text or a double-quoted attribute.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A page: `title` and `body` (HTML, already escaped), with the headers
/// of the module documentation; `form_target` is one more origin a form
/// may end at.
pub fn page(status: StatusCode, title: &str, body: &str, form_target: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><link rel=\"stylesheet\" href=\"assets/mcp-auth.css\"></head><body>{body}</body></html>",
        escape(title)
    );
    let csp = format!(
        "default-src 'none'; style-src 'self'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        form_target.map(|o| format!(" {o}")).unwrap_or_default()
    );
    let mut response = (status, html).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The error page: shown, never redirected. `reason` is the stable
/// reason (as in the error reference), for people to report.
pub fn error_page(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = format!(
        "<h1>This sign-in cannot go on</h1><p class=\"error\">{}</p>\
<p>Go back to the application and start again. If this keeps happening, tell the application's developers; the reason is <code class=\"reason\">{}</code>.</p>",
        escape(message),
        escape(reason)
    );
    page(status, "Sign-in error", &body, None)
}

/// The hidden fields of a form of interaction `id`.
fn hidden(id: &str, csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"interaction\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(id),
        escape(csrf)
    )
}

/// The host of a redirect URI, shown to the user.
pub fn redirect_host(redirect_uri: &str) -> String {
    crate::core::authorize::redirect_host(redirect_uri)
}

/// The origin of a redirect URI, for the consent form's `form-action`.
pub fn redirect_origin(redirect_uri: &str) -> Option<String> {
    url::Url::parse(redirect_uri)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .filter(|o| o != "null")
}

/// The sign-in form.
pub fn login_page(
    status: StatusCode,
    id: &str,
    csrf: &str,
    request: &CheckedAuthorization,
    error: Option<&str>,
    username: &str,
) -> Response {
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in</h1><p><strong>{}</strong> asks to use your account.</p>{error}\
<form method=\"post\" action=\"login\">{}\
<label for=\"username\">Username</label><input type=\"text\" id=\"username\" name=\"username\" value=\"{}\" autocomplete=\"username\" autofocus required>\
<label for=\"password\">Password</label><input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
<button type=\"submit\">Sign in</button></form>",
        escape(&request.client.name),
        hidden(id, csrf),
        escape(username),
    );
    page(status, "Sign in", &body, None)
}

/// The consent form; `words` describes scopes (config
/// `scope_descriptions`).
pub fn consent_page(
    id: &str,
    csrf: &str,
    request: &CheckedAuthorization,
    user: &str,
    words: &std::collections::BTreeMap<String, String>,
) -> Response {
    let scopes: String = request
        .scopes
        .iter()
        .map(|s| match words.get(s) {
            Some(w) => format!("<li>{}: <code>{}</code></li>", escape(w), escape(s)),
            None => format!("<li><code>{}</code></li>", escape(s)),
        })
        .collect();
    let body = format!(
        "<h1>Allow access?</h1>\
<p><strong>{}</strong> asks to act for <strong>{}</strong>.</p>\
<p>After you decide, your browser goes to</p><p class=\"host\">{}</p>\
<p>It asks for:</p><ul>{scopes}</ul><p>at <code>{}</code></p>\
<form method=\"post\" action=\"consent\">{}\
<label><input type=\"checkbox\" name=\"remember\" value=\"yes\"> Remember this decision for this application</label>\
<button type=\"submit\" name=\"decision\" value=\"approve\">Allow</button>\
<button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
        escape(&request.client.name),
        escape(user),
        escape(&redirect_host(&request.redirect_uri)),
        request
            .resources
            .iter()
            .map(|r| escape(r))
            .collect::<Vec<_>>()
            .join("</code>, <code>"),
        hidden(id, csrf),
    );
    page(
        StatusCode::OK,
        "Allow access",
        &body,
        redirect_origin(&request.redirect_uri).as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\" onclick='y'>&</a>"),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn hosts_and_origins_of_redirect_uris() {
        assert_eq!(redirect_host("https://app.example/cb?x=1"), "app.example");
        assert_eq!(redirect_host("http://127.0.0.1:5173/cb"), "127.0.0.1:5173");
        assert_eq!(
            redirect_origin("http://127.0.0.1:5173/cb").as_deref(),
            Some("http://127.0.0.1:5173")
        );
    }
}
