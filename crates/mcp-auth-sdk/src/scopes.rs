//! Which scopes each MCP operation needs: a base set for every request to
//! the MCP endpoint, plus per method (`tools/list`, ...), per tool (for
//! `tools/call`), per resource URI (`resources/read`, ...) and per prompt
//! (`prompts/get`). The layer checks them before the handler runs; handlers
//! can filter `tools/list` with [`ScopeMap::filter_tools`].

use std::collections::{BTreeMap, BTreeSet};

use crate::claims::Verified;
use crate::jsonrpc::Operation;

/// Required scopes per MCP operation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScopeMap {
    base: Vec<String>,
    methods: BTreeMap<String, Vec<String>>,
    tools: BTreeMap<String, Vec<String>>,
    unlisted_tools: Vec<String>,
    resources: BTreeMap<String, Vec<String>>,
    prompts: BTreeMap<String, Vec<String>>,
    extra_supported: Vec<String>,
}

/// A sorted list of scopes without repeats.
pub(crate) fn owned<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
    v.sort();
    v.dedup();
    v
}

impl ScopeMap {
    /// A map requiring nothing but a valid credential.
    pub fn new() -> Self {
        ScopeMap::default()
    }

    /// Scopes every request to the MCP endpoint needs.
    pub fn base<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.base = owned(scopes);
        self
    }

    /// Scopes a JSON-RPC method needs (e.g. `tools/list`), besides the base.
    pub fn method<'a>(mut self, method: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.methods.insert(method.to_owned(), owned(scopes));
        self
    }

    /// Scopes calling tool `name` needs (`tools/call`), besides the base
    /// and what `tools/call` itself needs.
    pub fn tool<'a>(mut self, name: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.tools.insert(name.to_owned(), owned(scopes));
        self
    }

    /// Scopes calling a tool not named with [`ScopeMap::tool`] needs
    /// (default: none beyond the base), so a tool added later without a
    /// line here is not left open by mistake.
    pub fn unlisted_tools<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.unlisted_tools = owned(scopes);
        self
    }

    /// Scopes reading (or subscribing to) resource `uri` needs.
    pub fn resource<'a>(mut self, uri: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.resources.insert(uri.to_owned(), owned(scopes));
        self
    }

    /// Scopes getting prompt `name` needs.
    pub fn prompt<'a>(mut self, name: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.prompts.insert(name.to_owned(), owned(scopes));
        self
    }

    /// Scopes to advertise in `scopes_supported` besides those named here.
    pub fn also_supported<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.extra_supported = owned(scopes);
        self
    }

    /// Every scope an operation here can need, sorted: the
    /// `scopes_supported` of the protected resource metadata, and the
    /// `scope` of a 401 challenge (what a client should ask for).
    pub fn supported(&self) -> Vec<String> {
        let mut all: BTreeSet<&str> = BTreeSet::new();
        let lists = std::iter::once(&self.base)
            .chain(self.methods.values())
            .chain(self.tools.values())
            .chain(std::iter::once(&self.unlisted_tools))
            .chain(self.resources.values())
            .chain(self.prompts.values())
            .chain(std::iter::once(&self.extra_supported));
        for list in lists {
            all.extend(list.iter().map(String::as_str));
        }
        all.into_iter().map(str::to_owned).collect()
    }

    /// Every scope `op` needs, sorted and without repeats.
    pub fn required(&self, op: &Operation) -> Vec<String> {
        let mut need: BTreeSet<&str> = BTreeSet::new();
        for list in self.lists(op).into_iter().flatten() {
            need.extend(list.iter().map(String::as_str));
        }
        need.into_iter().map(str::to_owned).collect()
    }

    /// The lists of scopes `op` needs (base, method, target), unmerged.
    fn lists<'a>(&'a self, op: &Operation) -> [Option<&'a Vec<String>>; 3] {
        let per_name = op
            .name
            .as_deref()
            .and_then(|name| match op.method.as_str() {
                "tools/call" => Some(self.tools.get(name).unwrap_or(&self.unlisted_tools)),
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                    self.resources.get(name)
                }
                "prompts/get" => self.prompts.get(name),
                _ => None,
            });
        [
            Some(&self.base),
            self.methods.get(op.method.as_str()),
            per_name,
        ]
    }

    /// Whether `caller` holds every scope `ops` need: what
    /// [`ScopeMap::required_all`] lists, checked without building it.
    pub fn allows(&self, caller: &Verified, ops: &[Operation]) -> bool {
        let holds = |list: &Vec<String>| list.iter().all(|s| caller.has_scope(s));
        if ops.is_empty() {
            return holds(&self.base);
        }
        ops.iter()
            .all(|op| self.lists(op).into_iter().flatten().all(holds))
    }

    /// Every scope a set of operations (a JSON-RPC batch) needs.
    pub fn required_all(&self, ops: &[Operation]) -> Vec<String> {
        let mut need: BTreeSet<String> = BTreeSet::new();
        if ops.is_empty() {
            need.extend(self.base.iter().cloned());
        }
        for op in ops {
            need.extend(self.required(op));
        }
        need.into_iter().collect()
    }

    /// Whether `caller` may call tool `name`.
    pub fn may_call_tool(&self, caller: &Verified, name: &str) -> bool {
        let op = Operation {
            method: "tools/call".to_owned(),
            name: Some(name.to_owned()),
        };
        self.allows(caller, std::slice::from_ref(&op))
    }

    /// Keeps the tools `caller` may call, for a `tools/list` answer;
    /// `name_of` gives a tool's name.
    pub fn filter_tools<T>(
        &self,
        caller: &Verified,
        tools: Vec<T>,
        name_of: impl Fn(&T) -> &str,
    ) -> Vec<T> {
        tools
            .into_iter()
            .filter(|t| self.may_call_tool(caller, name_of(t)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::TokenKind;

    fn op(method: &str, name: Option<&str>) -> Operation {
        Operation {
            method: method.to_owned(),
            name: name.map(str::to_owned),
        }
    }

    fn caller(scopes: &[&str]) -> Verified {
        Verified {
            kind: TokenKind::AccessToken,
            subject: "u".into(),
            client_id: "c".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            audience: "https://mcp".into(),
            issuer: "https://auth".into(),
            session_id: "ses".into(),
            token_id: "at".into(),
            expires_at: 0,
        }
    }

    fn map() -> ScopeMap {
        ScopeMap::new()
            .base(["mcp"])
            .method("tools/list", ["tools:read"])
            .method("tools/call", ["tools:read"])
            .tool("write_note", ["tools:call"])
            .unlisted_tools(["tools:admin"])
            .resource("notes://all", ["notes:read"])
            .prompt("summarize", ["prompts:read"])
    }

    #[test]
    fn each_operation_needs_the_base_its_method_and_its_name() {
        let m = map();
        assert_eq!(m.required(&op("initialize", None)), ["mcp"]);
        assert_eq!(m.required(&op("tools/list", None)), ["mcp", "tools:read"]);
        assert_eq!(
            m.required(&op("tools/call", Some("write_note"))),
            ["mcp", "tools:call", "tools:read"]
        );
        assert_eq!(
            m.required(&op("tools/call", Some("new_tool"))),
            ["mcp", "tools:admin", "tools:read"],
            "a tool without a line needs the unlisted-tool scopes"
        );
        assert_eq!(
            m.required(&op("resources/read", Some("notes://all"))),
            ["mcp", "notes:read"]
        );
        assert_eq!(m.required(&op("resources/read", Some("other://"))), ["mcp"]);
        assert_eq!(
            m.required(&op("prompts/get", Some("summarize"))),
            ["mcp", "prompts:read"]
        );
        assert_eq!(
            m.required_all(&[op("tools/list", None), op("prompts/get", Some("summarize"))]),
            ["mcp", "prompts:read", "tools:read"]
        );
        assert_eq!(m.required_all(&[]), ["mcp"]);
    }

    #[test]
    fn allows_agrees_with_required() {
        let m = map();
        let ops = [
            op("initialize", None),
            op("tools/list", None),
            op("tools/call", Some("write_note")),
            op("tools/call", Some("new_tool")),
            op("resources/read", Some("notes://all")),
            op("prompts/get", Some("summarize")),
        ];
        let callers = [
            caller(&[]),
            caller(&["mcp"]),
            caller(&["mcp", "tools:read"]),
            caller(&[
                "mcp",
                "tools:read",
                "tools:call",
                "tools:admin",
                "notes:read",
                "prompts:read",
            ]),
        ];
        for c in &callers {
            for o in &ops {
                let one = std::slice::from_ref(o);
                assert_eq!(
                    m.allows(c, one),
                    c.has_all(m.required_all(one).iter().map(String::as_str)),
                    "{o:?} {:?}",
                    c.scopes
                );
            }
            assert_eq!(
                m.allows(c, &[]),
                c.has_all(m.required_all(&[]).iter().map(String::as_str))
            );
            assert_eq!(
                m.allows(c, &ops),
                c.has_all(m.required_all(&ops).iter().map(String::as_str))
            );
        }
    }

    #[test]
    fn supported_lists_every_scope_once() {
        assert_eq!(
            map().also_supported(["offline"]).supported(),
            [
                "mcp",
                "notes:read",
                "offline",
                "prompts:read",
                "tools:admin",
                "tools:call",
                "tools:read"
            ]
        );
        assert!(ScopeMap::new().supported().is_empty());
    }

    #[test]
    fn tools_list_keeps_what_the_caller_may_call() {
        let m = map();
        let tools = vec!["write_note", "new_tool"];
        let reader = caller(&["mcp", "tools:read"]);
        assert!(m.filter_tools(&reader, tools.clone(), |t| t).is_empty());
        let writer = caller(&["mcp", "tools:read", "tools:call"]);
        assert_eq!(m.filter_tools(&writer, tools, |t| t), ["write_note"]);
        assert!(!m.may_call_tool(&writer, "new_tool"));
    }
}
