//! `POST /login`: the sign-in form of an interaction (built-in accounts).
//! The form must come from this browser (its cookie) for this
//! interaction (its CSRF field). A wrong username or password, or a
//! disabled account, shows the form again with one message for all
//! three (401); failures count against the address's allowance of failed
//! authentications (429 with `Retry-After` once it is dry). A good one
//! shows the consent page and, with `login_remember_seconds` above 0,
//! sets the login cookie so the next authorization skips this form.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::App;
use super::authorize::error_page_for;
use super::browser::{self, CookieNames};
use super::credentials::Call;
use super::form::Form;
use super::pages;
use crate::core::{Error, Interaction, Reason};

/// The interaction a page's form names, checked against the browser's
/// cookie and the form's CSRF field; `(interaction, binding)`.
///
/// # Errors
/// INTERACTION_INVALID; the store.
pub(super) async fn form_interaction(
    app: &App,
    headers: &HeaderMap,
    form: &Form,
) -> Result<(Interaction, String), Error> {
    let names = CookieNames::new(app.settings.secure_cookies);
    let id = form.get("interaction").unwrap_or_default();
    let refused = || {
        Error::refused(
            Reason::InteractionInvalid,
            "this form does not belong to a sign-in of this browser (its cookie or CSRF field does not match): start again from the application",
        )
    };
    let Some(binding) = browser::cookie(headers, names.browser) else {
        return Err(refused());
    };
    if !browser::csrf_ok(form.get("csrf"), id, &binding) {
        return Err(refused());
    }
    let interaction = app.core.interaction(id, &binding).await?;
    Ok((interaction, binding))
}

/// `POST` of the sign-in form.
pub(super) async fn post(
    State(app): State<App>,
    headers: HeaderMap,
    call: Call,
    form: Form,
) -> Response {
    let (interaction, binding) = match form_interaction(&app, &headers, &form).await {
        Ok(found) => found,
        Err(err) => return error_page_for(&err),
    };
    let username = form.get("username").unwrap_or_default();
    let password = form.get("password").unwrap_or_default();
    let csrf = browser::csrf_token(&interaction.id, &binding);
    let remember = app.settings.login_remember_seconds;

    match app
        .core
        .sign_in(
            &call.credentials(),
            &interaction.id,
            &binding,
            username,
            password,
            remember,
        )
        .await
    {
        Ok(signed) => {
            let Some(user) = signed.interaction.user.as_ref() else {
                return error_page_for(&Error::refused(
                    Reason::InteractionInvalid,
                    "nobody is signed in for this authorization",
                ));
            };
            let mut response =
                super::consent::consent_step(&app, &call, &signed.interaction, &binding, user)
                    .await;
            if let Some(token) = signed.login_session {
                let names = CookieNames::new(app.settings.secure_cookies);
                if let Some(v) = browser::set_cookie(
                    names,
                    names.login,
                    token.expose(),
                    Some(i64::from(remember)),
                ) {
                    response.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            response
        }
        Err(err) if err.reason() == Reason::LoginFailed => pages::login_page(
            StatusCode::UNAUTHORIZED,
            &interaction.id,
            &csrf,
            &interaction.request,
            Some("Wrong username or password."),
            username,
        ),
        Err(Error::RateLimited { retry_after, .. }) => {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            let mut response = pages::login_page(
                StatusCode::TOO_MANY_REQUESTS,
                &interaction.id,
                &csrf,
                &interaction.request,
                Some(&format!(
                    "Too many failed sign-ins from your address. Try again in {seconds} seconds."
                )),
                username,
            );
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
            response
        }
        Err(err) => error_page_for(&err),
    }
}
