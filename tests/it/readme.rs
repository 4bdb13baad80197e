//! The walk-throughs, pasted: the `sh` blocks of the README's five-minute
//! walk-through and of each guide run in order in bash, in a directory
//! laid out like the repository root after `cargo build --release` and
//! `serve` on its defaults (`data/`, `certs/`, `target/release/mcp-auth`),
//! against a real server. What a page shows as output right after a
//! command (with nothing but blank lines between) must be what the
//! commands print, ids, secrets, tokens and times aside; and the only
//! errors are the ones it shows.
//!
//! A page marks where the reader stops the server with the comment
//! `<!-- pasted: the server stops here -->` before a block; the test
//! stops it there and runs the rest against the stopped data directory.

use std::collections::BTreeSet;
use std::path::Path;

use crate::common::TestServer;

/// The marker before a block that the reader runs with the server stopped.
const STOP_MARKER: &str = "<!-- pasted: the server stops here -->";

/// Which part of a page holds its walk-through.
pub(super) enum Part<'a> {
    /// The section under `## heading`, to the next `## `.
    Section(&'a str),
    /// Everything before `## heading`.
    Before(&'a str),
    /// The whole page.
    All,
}

/// A page's walk-through: its runs of `sh` blocks (a new run where the
/// server stops) and the output blocks that follow a command.
pub(super) struct Walkthrough {
    pub(super) runs: Vec<Vec<String>>,
    pub(super) outputs: Vec<String>,
}

pub(super) fn walkthrough(text: &str, part: &Part) -> Walkthrough {
    let section = match part {
        Part::Section(heading) => {
            let section = text
                .split(&format!("\n## {heading}"))
                .nth(1)
                .unwrap_or_else(|| panic!("there is a `## {heading}` section"));
            section.split("\n## ").next().unwrap_or(section)
        }
        Part::Before(heading) => text
            .split(&format!("\n## {heading}"))
            .next()
            .unwrap_or(text),
        Part::All => text,
    };
    let mut w = Walkthrough {
        runs: vec![Vec::new()],
        outputs: Vec::new(),
    };
    let mut after_command = false;
    let mut stop_next = false;
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if line.trim() == STOP_MARKER {
            stop_next = true;
        }
        let Some(lang) = line.trim().strip_prefix("```") else {
            // Prose between a command and a block makes the block an
            // illustration, not that command's output.
            if !line.trim().is_empty() {
                after_command = false;
            }
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        match lang {
            "sh" | "bash" => {
                if std::mem::take(&mut stop_next) {
                    w.runs.push(Vec::new());
                }
                if let Some(run) = w.runs.last_mut() {
                    run.push(body.join("\n"));
                }
                after_command = true;
            }
            // Output right after a command; a diagram elsewhere is not.
            "text" | "json" if after_command => {
                w.outputs.push(body.join("\n"));
                after_command = false;
            }
            _ => after_command = false,
        }
    }
    w
}

/// A token that differs from run to run (an id, a secret, a token, a
/// time, a key's base64url), replaced by its kind; punctuation around it
/// kept.
fn mask_token(token: &str) -> String {
    let core = token.trim_matches(|c: char| matches!(c, '"' | ',' | '(' | ')' | ':' | '.'));
    if core.is_empty() {
        return token.to_owned();
    }
    let kind = if let Some(kind) = [
        "key_", "ses_", "cli_", "usr_", "mcp_sk_", "mcp_cs_", "mcp_rt_", "mcp_ac_", "eyJ",
    ]
    .into_iter()
    .find(|p| core.starts_with(p))
    {
        kind
    } else if core.len() >= 9 && core.bytes().all(|b| b.is_ascii_digit()) {
        "NUMBER"
    } else if core.len() == 20 && core.as_bytes().get(4) == Some(&b'-') && core.ends_with('Z') {
        "TIME"
    } else if core.len() == 32 && core.bytes().all(|b| b.is_ascii_hexdigit()) {
        "SERIAL"
    } else if core.len() == 95
        && core
            .split(':')
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        "SHA256"
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
pub(super) fn mask(line: &str) -> String {
    // A metric's value counts what every server of the test process did.
    if let Some((series, value)) = line
        .strip_prefix("mcp_auth_")
        .and_then(|l| l.rsplit_once(' '))
    {
        if value.parse::<f64>().is_ok() {
            return format!("mcp_auth_{series} N");
        }
    }
    // How long the CLI waits depends on how fast the loop before it ran.
    if line.starts_with("rate limited; retrying in ") {
        return "rate limited; retrying in N s".to_owned();
    }
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
    pasted("README.md", Part::Section("Five-minute walk-through")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keys_and_sessions_guide_works_when_pasted() {
    pasted("docs/guide/api-keys-and-sessions.md", Part::All).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_guide_works_when_pasted() {
    pasted("docs/guide/sessions.md", Part::All).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limits_guide_works_when_pasted() {
    // It waits for buckets to refill: the server's clock must move.
    pasted_on(
        TestServer::start_real_time().await,
        "docs/guide/rate-limits.md",
        Part::All,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mtls_guide_works_when_pasted() {
    pasted("docs/guide/mtls.md", Part::Before("In production")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_oauth_section_works_when_pasted() {
    // It goes on from the walk-through: its terminal, its keys.
    let server = TestServer::start().await;
    pasted_pages(
        server,
        &[
            ("README.md", Part::Section("Five-minute walk-through")),
            ("README.md", Part::Section("OAuth for a machine, over HTTP")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_mcp_server_section_works_when_pasted() {
    // It goes on from the walk-through: its terminal, its keys.
    assert!(
        example_binary().is_some(),
        "the example MCP server is built"
    );
    let server = TestServer::start().await;
    pasted_pages(
        server,
        &[
            ("README.md", Part::Section("Five-minute walk-through")),
            ("README.md", Part::Section("Protecting an MCP server")),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_client_credentials_guide_works_when_pasted() {
    pasted("docs/guide/oauth-client-credentials.md", Part::All).await;
}

/// The example MCP server's binary, which `cargo test` builds into
/// `examples/` beside the directory of the test binary (`deps/`).
fn example_binary() -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("examples").join("mcp_server");
    path.exists().then_some(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protecting_an_mcp_server_guide_works_when_pasted() {
    assert!(
        example_binary().is_some(),
        "the example MCP server is not built: run `cargo test` (it builds the examples), or `cargo build --example mcp_server` first"
    );
    pasted(
        "docs/guide/protecting-an-mcp-server.md",
        Part::Before("Choosing how tokens are verified"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth_browser_flow_guide_works_when_pasted() {
    pasted("docs/guide/oauth-browser-flow.md", Part::All).await;
}

/// The README walk-through's first block (`PATH` and the admin key), for
/// a guide that goes on from there.
fn setup_block() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let w = walkthrough(&readme, &Part::Section("Five-minute walk-through"));
    w.runs[0][0].clone()
}

/// Runs `part` of `file` against a fresh server as a reader pasting it
/// would, and checks what it prints against the page.
async fn pasted(file: &str, part: Part<'_>) {
    pasted_on(TestServer::start().await, file, part).await;
}

/// [`pasted`] against `server`.
async fn pasted_on(server: TestServer, file: &str, part: Part<'_>) {
    pasted_pages(server, &[(file, part)]).await;
}

/// [`pasted_on`] for parts of several pages pasted one after the other
/// into one terminal.
async fn pasted_pages(mut server: TestServer, parts: &[(&str, Part<'_>)]) {
    let mut page = String::new();
    let mut w = Walkthrough {
        runs: vec![Vec::new()],
        outputs: Vec::new(),
    };
    for (file, part) in parts {
        let text =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap();
        let mut more = walkthrough(&text, part);
        let mut runs = more.runs.drain(..);
        if let (Some(last), Some(first)) = (w.runs.last_mut(), runs.next()) {
            last.extend(first);
        }
        w.runs.extend(runs);
        w.outputs.append(&mut more.outputs);
        page.push_str(&text);
    }
    let file = parts
        .iter()
        .map(|(f, _)| *f)
        .collect::<Vec<_>>()
        .join(" + ");
    assert!(w.runs.iter().flatten().count() >= 3, "{file} has its steps");

    // The repository root as the reader has it: data/ of the running
    // server, the scripts of certs/, the release binary where
    // `cargo build --release` puts it.
    let root = tempfile::tempdir().unwrap();
    symlink(server.data_dir(), &root.path().join("data"));
    std::fs::create_dir_all(root.path().join("target/release")).unwrap();
    symlink(
        Path::new(env!("CARGO_BIN_EXE_mcp-auth")),
        &root.path().join("target/release/mcp-auth"),
    );
    // The example MCP server, where `cargo build --release --example
    // mcp_server` puts it (cargo test builds the examples beside the
    // tests).
    if let Some(example) = example_binary() {
        std::fs::create_dir_all(root.path().join("target/release/examples")).unwrap();
        symlink(
            &example,
            &root.path().join("target/release/examples/mcp_server"),
        );
    }
    std::fs::create_dir_all(root.path().join("certs")).unwrap();
    for script in ["init-ca.sh", "issue-client-cert.sh", "mcp-auth-bin.sh"] {
        let from = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("certs")
            .join(script);
        std::fs::copy(from, root.path().join("certs").join(script)).unwrap();
    }
    // Shell variables carry from one run to the next, as in the reader's
    // terminal.
    let state = root.path().join(".pasted-state");
    let mut setup = String::new();
    if !page.contains("export PATH=") {
        setup = setup_block();
    }
    let (mut stdout, mut stderr, mut scripts) = (String::new(), String::new(), String::new());
    for (i, run) in w.runs.iter().enumerate() {
        if i > 0 {
            server.stop().await;
        }
        let script = format!(
            "source {state:?} 2>/dev/null\nset -u\n{}\n{}\ndeclare -p > {state:?} 2>/dev/null\n",
            if i == 0 { setup.as_str() } else { "" },
            run.join("\n")
        );
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
            .env("MCP_AUTH_HTTP", server.http_url())
            .env("MCP_AUTH_METRICS", server.metrics_url())
            // The example MCP server takes a free port, not 8080.
            .env("MCP_EXAMPLE_LISTEN", "127.0.0.1:0")
            .output()
            .await
            .unwrap();
        stdout.push_str(&String::from_utf8(out.stdout).unwrap());
        stderr.push_str(&String::from_utf8(out.stderr).unwrap());
        scripts.push_str(&script);
        assert!(
            out.status.success(),
            "{scripts}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }

    let shown: BTreeSet<String> = w.outputs.iter().flat_map(|b| b.lines()).map(mask).collect();
    // Every error is one the page shows, reason and all; anything else
    // on stderr is a line the page shows.
    for line in stderr.lines() {
        let prefix = line
            .split_once(']')
            .map(|(head, _)| format!("{head}]"))
            .unwrap_or_else(|| line.to_owned());
        assert!(
            line.starts_with("error: ") && page.contains(&prefix) || shown.contains(&mask(line)),
            "{file}: unexpected on stderr: {line}\n--- stderr\n{stderr}"
        );
    }
    // Every output line the page shows is printed (ids, secrets, tokens
    // and times aside).
    let printed: BTreeSet<String> = stdout.lines().chain(stderr.lines()).map(mask).collect();
    for block in &w.outputs {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                printed.contains(&mask(line)),
                "{file} shows {line:?}, the commands print no such line\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
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
    assert_eq!(
        mask(r#"  "expires_at": 1795660881,"#),
        r#""expires_at": NUMBER,"#
    );
    assert_eq!(mask("issued:     2026-11-26T02:26:21Z"), "issued: TIME");
    assert_eq!(
        mask(
            "sha256:      3C:9E:01:88:E0:DF:D1:B4:CD:E6:FF:49:5E:28:08:D8:71:26:86:B4:51:9E:E7:B2:CA:54:E3:4C:92:E2:09:F6"
        ),
        "sha256: SHA256"
    );
    assert_eq!(
        mask(r#"mcp_auth_requests_total{code="OK"} 5"#),
        r#"mcp_auth_requests_total{code="OK"} N"#
    );
}
