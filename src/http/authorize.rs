//! `GET` and `POST /authorize`: the authorization endpoint (RFC 6749
//! section 3.1, OAuth 2.1). The request (the query, or a form body) is
//! read strictly, except that `resource` may repeat (RFC 8707); the core
//! checks it. A refusal while the client or its redirect URI is in doubt
//! is an error page; any later refusal goes back to the client's redirect
//! URI with `error`, `error_description`, `state` and `iss` (RFC 9207).
//! An accepted request begins an interaction bound to this browser (its
//! cookie, see [`super::browser`]), and the browser sees the sign-in
//! page, or, when its login cookie names a signed-in user, the consent
//! page. With `login_url` set, a browser that is not signed in is sent
//! (303) to `<login_url>?login_challenge=...` instead, where the
//! operator's application signs the user in and answers over
//! `OAuthService` ([`super::login_continue`] brings the browser back).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::App;
use super::browser::{self, CookieNames};
use super::credentials::Call;
use super::error::oauth_error;
use super::form::Form;
use super::pages;
use crate::core::authorize::client_redirect_url;
use crate::core::{AuthorizationRequest, AuthorizeRefusal, Error, Kind};

/// The answer when a page's request fails: its error page.
pub(super) fn error_page_for(err: &Error) -> Response {
    let (status, _) = oauth_error(err.reason());
    let message = if err.kind() == Kind::Internal {
        tracing::warn!(cause = %err, "internal error");
        "something failed inside the server; try again later".to_owned()
    } else if let Error::Store(_) = err {
        tracing::warn!(cause = %err, "the database is unavailable");
        "the service's database is unavailable; try again later".to_owned()
    } else {
        err.to_string()
    };
    pages::error_page(status, err.reason().as_str(), &message)
}

/// A 303 to `redirect_uri` with `params` added to its query, and `iss`.
pub(super) fn redirect_back(app: &App, redirect_uri: &str, params: &[(&str, &str)]) -> Response {
    match client_redirect_url(redirect_uri, params, &app.settings.issuer) {
        Some(url) => see_other(&url),
        None => pages::error_page(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "the redirect URI cannot be parsed",
        ),
    }
}

/// A 303 to `url`, never cached, sending no referrer.
pub(super) fn see_other(url: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(url) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The request's parameters: the query of a GET, the form of a POST.
async fn parameters(
    app: &App,
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
) -> Result<Form, Response> {
    let bad = |e: super::error::HttpError| {
        pages::error_page(
            e.status(),
            "INVALID_FIELD",
            "the authorization request is malformed (a parameter is repeated, not UTF-8, or the body is not a form)",
        )
    };
    if parts.method == Method::GET {
        let query = parts.uri.query().unwrap_or_default().as_bytes();
        return Form::parse_repeating(query, &["resource"]).map_err(bad);
    }
    let limit = app.settings.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        pages::error_page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_FIELD",
            "the request body is too large",
        )
    })?;
    Form::parse_repeating(&body, &["resource"]).map_err(bad)
}

/// `GET` or `POST` of the authorization endpoint.
pub(super) async fn handle(State(app): State<App>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let call = Call::from_parts(&parts);
    let form = match parameters(&app, &parts, body).await {
        Ok(f) => f,
        Err(page) => return page,
    };
    let owned = |name: &str| form.get(name).map(str::to_owned);
    let request = AuthorizationRequest {
        response_type: owned("response_type"),
        client_id: owned("client_id"),
        redirect_uri: owned("redirect_uri"),
        scope: owned("scope"),
        state: owned("state"),
        code_challenge: owned("code_challenge"),
        code_challenge_method: owned("code_challenge_method"),
        resources: form
            .all("resource")
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let creds = call.credentials();
    let checked = match app.core.check_authorization_request(&creds, &request).await {
        Ok(c) => c,
        Err(AuthorizeRefusal::Page(err)) => return error_page_for(&err),
        Err(AuthorizeRefusal::Redirect {
            redirect_uri,
            state,
            error,
        }) => {
            let (_, code) = oauth_error(error.reason());
            let description = error.to_string();
            let mut params = vec![("error", code), ("error_description", description.as_str())];
            if let Some(s) = state.as_deref() {
                params.push(("state", s));
            }
            return redirect_back(&app, &redirect_uri, &params);
        }
    };
    let names = CookieNames::new(app.settings.secure_cookies);
    let (binding, new_binding) = match browser::binding(&parts.headers, names) {
        Ok(b) => b,
        Err(e) => return error_page_for(&Error::Random(e)),
    };
    let signed_in = match browser::cookie(&parts.headers, names.login) {
        Some(token) => match app.core.login_session_user(&token).await {
            Ok(user) => user,
            Err(err) => return error_page_for(&err),
        },
        None => None,
    };
    let mut response = match (&signed_in, &app.settings.login_url) {
        (None, Some(login_url)) => {
            match app
                .core
                .begin_delegated_interaction(checked, &binding)
                .await
            {
                Ok((_, challenge)) => to_login_url(login_url, challenge.expose()),
                Err(err) => return error_page_for(&err),
            }
        }
        _ => {
            let interaction = match app
                .core
                .begin_interaction(checked, &binding, signed_in.clone())
                .await
            {
                Ok(i) => i,
                Err(err) => return error_page_for(&err),
            };
            match &signed_in {
                Some(user) => {
                    super::consent::consent_step(&app, &call, &interaction, &binding, user).await
                }
                None => pages::login_page(
                    StatusCode::OK,
                    &interaction.id,
                    &browser::csrf_token(&interaction.id, &binding),
                    &interaction.request,
                    None,
                    "",
                ),
            }
        }
    };
    if new_binding {
        if let Some(v) = browser::set_cookie(names, names.browser, &binding, None) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A 303 to the operator's sign-in page with the login challenge.
fn to_login_url(login_url: &str, challenge: &str) -> Response {
    match url::Url::parse(login_url) {
        Ok(mut url) => {
            url.query_pairs_mut()
                .append_pair("login_challenge", challenge);
            see_other(url.as_str())
        }
        // The configuration checked it; kept as a page all the same.
        Err(_) => pages::error_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "the server's login_url cannot be parsed",
        ),
    }
}
