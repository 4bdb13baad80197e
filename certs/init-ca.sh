#!/usr/bin/env bash
# Creates a CA for mcp-auth client certificates.
#
#   certs/init-ca.sh --out DIR [--name "Acme internal CA"] [--days N] [--force]
#
# Writes DIR/ca.pem (give it to servers as client_ca) and DIR/ca.key
# (mode 0600; keep it offline). A thin wrapper over `mcp-auth cert init-ca`:
# no openssl needed.
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=mcp-auth-bin.sh
. "$(dirname "$0")/mcp-auth-bin.sh"
exec "${MCP_AUTH_CMD[@]}" cert init-ca "$@"
