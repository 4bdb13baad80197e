//! Packaging (issue 16): the sample production configuration in `deploy/`
//! names every setting at its default and serves as it is; the systemd
//! unit passes `systemd-analyze verify` (where that tool is installed);
//! the Containerfile builds from paths that exist as a non-root,
//! multi-stage image; `--version` names the commit; the LICENSE is the
//! one `Cargo.toml` names.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use mcp_auth::config::{Config, Settings};

use crate::common::spawn_binary_with;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

/// The TOML keys of the table under `## Settings` in
/// docs/reference/configuration.md.
fn documented_settings() -> Vec<String> {
    let page = read("docs/reference/configuration.md");
    let table = page.split("\n## Settings").nth(1).unwrap();
    let table = table.split("\n## ").next().unwrap();
    let keys: Vec<String> = table
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |").map(|(key, _)| key.to_owned()))
        .collect();
    assert!(keys.len() > 40, "the table was not found: {keys:?}");
    keys
}

#[test]
fn the_sample_config_names_every_setting_and_sets_each_to_its_default() {
    let text = read("deploy/config.toml");
    for key in documented_settings() {
        let set = text.lines().any(|l| {
            let l = l.trim_start_matches("# ");
            l.starts_with(&format!("{key} = ")) || l == format!("[{key}]")
        });
        assert!(set, "deploy/config.toml does not name `{key}`");
    }
    // Every value it sets is the default: the same configuration as the
    // defaults with only the production data directory, which the unit
    // file and the image use.
    let sample = Settings::from_file(&repo("deploy/config.toml")).unwrap();
    let defaults = Settings {
        data_dir: Some("/var/lib/mcp-auth".into()),
        ..Settings::default()
    };
    let sample = Config::from_settings(sample).unwrap();
    let defaults = Config::from_settings(defaults).unwrap();
    assert_eq!(format!("{sample:?}"), format!("{defaults:?}"));
}

#[tokio::test]
async fn the_sample_config_serves_as_it_is() {
    // Flags win over the file: a scratch data directory and free ports.
    let dir = tempfile::tempdir().unwrap();
    let config = repo("deploy/config.toml");
    let mut server = spawn_binary_with(dir.path(), &["--config", config.to_str().unwrap()]).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let ca = dir.path().join("tls/ca.pem");
    let jwks = crate::common::http_client_trusting(&ca)
        .get(format!("{}/jwks", server.http_url))
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    server.child.kill().await.unwrap();
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("deploy/mcp-auth.service");
    for hardening in [
        "User=mcp-auth",
        "StateDirectory=mcp-auth",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "MemoryDenyWriteExecute=yes",
        "ExecStart=/usr/local/bin/mcp-auth serve --config /etc/mcp-auth/config.toml",
    ] {
        assert!(
            unit.lines().any(|l| l == hardening),
            "no `{hardening}` line"
        );
    }
    let Ok(analyze) = which("systemd-analyze") else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
        return;
    };
    // verify checks that ExecStart's program exists: point it at this
    // build's binary, in a copy.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mcp-auth.service");
    std::fs::write(
        &copy,
        unit.replace("/usr/local/bin/mcp-auth", env!("CARGO_BIN_EXE_mcp-auth")),
    )
    .unwrap();
    let out = std::process::Command::new(analyze)
        .arg("verify")
        .arg(&copy)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // Unknown or misspelt keys are only warnings: none may be printed.
    assert!(
        !said.contains("mcp-auth.service"),
        "systemd-analyze verify warned: {said}"
    );
    let sysusers = read("deploy/mcp-auth.sysusers");
    assert!(sysusers.lines().any(|l| l.starts_with("u mcp-auth ")));
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

#[test]
fn the_containerfile_is_multi_stage_non_root_and_copies_what_exists() {
    let file = read("deploy/Containerfile");
    let lines: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    let stages = lines.iter().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(stages, 2, "a build stage and a runtime stage");
    let runtime = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let user = lines[runtime..]
        .iter()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage names its USER");
    assert!(
        !user.starts_with('0') && !user.starts_with("root"),
        "{user}"
    );
    assert!(
        lines.contains(&r#"VOLUME ["/var/lib/mcp-auth"]"#),
        "the data directory of deploy/config.toml is a volume"
    );
    // Every source copied from the build context exists.
    for line in &lines {
        let Some(rest) = line.strip_prefix("COPY ") else {
            continue;
        };
        if rest.starts_with("--from") {
            continue;
        }
        let parts: Vec<&str> = rest.split_whitespace().collect();
        for source in &parts[..parts.len() - 1] {
            assert!(repo(source).exists(), "COPY of a missing {source}");
        }
    }
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        printed.trim(),
        format!("mcp-auth {} (commit {commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_license_is_the_apache_license_cargo_toml_names() {
    assert!(read("Cargo.toml").contains("license = \"Apache-2.0\""));
    let license = read("LICENSE");
    assert!(license.contains("Apache License"));
    assert!(license.contains("Version 2.0, January 2004"));
}
