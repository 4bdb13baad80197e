//! What an OAuth client may be set up with: pure checks of each field
//! (redirect URIs, resources, grant types, the authentication method,
//! scopes, the JWK Set) and of how they fit together. Every refusal is an
//! INVALID_ARGUMENT naming the field. No I/O, no state.

use std::net::Ipv6Addr;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

use crate::core::error::Error;
use crate::core::fields::check_text;
use crate::core::policy;
use crate::core::principal::parse_scopes;
use crate::store::{AuthMethod, GrantType};
use crate::untrusted::Echo;

/// Longest client name, in bytes.
pub(crate) const MAX_CLIENT_NAME_LEN: usize = 128;
/// Longest redirect URI or resource, in bytes.
pub(crate) const MAX_URL_LEN: usize = 2048;
/// Most redirect URIs, or resources, of one client.
pub(crate) const MAX_URLS: usize = 16;
/// Longest JWK Set, in bytes.
pub(crate) const MAX_JWKS_LEN: usize = 32 * 1024;
/// Most keys in a client's JWK Set.
pub(crate) const MAX_JWKS_KEYS: usize = 16;

/// JWK members that hold private or symmetric key material (RFC 7518
/// section 6): a client registers public keys only.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A client's settings, checked field by field: what a record is made
/// of, before the combination is checked ([`check_combination`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientShape {
    /// A name for people.
    pub name: String,
    /// Where the browser may be sent back to.
    pub redirect_uris: Vec<String>,
    /// The grants it may use.
    pub grant_types: Vec<GrantType>,
    /// Application scopes its tokens may carry.
    pub allowed_scopes: Vec<String>,
    /// Resources its tokens may be for.
    pub allowed_resources: Vec<String>,
    /// How it authenticates at the token endpoint.
    pub method: AuthMethod,
    /// Its public keys, a JWK Set as JSON text.
    pub jwks: Option<String>,
}

/// A client's name: 1 to 128 bytes, no control characters.
///
/// # Errors
/// INVALID_ARGUMENT naming `name`.
pub(crate) fn name(value: &str) -> Result<String, Error> {
    check_text("name", value, MAX_CLIENT_NAME_LEN)?;
    Ok(value.to_owned())
}

/// Redirect URIs: each [`check_url`], at most 16, duplicates dropped.
///
/// # Errors
/// INVALID_ARGUMENT naming `redirect_uris`.
pub(crate) fn redirect_uris(values: &[String]) -> Result<Vec<String>, Error> {
    urls("redirect_uris", values)
}

/// Resources (RFC 8707): each [`check_url`], at most 16, duplicates
/// dropped.
///
/// # Errors
/// INVALID_ARGUMENT naming `allowed_resources`.
pub(crate) fn resources(values: &[String]) -> Result<Vec<String>, Error> {
    urls("allowed_resources", values)
}

fn urls(field: &'static str, values: &[String]) -> Result<Vec<String>, Error> {
    if values.len() > MAX_URLS {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_URLS} are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for v in values {
        check_url(field, v)?;
        if !out.contains(v) {
            out.push(v.clone());
        }
    }
    Ok(out)
}

/// Application scopes the client's tokens may carry: well-formed, at
/// least one, never a service scope.
///
/// # Errors
/// INVALID_ARGUMENT naming `allowed_scopes`.
pub(crate) fn scopes(values: &[String]) -> Result<Vec<String>, Error> {
    let scopes = parse_scopes("allowed_scopes", values, false)?;
    policy::token_scopes_allowed("allowed_scopes", &scopes)?;
    Ok(scopes)
}

/// The `jwks` member of a registration or a metadata document: absent or
/// `null` for none, else it must be a JSON object (a JWK Set, as text for
/// [`jwks`] to check).
///
/// # Errors
/// What is wrong with it, for the caller's refusal.
pub(crate) fn jwks_member(
    value: Option<serde_json::Value>,
) -> Result<Option<String>, &'static str> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v @ serde_json::Value::Object(_)) => Ok(Some(v.to_string())),
        Some(_) => Err("jwks must be a JWK Set object"),
    }
}

/// The scopes a self-registered client (a registration or a metadata
/// document) asks for in its space-separated `scope`, or `defaults` when
/// it asks for none; `None` when both are empty.
pub(crate) fn self_registered_scopes(
    scope: Option<&str>,
    defaults: &[String],
) -> Option<Vec<String>> {
    let asked: Vec<String> = scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    let scopes = if asked.is_empty() {
        defaults.to_vec()
    } else {
        asked
    };
    (!scopes.is_empty()).then_some(scopes)
}

/// Grant types by their OAuth names: at least one, each known,
/// duplicates dropped.
///
/// # Errors
/// INVALID_ARGUMENT naming `grant_types`.
pub(crate) fn grant_types(values: &[String]) -> Result<Vec<GrantType>, Error> {
    if values.is_empty() {
        return Err(Error::invalid(
            "grant_types",
            format!("at least one is required: {}", grant_names()),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        let grant = GrantType::parse(v).ok_or_else(|| {
            Error::invalid(
                "grant_types",
                format!(
                    "{} is not a grant type this server knows; use {}",
                    Echo(v),
                    grant_names()
                ),
            )
        })?;
        if !out.contains(&grant) {
            out.push(grant);
        }
    }
    Ok(out)
}

fn grant_names() -> String {
    GrantType::ALL.map(GrantType::as_str).join(", ")
}

/// The token endpoint authentication method by its OAuth name.
///
/// # Errors
/// INVALID_ARGUMENT naming `token_endpoint_auth_method`.
pub(crate) fn auth_method(value: &str) -> Result<AuthMethod, Error> {
    AuthMethod::parse(value).ok_or_else(|| {
        Error::invalid(
            "token_endpoint_auth_method",
            format!(
                "{} is not a method this server knows; use {}",
                Echo(value),
                AuthMethod::ALL.map(AuthMethod::as_str).join(", ")
            ),
        )
    })
}

/// Checks a redirect URI or a resource: an absolute `https` URL, or
/// `http` on a loopback host (`127.0.0.1`, `[::1]`, `localhost`); at most
/// 2048 bytes of visible ASCII (anything else percent-encoded); a host,
/// an optional port; no user information and no fragment.
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub(crate) fn check_url(field: &'static str, value: &str) -> Result<(), Error> {
    let bad = |why: &str| Error::invalid(field, format!("{} {why}", Echo(value)));
    if value.is_empty() || value.len() > MAX_URL_LEN {
        return Err(Error::invalid(
            field,
            format!("each must be 1 to {MAX_URL_LEN} bytes"),
        ));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "must be visible ASCII without spaces (percent-encode anything else)",
        ));
    }
    if value.contains('#') {
        return Err(bad("must not have a fragment (#...)"));
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err(bad("must be an absolute https URL"));
    };
    let https = scheme.eq_ignore_ascii_case("https");
    if !https && !scheme.eq_ignore_ascii_case("http") {
        return Err(bad("must be https (or http on a loopback host)"));
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(bad("must not carry user information (user@host)"));
    }
    let (host, port) = split_host_port(authority).ok_or_else(|| bad("has no valid host"))?;
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad("has an invalid port"));
        }
    }
    if !valid_host(host) {
        return Err(bad("has no valid host"));
    }
    if !https && !is_loopback(host) {
        return Err(bad(
            "uses http on a host that is not loopback: use https, or http on 127.0.0.1, [::1] or localhost",
        ));
    }
    let mut bytes = tail.bytes();
    while let Some(b) = bytes.next() {
        if matches!(
            b,
            b'<' | b'>' | b'"' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}'
        ) {
            return Err(bad("holds a character a URL may not (percent-encode it)"));
        }
        if b == b'%' {
            let hex = |c: Option<u8>| c.is_some_and(|c| c.is_ascii_hexdigit());
            if !(hex(bytes.next()) && hex(bytes.next())) {
                return Err(bad("has a % not followed by two hex digits"));
            }
        }
    }
    Ok(())
}

/// The host and the port (if any) of an authority.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        match after {
            "" => Some((host, None)),
            _ => after.strip_prefix(':').map(|p| (host, Some(p))),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => Some((host, Some(port))),
            None => Some((authority, None)),
        }
    }
}

/// A bracketed IPv6 literal, or dot-separated labels of letters, digits
/// and inner hyphens (which covers IPv4 literals).
fn valid_host(host: &str) -> bool {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether the redirect URI an authorization request sent is the
/// registered one: byte for byte, except that for an `http` loopback
/// redirect URI the port may differ (RFC 8252 section 7.3: native apps
/// listen on an ephemeral port).
pub(crate) fn redirect_uri_matches(registered: &str, presented: &str) -> bool {
    if registered == presented {
        return true;
    }
    let (Ok(r), Ok(p)) = (url::Url::parse(registered), url::Url::parse(presented)) else {
        return false;
    };
    let loopback = r.scheme() == "http"
        && r.host_str()
            .is_some_and(|h| is_loopback(h) || h == "[::1]" || h == "::1");
    loopback
        && p.scheme() == "http"
        && r.host_str() == p.host_str()
        && r.path() == p.path()
        && r.query() == p.query()
        && p.fragment().is_none()
        && p.username().is_empty()
        && p.password().is_none()
}

/// Whether `value` is a well-formed URL (see [`check_url`]) on a loopback
/// host: a local MCP server under development.
pub(crate) fn is_loopback_url(value: &str) -> bool {
    if check_url("resource", value).is_err() {
        return false;
    }
    let rest = value.split_once("://").map_or("", |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    split_host_port(authority).is_some_and(|(host, _)| is_loopback(host))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// Checks a JWK Set given as JSON text: `{"keys": [...]}` with 1 to 16
/// public keys (RSA, EC or OKP), each usable for verifying signatures; no
/// private or symmetric key material. Returns the text as given.
///
/// # Errors
/// INVALID_ARGUMENT naming `jwks`.
pub(crate) fn jwks(text: &str) -> Result<String, Error> {
    let bad = |why: String| Error::invalid("jwks", why);
    if text.len() > MAX_JWKS_LEN {
        return Err(bad(format!("must be at most {MAX_JWKS_LEN} bytes")));
    }
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad(format!("is not JSON: {e}")))?;
    let Some(keys) = value.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(bad(
            "must be a JWK Set: an object with a \"keys\" array".to_owned()
        ));
    };
    if keys.is_empty() {
        return Err(bad("must hold at least one key".to_owned()));
    }
    if keys.len() > MAX_JWKS_KEYS {
        return Err(bad(format!("must hold at most {MAX_JWKS_KEYS} keys")));
    }
    for (i, key) in keys.iter().enumerate() {
        let Some(members) = key.as_object() else {
            return Err(bad(format!("key {i} is not a JSON object")));
        };
        if let Some(m) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(bad(format!(
                "key {i} holds private or symmetric key material ({m:?}): register public keys only"
            )));
        }
        let jwk: Jwk = serde_json::from_value(key.clone())
            .map_err(|e| bad(format!("key {i} is not a JWK: {e}")))?;
        if !matches!(
            jwk.algorithm,
            AlgorithmParameters::RSA(_)
                | AlgorithmParameters::EllipticCurve(_)
                | AlgorithmParameters::OctetKeyPair(_)
        ) {
            return Err(bad(format!("key {i} must be an RSA, EC or OKP public key")));
        }
        DecodingKey::from_jwk(&jwk)
            .map_err(|e| bad(format!("key {i} cannot verify signatures: {e}")))?;
    }
    Ok(text.to_owned())
}

/// Checks that the settings fit together: `authorization_code` needs a
/// redirect URI; `refresh_token` comes with `authorization_code`;
/// `client_credentials` needs a confidential method and a resource to
/// issue tokens for; `private_key_jwt` needs a JWK Set.
///
/// # Errors
/// INVALID_ARGUMENT naming the field to change.
pub(crate) fn check_combination(c: &ClientShape) -> Result<(), Error> {
    let has = |g: GrantType| c.grant_types.contains(&g);
    if has(GrantType::AuthorizationCode) && c.redirect_uris.is_empty() {
        return Err(Error::invalid(
            "redirect_uris",
            "authorization_code needs at least one redirect URI",
        ));
    }
    if has(GrantType::RefreshToken) && !has(GrantType::AuthorizationCode) {
        return Err(Error::invalid(
            "grant_types",
            "refresh_token is issued only with authorization_code; add it or drop refresh_token",
        ));
    }
    if has(GrantType::ClientCredentials) {
        if !c.method.is_confidential() {
            return Err(Error::invalid(
                "token_endpoint_auth_method",
                "client_credentials needs a confidential client: client_secret_basic, client_secret_post or private_key_jwt, not none",
            ));
        }
        if c.allowed_resources.is_empty() {
            return Err(Error::invalid(
                "allowed_resources",
                "client_credentials needs at least one resource its tokens are for",
            ));
        }
    }
    if c.method == AuthMethod::PrivateKeyJwt && c.jwks.is_none() {
        return Err(Error::invalid(
            "jwks",
            "private_key_jwt needs the client's public keys as a JWK Set",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_are_local_servers_only() {
        for yes in [
            "http://127.0.0.1:8080/mcp",
            "http://localhost/mcp",
            "https://[::1]:9/",
        ] {
            assert!(is_loopback_url(yes), "{yes}");
        }
        for no in [
            "https://mcp.example.com/mcp",
            "http://127.0.0.1.example.com/mcp",
            "http://10.0.0.1/mcp",
            "http://user@127.0.0.1/mcp",
            "127.0.0.1:8080/mcp",
        ] {
            assert!(!is_loopback_url(no), "{no}");
        }
    }

    #[test]
    fn loopback_redirect_uris_match_on_any_port_and_nothing_else_does() {
        let m = redirect_uri_matches;
        assert!(m("https://app.example/cb", "https://app.example/cb"));
        assert!(!m("https://app.example/cb", "https://app.example/cb/"));
        assert!(!m("https://app.example/cb", "https://app.example:8443/cb"));
        assert!(m(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/callback"
        ));
        assert!(m(
            "http://127.0.0.1:8080/callback",
            "http://127.0.0.1:9/callback"
        ));
        assert!(m("http://[::1]/cb", "http://[::1]:4000/cb"));
        assert!(m("http://localhost/cb", "http://localhost:4000/cb"));
        assert!(!m(
            "http://127.0.0.1/callback",
            "http://127.0.0.1:53124/other"
        ));
        assert!(!m(
            "http://127.0.0.1/callback",
            "http://localhost:53124/callback"
        ));
        assert!(!m("http://127.0.0.1/cb", "http://127.0.0.1:1/cb?x=1"));
        assert!(!m("http://127.0.0.1/cb", "http://u@127.0.0.1:1/cb"));
        assert!(!m("http://127.0.0.1/cb", "https://127.0.0.1:1/cb"));
    }
    use crate::core::Reason;

    fn field_of(err: Error) -> &'static str {
        assert_eq!(err.reason(), Reason::InvalidField, "{err}");
        match err {
            Error::InvalidArgument { field, .. } => field,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn urls_are_https_or_loopback_http_without_fragments() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com:8443/cb?x=1&y=%20",
            "HTTPS://App.Example.com",
            "http://127.0.0.1:33418/callback",
            "http://[::1]:8080/cb",
            "http://localhost/cb",
            "https://[2001:db8::1]/cb",
            "https://10.0.0.1/cb",
        ] {
            assert!(check_url("redirect_uris", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "app.example.com/cb",
            "ftp://app.example.com/cb",
            "http://app.example.com/cb",
            "http://127.0.0.2/cb",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "https:///cb",
            "https://app..example.com/cb",
            "https://-app.example.com/cb",
            "https://app.example.com:0/cb",
            "https://app.example.com:99999/cb",
            "https://app.example.com:/cb",
            "https://[::1/cb",
            "https://[zz::1]/cb",
            "https://app.example.com/a b",
            "https://app.example.com/ü",
            "https://app.example.com/%zz",
            "https://app.example.com/a{b}",
            "javascript:alert(1)",
        ] {
            assert_eq!(
                field_of(check_url("redirect_uris", bad).unwrap_err()),
                "redirect_uris",
                "{bad}"
            );
        }
        let long = format!("https://a.example/{}", "x".repeat(MAX_URL_LEN));
        assert!(check_url("allowed_resources", &long).is_err());
    }

    #[test]
    fn lists_are_bounded_and_deduplicated() {
        let one = "https://mcp.example".to_owned();
        let twice = resources(&[one.clone(), one.clone()]).unwrap();
        assert_eq!(twice, vec![one]);
        let many: Vec<String> = (0..=MAX_URLS)
            .map(|i| format!("https://m{i}.example"))
            .collect();
        assert_eq!(field_of(resources(&many).unwrap_err()), "allowed_resources");
        assert_eq!(
            grant_types(&["client_credentials".into(), "client_credentials".into()]).unwrap(),
            [GrantType::ClientCredentials]
        );
        assert_eq!(field_of(grant_types(&[]).unwrap_err()), "grant_types");
        assert_eq!(
            field_of(grant_types(&["password".into()]).unwrap_err()),
            "grant_types"
        );
        assert_eq!(
            auth_method("private_key_jwt").unwrap(),
            AuthMethod::PrivateKeyJwt
        );
        assert_eq!(
            field_of(auth_method("client_secret_jwt").unwrap_err()),
            "token_endpoint_auth_method"
        );
        assert_eq!(field_of(scopes(&[]).unwrap_err()), "allowed_scopes");
        assert_eq!(
            field_of(scopes(&["keys:admin".into()]).unwrap_err()),
            "allowed_scopes"
        );
        assert_eq!(
            field_of(scopes(&["bad scope".into()]).unwrap_err()),
            "allowed_scopes"
        );
        assert_eq!(field_of(name("").unwrap_err()), "name");
    }

    const EC_KEY: &str = r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}"#;

    #[test]
    fn jwks_must_be_a_set_of_public_keys() {
        let set = format!(r#"{{"keys":[{EC_KEY}]}}"#);
        assert_eq!(jwks(&set).unwrap(), set);
        let okp = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        assert!(jwks(okp).is_ok());
        for bad in [
            "not json",
            "[]",
            r#"{"keys":[]}"#,
            r#"{"keys":{}}"#,
            r#"{"keys":[1]}"#,
            r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}]}"#,
            r#"{"keys":[{"kty":"nope"}]}"#,
            r#"{"keys":[{"kty":"RSA"}]}"#,
        ] {
            assert_eq!(field_of(jwks(bad).unwrap_err()), "jwks", "{bad}");
        }
        let many = format!(
            r#"{{"keys":[{}]}}"#,
            vec![EC_KEY; MAX_JWKS_KEYS + 1].join(",")
        );
        assert!(jwks(&many).is_err());
    }

    fn shape(grants: &[GrantType], method: AuthMethod) -> ClientShape {
        ClientShape {
            name: "n".into(),
            redirect_uris: vec!["https://app.example/cb".into()],
            grant_types: grants.to_vec(),
            allowed_scopes: vec!["tools:read".into()],
            allowed_resources: vec!["https://mcp.example".into()],
            method,
            jwks: None,
        }
    }

    #[test]
    fn settings_must_fit_together() {
        use GrantType::*;
        assert!(
            check_combination(&shape(&[ClientCredentials], AuthMethod::ClientSecretBasic)).is_ok()
        );
        assert!(
            check_combination(&shape(&[AuthorizationCode, RefreshToken], AuthMethod::None)).is_ok()
        );
        assert_eq!(
            field_of(
                check_combination(&shape(&[ClientCredentials], AuthMethod::None)).unwrap_err()
            ),
            "token_endpoint_auth_method"
        );
        let mut no_uris = shape(&[AuthorizationCode], AuthMethod::None);
        no_uris.redirect_uris.clear();
        assert_eq!(
            field_of(check_combination(&no_uris).unwrap_err()),
            "redirect_uris"
        );
        assert_eq!(
            field_of(check_combination(&shape(&[RefreshToken], AuthMethod::None)).unwrap_err()),
            "grant_types"
        );
        let mut no_resource = shape(&[ClientCredentials], AuthMethod::ClientSecretPost);
        no_resource.allowed_resources.clear();
        assert_eq!(
            field_of(check_combination(&no_resource).unwrap_err()),
            "allowed_resources"
        );
        let mut jwt = shape(&[ClientCredentials], AuthMethod::PrivateKeyJwt);
        assert_eq!(field_of(check_combination(&jwt).unwrap_err()), "jwks");
        jwt.jwks = Some(format!(r#"{{"keys":[{EC_KEY}]}}"#));
        assert!(check_combination(&jwt).is_ok());
    }
}
