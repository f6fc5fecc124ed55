#!/usr/bin/env bash
# Vault side of the deployment example: a KV secret, a read-only policy, and a kubernetes-auth
# role bound to ServiceAccount example-deployment/app.
# Needs: VAULT_ADDR and VAULT_TOKEN (an admin token), KV v2 at secret/, and the kubernetes auth
# method enabled and configured (see ../README.md, "Vault prerequisites").
set -euo pipefail
ns=example-deployment

vault kv put secret/$ns/config api_key=ak-1234 db_password=s3cr3t

vault policy write $ns - <<POLICY
# KV v2: reads go to secret/data/<path>
path "secret/data/$ns/*" {
  capabilities = ["read"]
}
POLICY

# audience must match the webhook's --token-audience (chart: webhook.tokenAudience, "vault").
vault write auth/kubernetes/role/$ns \
  bound_service_account_names=app \
  bound_service_account_namespaces=$ns \
  audience=vault \
  token_policies=$ns \
  token_ttl=1h token_max_ttl=24h
