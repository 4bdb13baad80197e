//! Compiles the protobuf contract under `proto/` with a vendored `protoc`,
//! so a fresh machine needs nothing but cargo, and emits a descriptor set
//! for gRPC reflection; records the git commit being built for
//! `mcp-auth --version` (`MCP_AUTH_GIT_COMMIT`).

use std::{env, error::Error, path::PathBuf, process::Command};

fn main() -> Result<(), Box<dyn Error>> {
    git_commit();
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    // Enum fields print as their names, not numbers, in the CLI's JSON.
    let enum_fields = [
        ("ApiKey.status", "record_status"),
        ("SessionInfo.status", "record_status"),
        ("WhoAmIResponse.kind", "caller_kind"),
        ("VerifyTokenResponse.reason", "token_reason"),
        ("VerifyTokenResponse.token_kind", "token_kind"),
    ];
    // Messages that carry a password: no derived `Debug` (lib.rs writes
    // one that hides it), and the password never serialized.
    let with_password = [
        ".mcp_auth.v1.CreateUserRequest",
        ".mcp_auth.v1.SetPasswordRequest",
    ];
    let mut builder = tonic_prost_build::configure()
        // A request that does not decode is INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::grpc::codec::StrictCodec")
        // The CLI prints responses with `--json`.
        .message_attribute(".mcp_auth.v1", "#[derive(serde::Serialize)]")
        .enum_attribute(
            ".mcp_auth.v1.Revocation.target",
            "#[derive(serde::Serialize)]",
        )
        .skip_debug(with_password);
    for message in with_password {
        builder =
            builder.field_attribute(format!("{message}.password"), "#[serde(skip_serializing)]");
    }
    for (field, serializer) in enum_fields {
        builder = builder.field_attribute(
            format!(".mcp_auth.v1.{field}"),
            format!(r#"#[serde(serialize_with = "crate::pb::json::{serializer}")]"#),
        );
    }
    builder
        .file_descriptor_set_path(out_dir.join("mcp_auth_descriptor.bin"))
        .compile_with_config(config, &["proto/mcp_auth/v1/mcp_auth.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}

/// Sets `MCP_AUTH_GIT_COMMIT` for the crate: the variable itself when the
/// builder sets it (a container build without `.git`), else the commit
/// `git` names as HEAD, else `unknown`. Builds again when HEAD moves.
fn git_commit() {
    println!("cargo:rerun-if-env-changed=MCP_AUTH_GIT_COMMIT");
    let commit = match env::var("MCP_AUTH_GIT_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => {
            // The files whose change means another commit: HEAD, the
            // branch it names and packed refs (paths right in worktrees).
            for path in ["HEAD", "packed-refs"] {
                if let Some(file) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={file}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(file) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={file}");
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    println!("cargo:rustc-env=MCP_AUTH_GIT_COMMIT={commit}");
}

/// One line `git` prints, or `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!line.is_empty()).then_some(line)
}
