#!/usr/bin/env bash
# Vault side of the job example. Needs VAULT_ADDR, VAULT_TOKEN, KV v2 at secret/ and the
# kubernetes auth method (see ../README.md).
set -euo pipefail
ns=example-job

vault kv put secret/$ns/migrate url=https://target.example.com token=t-5678

vault policy write $ns - <<POLICY
path "secret/data/$ns/*" {
  capabilities = ["read"]
}
POLICY

vault write auth/kubernetes/role/$ns \
  bound_service_account_names=migrate \
  bound_service_account_namespaces=$ns \
  audience=vault \
  token_policies=$ns \
  token_ttl=15m token_max_ttl=1h
