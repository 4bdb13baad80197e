//! What an MCP request asks for: its JSON-RPC method and, for the methods
//! that name a target, the tool, resource or prompt. Read from the
//! `Mcp-Method` / `Mcp-Name` headers of the 2026-07-28 streamable HTTP
//! transport (SEP-2243) and from the JSON-RPC body; when both are there
//! they must agree, so a header cannot claim a harmless tool while the body
//! calls another.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use serde::Deserialize;

/// The `Mcp-Method` header.
pub const MCP_METHOD: &str = "mcp-method";
/// The `Mcp-Name` header.
pub const MCP_NAME: &str = "mcp-name";
/// The JSON-RPC error code of a header that disagrees with the body
/// (SEP-2243), answered with HTTP 400.
pub const HEADER_MISMATCH: i64 = -32020;

/// One JSON-RPC request or notification: its method, and the name of the
/// tool (`tools/call`), prompt (`prompts/get`) or resource URI
/// (`resources/read`, `resources/subscribe`, `resources/unsubscribe`) it
/// targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// The JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The target's name or URI, for the methods that carry one.
    pub name: Option<String>,
}

/// Where a method's target name is in its `params`.
fn name_key(method: &str) -> Option<&'static str> {
    match method {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    }
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uri: Option<std::borrow::Cow<'a, str>>,
}

impl Message<'_> {
    fn operation(self) -> Option<Operation> {
        let method = self.method?.into_owned();
        let name = name_key(&method).and_then(|key| {
            let p = self.params?;
            if key == "name" { p.name } else { p.uri }.map(|c| c.into_owned())
        });
        Some(Operation { method, name })
    }
}

/// The operations of a JSON-RPC body: one message, or a batch. Messages
/// without a method (responses to the server) name no operation. `None`
/// when the body is not JSON-RPC at all (the MCP server will refuse it).
pub fn body_operations(body: &[u8]) -> Option<Vec<Operation>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first == b'[' {
        let batch: Vec<Message<'_>> = serde_json::from_slice(body).ok()?;
        Some(batch.into_iter().filter_map(Message::operation).collect())
    } else {
        let one: Message<'_> = serde_json::from_slice(body).ok()?;
        Some(one.operation().into_iter().collect())
    }
}

/// The operation the `Mcp-Method` / `Mcp-Name` headers name, if sent.
///
/// # Errors
/// A header that is not visible ASCII, or an `Mcp-Name` whose
/// `=?base64?...?=` form does not decode to UTF-8.
pub fn header_operation(headers: &HeaderMap) -> Result<Option<Operation>, String> {
    let Some(method) = headers.get(MCP_METHOD) else {
        return Ok(None);
    };
    let method = method
        .to_str()
        .map_err(|_| "the Mcp-Method header is not visible ASCII".to_owned())?
        .to_owned();
    let name = match headers.get(MCP_NAME) {
        None => None,
        Some(v) => {
            let raw = v
                .to_str()
                .map_err(|_| "the Mcp-Name header is not visible ASCII".to_owned())?;
            Some(decode_header_value(raw).ok_or("the Mcp-Name header is not valid Base64")?)
        }
    };
    Ok(Some(Operation { method, name }))
}

/// A header value in SEP-2243's form: plain, or `=?base64?<b64>?=`.
fn decode_header_value(raw: &str) -> Option<String> {
    match raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(STANDARD.decode(b64).ok()?).ok(),
        None => Some(raw.to_owned()),
    }
}

/// What a request asks for, from its headers and body: the body's
/// operations when it has any, else the headers'.
///
/// # Errors
/// The headers disagree with a single-message body (method, or the name of
/// a method that names a target), or cannot be read: answer 400 with
/// [`HEADER_MISMATCH`].
pub fn operations(headers: &HeaderMap, body: &[u8]) -> Result<Vec<Operation>, String> {
    let from_headers = header_operation(headers)?;
    let from_body = body_operations(body);
    match (from_headers, from_body) {
        (Some(h), Some(ops)) if ops.len() == 1 => {
            let b = &ops[0];
            if h.method != b.method {
                return Err(format!(
                    "the Mcp-Method header ({}) does not match the body's method ({})",
                    crate::challenge::printable(&h.method),
                    crate::challenge::printable(&b.method)
                ));
            }
            if name_key(&b.method).is_some() && h.name.is_some() && h.name != b.name {
                return Err(format!(
                    "the Mcp-Name header does not match the body's target of {}",
                    crate::challenge::printable(&b.method)
                ));
            }
            Ok(ops)
        }
        (_, Some(ops)) if !ops.is_empty() => Ok(ops),
        (Some(h), _) => Ok(vec![h]),
        (None, Some(ops)) => Ok(ops),
        (None, None) => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_note","arguments":{"text":"x"}}}"#;

    #[test]
    fn the_body_names_method_and_target() {
        let ops = body_operations(CALL).unwrap();
        assert_eq!(
            ops,
            [Operation {
                method: "tools/call".into(),
                name: Some("write_note".into())
            }]
        );
        let read = br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"notes://all","name":"ignored"}}"#;
        assert_eq!(
            body_operations(read).unwrap()[0].name.as_deref(),
            Some("notes://all")
        );
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"x"}}"#;
        assert_eq!(body_operations(list).unwrap()[0].name, None);
        let batch = br#" [{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":3,"result":{}}]"#;
        assert_eq!(body_operations(batch).unwrap().len(), 1);
        assert_eq!(body_operations(b"not json"), None);
        assert_eq!(body_operations(b""), None);
        assert_eq!(body_operations(b"{\"method\":7}"), None);
    }

    #[test]
    fn headers_must_agree_with_the_body() {
        let ok = headers(&[("mcp-method", "tools/call"), ("mcp-name", "write_note")]);
        assert_eq!(operations(&ok, CALL).unwrap().len(), 1);
        let b64 = headers(&[
            ("mcp-method", "tools/call"),
            ("mcp-name", "=?base64?d3JpdGVfbm90ZQ==?="),
        ]);
        assert!(operations(&b64, CALL).is_ok(), "base64 form decodes");
        let other_tool = headers(&[("mcp-method", "tools/call"), ("mcp-name", "read_notes")]);
        let err = operations(&other_tool, CALL).unwrap_err();
        assert!(err.contains("Mcp-Name"), "{err}");
        let other_method = headers(&[("mcp-method", "tools/list")]);
        assert!(
            operations(&other_method, CALL)
                .unwrap_err()
                .contains("Mcp-Method")
        );
        let bad_b64 = headers(&[("mcp-method", "tools/call"), ("mcp-name", "=?base64?%%?=")]);
        assert!(operations(&bad_b64, CALL).is_err());
    }

    #[test]
    fn headers_alone_name_the_operation_when_the_body_does_not() {
        let h = headers(&[("mcp-method", "tools/call"), ("mcp-name", "write_note")]);
        let ops = operations(&h, b"garbage").unwrap();
        assert_eq!(ops[0].name.as_deref(), Some("write_note"));
        assert!(
            operations(&HeaderMap::new(), b"garbage")
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            operations(&HeaderMap::new(), CALL).unwrap()[0].method,
            "tools/call"
        );
    }
}
