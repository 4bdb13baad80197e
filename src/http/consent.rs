//! `POST /consent`: the user's decision on an interaction's consent page
//! (`decision=approve` or `decision=deny`), from this browser for this
//! interaction (cookie and CSRF field, as the sign-in form). Approval
//! sends the browser back to the client with `code`, `state` and `iss`
//! (with `remember=yes`, the consent is kept for the next authorization);
//! denial with `error=access_denied`. Either way the interaction is over.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::App;
use super::authorize::{error_page_for, redirect_back};
use super::credentials::Call;
use super::form::Form;
use super::pages;
use super::signin::form_interaction;

/// `POST` of the consent form.
pub(super) async fn post(
    State(app): State<App>,
    headers: HeaderMap,
    call: Call,
    form: Form,
) -> Response {
    let (interaction, binding) = match form_interaction(&app, &headers, &form) {
        Ok(found) => found,
        Err(err) => return error_page_for(&err),
    };
    let approve = match form.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return pages::error_page(
                StatusCode::BAD_REQUEST,
                "INVALID_FIELD",
                "the consent form must send decision=approve or decision=deny",
            );
        }
    };
    let decision = match app
        .core
        .decide(
            &call.credentials(),
            &interaction.id,
            &binding,
            approve,
            form.get("remember") == Some("yes"),
        )
        .await
    {
        Ok(d) => d,
        Err(err) => return error_page_for(&err),
    };
    let mut params: Vec<(&str, &str)> = Vec::new();
    match &decision.code {
        Some(code) => params.push(("code", code.expose())),
        None => {
            params.push(("error", "access_denied"));
            params.push(("error_description", "the user denied access"));
        }
    }
    if let Some(state) = decision.state.as_deref() {
        params.push(("state", state));
    }
    redirect_back(&app, &decision.redirect_uri, &params)
}

/// The way back for an interaction whose user already consented: the
/// decision taken at once, no page.
pub(super) async fn approve_at_once(
    app: &App,
    call: &Call,
    interaction_id: &str,
    binding: &str,
) -> Response {
    let decision = match app
        .core
        .decide(&call.credentials(), interaction_id, binding, true, false)
        .await
    {
        Ok(d) => d,
        Err(err) => return error_page_for(&err),
    };
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(code) = &decision.code {
        params.push(("code", code.expose()));
    }
    if let Some(state) = decision.state.as_deref() {
        params.push(("state", state));
    }
    redirect_back(app, &decision.redirect_uri, &params)
}
