//! Generates the gRPC client code of mcp-auth's contract, from the same
//! `proto/` the server is built from (a vendored `protoc`, so a fresh
//! machine needs nothing but cargo). Clients only: the SDK never serves
//! mcp-auth's services.

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(
            config,
            &["../../proto/mcp_auth/v1/mcp_auth.proto"],
            &["../../proto"],
        )?;
    println!("cargo:rerun-if-changed=../../proto");
    Ok(())
}
