#!/usr/bin/env bash
# Vault side of the templated-nginx example. Needs VAULT_ADDR, VAULT_TOKEN, KV v2 at secret/ and
# the kubernetes auth method (see ../README.md).
set -euo pipefail
ns=example-nginx

vault kv put secret/$ns/page greeting="It works: this page was rendered from Vault" motd="secrets never touch the image"

vault policy write $ns - <<POLICY
path "secret/data/$ns/*" {
  capabilities = ["read"]
}
POLICY

vault write auth/kubernetes/role/$ns \
  bound_service_account_names=nginx \
  bound_service_account_namespaces=$ns \
  audience=vault \
  token_policies=$ns \
  token_ttl=1h token_max_ttl=24h

echo "Change the page without touching Kubernetes (visible within refresh-interval, 30 s):"
echo "  vault kv put secret/$ns/page greeting='Updated' motd='no restart needed'"
