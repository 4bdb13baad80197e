# Sourced by the scripts in certs/: finds the mcp-auth binary and sets
# MCP_AUTH_CMD to the command that runs it. In order: $MCP_AUTH_BIN,
# mcp-auth on PATH, a release or debug build in this repository, and last
# `cargo run --release` (which builds it first).
certs_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(dirname "$certs_dir")"
if [ -n "${MCP_AUTH_BIN:-}" ]; then
  MCP_AUTH_CMD=("$MCP_AUTH_BIN")
elif command -v mcp-auth >/dev/null 2>&1; then
  MCP_AUTH_CMD=(mcp-auth)
elif [ -x "$repo_dir/target/release/mcp-auth" ]; then
  MCP_AUTH_CMD=("$repo_dir/target/release/mcp-auth")
elif [ -x "$repo_dir/target/debug/mcp-auth" ]; then
  MCP_AUTH_CMD=("$repo_dir/target/debug/mcp-auth")
else
  MCP_AUTH_CMD=(cargo run --quiet --release --manifest-path "$repo_dir/Cargo.toml" --)
fi
