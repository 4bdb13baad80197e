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
    let signed = match app.core.continue_login(verifier, &binding, remember) {
        Ok(s) => s,
        Err(err) => return error_page_for(&err),
    };
    let i = &signed.interaction;
    let (user, user_id) = i
        .user
        .as_ref()
        .map(|u| (u.username.clone(), u.user_id.clone()))
        .unwrap_or_default();
    let csrf = browser::csrf_token(&i.id, &binding);
    let consented = match app
        .core
        .consent_covers(
            &user_id,
            &i.request.client,
            &i.request.scopes,
            &i.request.resources,
        )
        .await
    {
        Ok(c) => c,
        Err(err) => return error_page_for(&err),
    };
    let mut response = if consented {
        super::consent::approve_at_once(&app, &call, &i.id, &binding).await
    } else {
        pages::consent_page(
            &i.id,
            &csrf,
            &i.request,
            &user,
            &app.settings.scope_descriptions,
        )
    };
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
