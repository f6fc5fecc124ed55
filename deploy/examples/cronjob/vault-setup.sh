#!/usr/bin/env bash
# Vault side of the cronjob example. Needs VAULT_ADDR, VAULT_TOKEN, KV v2 at secret/ and the
# kubernetes auth method (see ../README.md).
set -euo pipefail
ns=example-cronjob

vault kv put secret/$ns/smtp host=smtp.example.com user=reports password=m41l

vault policy write $ns - <<POLICY
path "secret/data/$ns/*" {
  capabilities = ["read"]
}
POLICY

# A short token: the job only needs it while the init container renders.
vault write auth/kubernetes/role/$ns \
  bound_service_account_names=report \
  bound_service_account_namespaces=$ns \
  audience=vault \
  token_policies=$ns \
  token_ttl=5m token_max_ttl=15m
