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
use super::browser;
use super::credentials::Call;
use super::form::Form;
use super::pages;
use super::signin::form_interaction;
use crate::core::{Decision, Interaction, SignedInUser};

/// `POST` of the consent form.
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
    way_back(&app, &decision)
}

/// The 303 back to the client with a decision: `code` (approved) or
/// `error=access_denied`, and `state`.
fn way_back(app: &App, decision: &Decision) -> Response {
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
    redirect_back(app, &decision.redirect_uri, &params)
}

/// What a signed-in user sees next in `interaction` (from `/authorize`,
/// the sign-in form or the way back from the operator's application):
/// straight back to the client with a code when the user consented to as
/// much before (or the client is first-party), else the consent page.
pub(super) async fn consent_step(
    app: &App,
    call: &Call,
    interaction: &Interaction,
    binding: &str,
    user: &SignedInUser,
) -> Response {
    let r = &interaction.request;
    let consented = match app
        .core
        .consent_covers(&user.user_id, &r.client, &r.scopes, &r.resources)
        .await
    {
        Ok(c) => c,
        Err(err) => return error_page_for(&err),
    };
    if !consented {
        let csrf = browser::csrf_token(&interaction.id, binding);
        return pages::consent_page(
            &interaction.id,
            &csrf,
            r,
            &user.username,
            &app.settings.scope_descriptions,
        );
    }
    match app
        .core
        .decide(&call.credentials(), &interaction.id, binding, true, false)
        .await
    {
        Ok(d) => way_back(app, &d),
        Err(err) => error_page_for(&err),
    }
}
