//! The README's five-minute walk-through, pasted: its `sh` blocks run in
//! order in bash, in a directory laid out like the repository root after
//! `cargo build --release` and `serve` on its defaults (`data/` and
//! `target/release/mcp-auth`), against a real server. What the README
//! shows as output must be what the commands print, ids, secrets, tokens
//! and times aside; and the only errors are the ones it shows.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::TestServer;

/// The `sh` and `text`/`json` blocks of the README section `heading`.
fn blocks(readme: &str, heading: &str) -> (Vec<String>, Vec<String>) {
    let section = readme
        .split(&format!("\n## {heading}"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has a `## {heading}` section"));
    let section = section.split("\n## ").next().unwrap_or(section);
    let (mut scripts, mut outputs) = (Vec::new(), Vec::new());
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(lang) = line.trim().strip_prefix("```") else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        match lang {
            "sh" | "bash" => scripts.push(body.join("\n")),
            "text" | "json" => outputs.push(body.join("\n")),
            _ => {}
        }
    }
    (scripts, outputs)
}

/// A token that differs from run to run (an id, a secret, a token, a
/// time, a key's base64url), replaced by its kind; punctuation around it
/// kept.
fn mask_token(token: &str) -> String {
    let core = token.trim_matches(|c: char| matches!(c, '"' | ',' | '(' | ')' | ':' | '.'));
    if core.is_empty() {
        return token.to_owned();
    }
    let kind = if let Some(kind) = ["key_", "ses_", "mcp_sk_", "mcp_rt_", "eyJ"]
        .into_iter()
        .find(|p| core.starts_with(p))
    {
        kind
    } else if core.len() >= 9 && core.bytes().all(|b| b.is_ascii_digit()) {
        "NUMBER"
    } else if core.len() == 20 && core.as_bytes().get(4) == Some(&b'-') && core.ends_with('Z') {
        "TIME"
    } else if core.len() == 43
        && core
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        "B64"
    } else {
        return token.to_owned();
    };
    token.replacen(core, kind, 1)
}

/// A line with its varying parts masked and its spacing collapsed.
fn mask(line: &str) -> String {
    line.split_whitespace()
        .map(mask_token)
        .collect::<Vec<_>>()
        .join(" ")
}

fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_works_when_pasted() {
    let server = TestServer::start().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let (scripts, outputs) = blocks(&readme, "Five-minute walk-through");
    assert!(scripts.len() >= 5, "the walk-through has its steps");

    // The repository root as the reader has it: data/ of the running
    // server, the release binary where `cargo build --release` puts it.
    let root = tempfile::tempdir().unwrap();
    symlink(server.data_dir(), &root.path().join("data"));
    std::fs::create_dir_all(root.path().join("target/release")).unwrap();
    symlink(
        Path::new(env!("CARGO_BIN_EXE_mcp-auth")),
        &root.path().join("target/release/mcp-auth"),
    );
    let script = format!("set -u\n{}\n", scripts.join("\n"));
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(root.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", root.path())
        // The one difference from the reader's machine: the test
        // server's port.
        .env("MCP_AUTH_SERVER", server.url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // Every error is one the README shows, reason and all.
    for line in stderr.lines() {
        let shown = line
            .split_once("]")
            .map(|(head, _)| format!("{head}]"))
            .unwrap_or_else(|| line.to_owned());
        assert!(
            line.starts_with("error: ") && readme.contains(&shown),
            "unexpected on stderr: {line}\n--- stderr\n{stderr}"
        );
    }
    // Every output line the README shows is printed (ids, secrets,
    // tokens and times aside).
    let printed: BTreeSet<String> = stdout.lines().chain(stderr.lines()).map(mask).collect();
    for block in &outputs {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                printed.contains(&mask(line)),
                "the README shows {line:?}, the commands print no such line\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
            );
        }
    }
}

#[test]
fn masking_keeps_the_shape_and_hides_what_varies() {
    assert_eq!(
        mask("key_qILr867EsiUU6fNkUVImwU billing-backend      mcp_sk_DVTa  active"),
        "key_ billing-backend mcp_sk_ active"
    );
    assert_eq!(mask(r#"  "expires_at": 1795660881,"#), r#""expires_at": NUMBER,"#);
    assert_eq!(mask("issued:     2026-11-26T02:26:21Z"), "issued: TIME");
}
