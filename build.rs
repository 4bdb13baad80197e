//! Compiles the protobuf contract under `proto/` with a vendored `protoc`,
//! so a fresh machine needs nothing but cargo, and emits a descriptor set
//! for gRPC reflection.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // The CLI prints responses with `--json`.
        .message_attribute(".mcp_auth.v1", "#[derive(serde::Serialize)]")
        // Enum fields print as their names, not numbers.
        .field_attribute(
            ".mcp_auth.v1.ApiKey.status",
            r#"#[serde(serialize_with = "crate::pb::json::record_status")]"#,
        )
        .field_attribute(
            ".mcp_auth.v1.SessionInfo.status",
            r#"#[serde(serialize_with = "crate::pb::json::record_status")]"#,
        )
        .field_attribute(
            ".mcp_auth.v1.WhoAmIResponse.kind",
            r#"#[serde(serialize_with = "crate::pb::json::caller_kind")]"#,
        )
        .field_attribute(
            ".mcp_auth.v1.VerifyTokenResponse.reason",
            r#"#[serde(serialize_with = "crate::pb::json::token_reason")]"#,
        )
        .file_descriptor_set_path(out_dir.join("mcp_auth_descriptor.bin"))
        .compile_with_config(config, &["proto/mcp_auth/v1/mcp_auth.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
