#!/usr/bin/env bash
# Issues a client certificate for a service identity.
#
#   certs/issue-client-cert.sh NAME --ca-dir DIR --out DIR [--days 30]
#                              [--trust-domain mcp-auth.local] [--force] [--json]
#
# Writes OUT/NAME.pem (certificate and CA chain) and OUT/NAME.key (mode 0600)
# and prints the serial number, SHA-256 fingerprint, identity
# (spiffe://<trust-domain>/NAME) and expiry. Refuses to overwrite files
# without --force and refuses a CA key readable by others. A thin wrapper
# over `mcp-auth cert issue`: no openssl needed.
set -euo pipefail
if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
# shellcheck source=mcp-auth-bin.sh
. "$(dirname "$0")/mcp-auth-bin.sh"
exec "${MCP_AUTH_CMD[@]}" cert issue "$@"
