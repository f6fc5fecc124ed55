#!/usr/bin/env bash
# Vault side of the dynamic-database example: the database secrets engine connected to
# PostgreSQL, a role that creates a short-lived user per request, a policy allowing only that,
# and a kubernetes-auth role bound to ServiceAccount example-database/app.
# Needs VAULT_ADDR, VAULT_TOKEN and the kubernetes auth method (see ../README.md). Vault must
# reach PostgreSQL at $PGHOST (default: the Service of postgres.yaml).
set -euo pipefail
ns=example-database
PGHOST=${PGHOST:-postgres.example-database.svc:5432}
PGADMIN_PASSWORD=${PGADMIN_PASSWORD:-change-me-vault-root}

vault secrets list | grep -q '^database/' || vault secrets enable database

vault write database/config/example-db \
  plugin_name=postgresql-database-plugin \
  connection_url="postgresql://{{username}}:{{password}}@$PGHOST/app?sslmode=disable" \
  username=vault password="$PGADMIN_PASSWORD" \
  allowed_roles=$ns

# {{name}}, {{password}}, {{expiration}} are filled in by Vault for every request.
vault write database/roles/$ns \
  db_name=example-db \
  creation_statements="CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{{name}}\";" \
  revocation_statements="REASSIGN OWNED BY \"{{name}}\" TO vault; DROP OWNED BY \"{{name}}\"; DROP ROLE IF EXISTS \"{{name}}\";" \
  default_ttl=1h max_ttl=24h

vault policy write $ns - <<POLICY
path "database/creds/$ns" {
  capabilities = ["read"]
}
POLICY

vault write auth/kubernetes/role/$ns \
  bound_service_account_names=app \
  bound_service_account_namespaces=$ns \
  audience=vault \
  token_policies=$ns \
  token_ttl=1h token_max_ttl=24h
