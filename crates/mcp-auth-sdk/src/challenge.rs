//! `WWW-Authenticate` values for the answers of a protected MCP server
//! (RFC 6750 section 3, RFC 9728 section 5.1, MCP authorization): where the
//! protected resource metadata is, which scopes to ask for, and, when a
//! credential was sent, what was wrong with it.

/// The challenge of a request that sent no bearer credential (401): where
/// to discover the authorization server, and the scopes to ask for. No
/// `error` (RFC 6750 section 3.1: a request without credentials gets none).
pub fn missing_token(resource_metadata: &str, scopes: &[String]) -> String {
    build(None, None, resource_metadata, scopes)
}

/// The challenge of a credential that was refused (401):
/// `error="invalid_token"` with a short description.
pub fn invalid_token(resource_metadata: &str, scopes: &[String], description: &str) -> String {
    build(
        Some("invalid_token"),
        Some(description),
        resource_metadata,
        scopes,
    )
}

/// The challenge of a valid credential lacking scopes (403):
/// `error="insufficient_scope"` and every scope the operation needs (not
/// only the missing ones), so the client can ask for all of them at once.
pub fn insufficient_scope(resource_metadata: &str, needed: &[String]) -> String {
    build(
        Some("insufficient_scope"),
        Some("the credential lacks a scope this call needs"),
        resource_metadata,
        needed,
    )
}

/// The challenge of a malformed request (400): `error="invalid_request"`.
pub fn invalid_request(resource_metadata: &str, description: &str) -> String {
    build(
        Some("invalid_request"),
        Some(description),
        resource_metadata,
        &[],
    )
}

fn build(
    error: Option<&str>,
    description: Option<&str>,
    resource_metadata: &str,
    scopes: &[String],
) -> String {
    let mut out = String::from("Bearer ");
    let mut params: Vec<(&str, String)> = Vec::with_capacity(4);
    if let Some(e) = error {
        params.push(("error", e.to_owned()));
    }
    if let Some(d) = description {
        params.push(("error_description", d.to_owned()));
    }
    params.push(("resource_metadata", resource_metadata.to_owned()));
    if !scopes.is_empty() {
        params.push(("scope", scopes.join(" ")));
    }
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        out.push_str(&quoted(value));
        out.push('"');
    }
    out
}

/// A quoted-string's content (RFC 9110 section 5.6.4): `"` and `\`
/// escaped, anything outside visible ASCII and space dropped.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out
}

/// Text from a request made safe to echo in a message: at most 64
/// characters, control characters replaced.
pub fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn without_a_token_the_challenge_names_metadata_and_scopes() {
        assert_eq!(
            missing_token(PRM, &s(&["tools:read", "tools:call"])),
            format!(r#"Bearer resource_metadata="{PRM}", scope="tools:read tools:call""#)
        );
        assert_eq!(
            missing_token(PRM, &[]),
            format!(r#"Bearer resource_metadata="{PRM}""#)
        );
    }

    #[test]
    fn a_refused_token_gets_invalid_token() {
        assert_eq!(
            invalid_token(PRM, &s(&["tools:read"]), "the token has expired"),
            format!(
                r#"Bearer error="invalid_token", error_description="the token has expired", resource_metadata="{PRM}", scope="tools:read""#
            )
        );
    }

    #[test]
    fn a_missing_scope_names_every_scope_needed() {
        assert_eq!(
            insufficient_scope(PRM, &s(&["tools:call", "tools:read"])),
            format!(
                r#"Bearer error="insufficient_scope", error_description="the credential lacks a scope this call needs", resource_metadata="{PRM}", scope="tools:call tools:read""#
            )
        );
    }

    #[test]
    fn quotes_and_controls_cannot_break_out() {
        let v = invalid_request(PRM, "bad \"x\\\" \n\u{7f}é");
        assert!(v.contains(r#"error_description="bad \"x\\\" ""#), "{v}");
        assert_eq!(printable("a\nb"), "a?b");
        assert_eq!(printable(&"x".repeat(70)).chars().count(), 65);
    }
}
