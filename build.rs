//! Compiles the protobuf contract under `proto/` with a vendored `protoc`,
//! so a fresh machine needs nothing but cargo, and emits a descriptor set
//! for gRPC reflection.

use std::{env, error::Error, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
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
