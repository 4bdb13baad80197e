//! The protected resource metadata of an MCP server (RFC 9728): which
//! resource it is, which authorization server issues its tokens, which
//! scopes it knows. MCP clients find it from the `resource_metadata` of a
//! 401 challenge, or at the well-known paths.

use serde::Serialize;

use crate::error::BuildError;

/// The RFC 9728 well-known path prefix.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// An RFC 9728 protected resource metadata document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResourceMetadata {
    /// The resource identifier: the MCP endpoint's URL, exactly as tokens
    /// carry it in `aud`.
    pub resource: String,
    /// The issuers of the authorization servers (mcp-auth's issuer URL).
    pub authorization_servers: Vec<String>,
    /// Every scope an operation of this server can need.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// How tokens may be sent: only in the `Authorization` header.
    pub bearer_methods_supported: Vec<String>,
    /// A human-readable name of the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// A page documenting the server for developers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    #[serde(skip)]
    origin: String,
    #[serde(skip)]
    path: String,
    /// The path-inserted well-known path, made once (each request is
    /// compared with it).
    #[serde(skip)]
    well_known: String,
}

impl ResourceMetadata {
    /// The metadata of `resource` (an `https` URL, or `http` on a loopback
    /// host for development), whose tokens `issuer` issues.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] if `resource` is not such a URL, or has a
    /// query or fragment (RFC 9728 section 1.2).
    pub fn new(resource: &str, issuer: &str) -> Result<Self, BuildError> {
        let (origin, path) = split_resource(resource)?;
        Ok(ResourceMetadata {
            resource: resource.to_owned(),
            authorization_servers: vec![issuer.to_owned()],
            scopes_supported: Vec::new(),
            bearer_methods_supported: vec!["header".to_owned()],
            resource_name: None,
            resource_documentation: None,
            well_known: format!("{WELL_KNOWN}{path}"),
            origin,
            path,
        })
    }

    /// With `scopes_supported`.
    #[must_use]
    pub fn scopes_supported(mut self, scopes: Vec<String>) -> Self {
        self.scopes_supported = scopes;
        self
    }

    /// With a `resource_name`.
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.resource_name = Some(name.into());
        self
    }

    /// With a `resource_documentation` URL.
    #[must_use]
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.resource_documentation = Some(url.into());
        self
    }

    /// The resource's path (e.g. `/mcp`; `/` for a bare origin).
    pub fn resource_path(&self) -> &str {
        if self.path.is_empty() {
            "/"
        } else {
            &self.path
        }
    }

    /// The path-inserted well-known path of this resource (RFC 9728
    /// section 3.1): `/.well-known/oauth-protected-resource/mcp` for
    /// `https://host/mcp`.
    pub fn well_known_path(&self) -> &str {
        &self.well_known
    }

    /// The URL of the document, as the `resource_metadata` of challenges
    /// names it.
    pub fn url(&self) -> String {
        format!("{}{}", self.origin, self.well_known_path())
    }

    /// Whether a request for `path` asks for this document: the
    /// path-inserted form, or the bare well-known path (clients fall back
    /// to it).
    pub fn serves(&self, path: &str) -> bool {
        path == WELL_KNOWN || path == self.well_known
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// `scheme://authority` and the path (without a trailing `/` when it is
/// the whole path) of a resource URL.
fn split_resource(resource: &str) -> Result<(String, String), BuildError> {
    let invalid = |message: &str| BuildError::Invalid {
        setting: "resource",
        message: message.to_owned(),
    };
    let (scheme, rest) = resource
        .split_once("://")
        .ok_or_else(|| invalid("must be an absolute URL"))?;
    if resource.contains('?') || resource.contains('#') {
        return Err(invalid("must have no query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(invalid("must name a host (and no user info)"));
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(h, port)| !h.ends_with(']') || port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(h, _)| h);
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid("must be https (http only on a loopback host)")),
    }
    let path = if path == "/" { "" } else { path };
    Ok((format!("{scheme}://{authority}"), path.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_resource_issuer_scopes_and_header_bearer() {
        let m = ResourceMetadata::new("https://mcp.example.com/mcp", "https://auth.example.com")
            .unwrap()
            .scopes_supported(vec!["tools:read".into(), "tools:call".into()])
            .resource_name("Notes");
        let json: serde_json::Value = serde_json::from_slice(&m.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["tools:read", "tools:call"],
                "bearer_methods_supported": ["header"],
                "resource_name": "Notes"
            })
        );
        assert_eq!(
            m.url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert!(m.serves("/.well-known/oauth-protected-resource/mcp"));
        assert!(m.serves("/.well-known/oauth-protected-resource"));
        assert!(!m.serves("/.well-known/oauth-protected-resource/other"));
        assert_eq!(m.resource_path(), "/mcp");
    }

    #[test]
    fn a_bare_origin_has_the_bare_well_known_path() {
        let m = ResourceMetadata::new("https://mcp.example.com/", "https://a").unwrap();
        assert_eq!(
            m.url(),
            "https://mcp.example.com/.well-known/oauth-protected-resource"
        );
        assert_eq!(m.resource_path(), "/");
        let local = ResourceMetadata::new("http://127.0.0.1:8080/mcp", "https://a").unwrap();
        assert_eq!(
            local.url(),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
    }

    #[test]
    fn resources_must_be_https_urls_without_query() {
        for bad in [
            "mcp.example.com/mcp",
            "http://mcp.example.com/mcp",
            "https://mcp.example.com/mcp?x=1",
            "https://mcp.example.com/mcp#f",
            "https://user@mcp.example.com/mcp",
            "https:///mcp",
        ] {
            assert!(ResourceMetadata::new(bad, "https://a").is_err(), "{bad}");
        }
    }
}
