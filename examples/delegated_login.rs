//! A minimal application that signs users in for mcp-auth (`login_url`):
//! mcp-auth sends the browser to `GET /login?login_challenge=...`; this app
//! asks what the challenge is for (`GetLoginRequest`), shows a form, and
//! answers with `AcceptLogin` (the username becomes the tokens' `sub`) or
//! `RejectLogin`, then sends the browser where mcp-auth says. A real app
//! checks a password, a passkey or its own single sign-on here. It listens
//! on `LOGIN_APP_LISTEN` (default `127.0.0.1:3000`).
//!
//! ```sh
//! mcp-auth serve --login-url http://127.0.0.1:3000/login
//! export MCP_AUTH_API_KEY=$(mcp-auth key create --name login-app --scopes oauth:login --field secret)
//! MCP_AUTH_SERVER=https://127.0.0.1:50051 MCP_AUTH_CA=data/tls/ca.pem \
//!   cargo run --example delegated_login
//! ```

use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::{Router, routing::get};
use mcp_auth::grpc::client::{Client, ConnectOptions};
use mcp_auth::http::pages::escape;
use mcp_auth::pb;
use serde::Deserialize;

#[derive(Deserialize)]
struct Challenge {
    login_challenge: String,
}

#[derive(Deserialize)]
struct Answer {
    login_challenge: String,
    username: String,
    action: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let mcp = Client::connect(&ConnectOptions {
        server: env("MCP_AUTH_SERVER")?,
        ca: env("MCP_AUTH_CA")?.into(),
        api_key: Some(env("MCP_AUTH_API_KEY")?),
        ..ConnectOptions::default()
    })
    .await?;
    let app = Router::new()
        .route("/login", get(show).post(answer))
        .with_state(mcp);
    let listen = std::env::var("LOGIN_APP_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("login_url: http://{listen}/login");
    axum::serve(listener, app).await?;
    Ok(())
}

/// `GET /login?login_challenge=...`: who asks, and a form.
async fn show(State(mcp): State<Client>, Query(q): Query<Challenge>) -> Response {
    let challenge = q.login_challenge;
    let asked = pb::GetLoginRequestRequest {
        login_challenge: challenge.clone(),
    };
    let asked = match mcp.get_login_request(asked).await {
        Ok(asked) => asked,
        Err(status) => return refused(&status),
    };
    Html(format!(
        "<!doctype html><title>Sign in</title><h1>Sign in</h1>\
         <p><b>{}</b> asks for <code>{}</code>.</p><form method=post>\
         <input type=hidden name=login_challenge value=\"{}\">\
         <label>Username <input name=username autofocus></label>\
         <button name=action value=accept>Sign in</button>\
         <button name=action value=reject>Cancel</button></form>",
        escape(&asked.client_name),
        escape(&asked.scopes.join(" ")),
        escape(&challenge),
    ))
    .into_response()
}

/// `POST /login`: the answer, then the browser goes where mcp-auth says.
async fn answer(State(mcp): State<Client>, Form(a): Form<Answer>) -> Response {
    let redirect_to = if a.action == "accept" && !a.username.is_empty() {
        let accept = pb::AcceptLoginRequest {
            login_challenge: a.login_challenge,
            subject: a.username,
            remember_seconds: 3600,
        };
        mcp.accept_login(accept).await.map(|r| r.redirect_to)
    } else {
        let reject = pb::RejectLoginRequest {
            login_challenge: a.login_challenge,
            error: String::new(),
            error_description: "the user cancelled the sign-in".to_owned(),
        };
        mcp.reject_login(reject).await.map(|r| r.redirect_to)
    };
    match redirect_to {
        Ok(url) => (StatusCode::SEE_OTHER, [(header::LOCATION, url)]).into_response(),
        Err(status) => refused(&status),
    }
}

/// mcp-auth refused the answer (an old challenge, a key without
/// `oauth:login`, ...).
fn refused(status: &tonic::Status) -> Response {
    let message = format!("mcp-auth refused: {}", status.message());
    (StatusCode::BAD_GATEWAY, message).into_response()
}
