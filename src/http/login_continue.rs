//! `GET P/login-continue?login_verifier=...`: where the operator's
//! application (`login_url`) sends the browser after `AcceptLogin`. The
//! verifier must come from the browser that began the authorization (its
//! cookie); then the browser sees the consent page (or, when the user
//! consented to as much before, goes straight back with the code) and,
//! when the
//! application asked for it and `login_remember_seconds` allows, gets the
//! login cookie. A verifier is good for one visit; an unknown, used or
//! expired one, or another browser, gets the INTERACTION_INVALID page.

use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;

use super::App;
use super::authorize::error_page_for;
use super::browser::{self, CookieNames};
use super::form::Form;
use super::pages;
use crate::core::{Error, Reason};

/// `GET` of the page the application sends the browser back to.
pub(super) async fn get(
    State(app): State<App>,
    headers: HeaderMap,
    call: super::credentials::Call,
    uri: Uri,
) -> Response {
    let query = uri.query().unwrap_or_default().as_bytes().to_vec();
    let Ok(form) = Form::parse_repeating(&query, &[]) else {
        return pages::error_page(
            axum::http::StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "the request is malformed (a parameter is repeated or not UTF-8)",
        );
    };
    let names = CookieNames::new(app.settings.secure_cookies);
    let Some(binding) = browser::cookie(&headers, names.browser) else {
        return error_page_for(&Error::refused(
            Reason::InteractionInvalid,
            "this browser did not start the sign-in (its cookie is missing): start again from the application",
        ));
    };
    let verifier = form.get("login_verifier").unwrap_or_default();
    let remember = app.settings.login_remember_seconds;
    let signed = match app.core.continue_login(verifier, &binding, remember).await {
        Ok(s) => s,
        Err(err) => return error_page_for(&err),
    };
    let Some(user) = signed.interaction.user.as_ref() else {
        return error_page_for(&Error::refused(
            Reason::InteractionInvalid,
            "nobody is signed in for this authorization",
        ));
    };
    let mut response =
        super::consent::consent_step(&app, &call, &signed.interaction, &binding, user).await;
    if let Some(token) = signed.login_session {
        if let Some(v) = browser::set_cookie(
            names,
            names.login,
            token.expose(),
            Some(i64::from(signed.remember_seconds)),
        ) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}
