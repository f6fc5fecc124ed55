#!/usr/bin/env bash
# Vault's jwt auth method for one cluster's service-account tokens (docs/vault-jwt.md explains
# every step). Vault checks each pod's projected token with the cluster's signing key: no
# TokenReview, no reviewer token, no call from Vault to the API server. The e2e suite runs this
# very script against its test cluster and test Vault.
#
# Enables jwt auth at auth/$AUTH_PATH (if missing) and configures it with the cluster's issuer
# and either its service-account public key(s) (PEM) or its OIDC discovery URL. With ROLE set, it
# also writes a role for one service account: audience, subject and kubernetes.io claims bound,
# and the pod mapped into the token's metadata (so lookup-self and the audit log name the pod).
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN (required; VAULT_CACERT, VAULT_NAMESPACE… as the vault CLI reads them)
#   AUTH_PATH              default jwt
#   ISSUER                 the cluster's service-account issuer (the API server's
#                          --service-account-issuer; default: asked with
#                          kubectl get --raw /.well-known/openid-configuration)
#   SA_PUBLIC_KEY_FILE     PEM file with the public key(s) of the API server's
#                          --service-account-key-file (self-managed clusters), or
#   OIDC_DISCOVERY_URL     the issuer's discovery URL, when Vault may fetch the keys (managed
#                          clusters publish it; OIDC_DISCOVERY_CA_PEM: file of its CA, optional)
#   ROLE                   a role to write (optional), with:
#     NAMESPACE, SERVICE_ACCOUNT  the one service account it admits (required with ROLE)
#     POLICIES             comma-separated Vault policies (required with ROLE)
#     AUDIENCE             the token audience (default vault: the webhook's --token-audience)
#     TOKEN_TTL            default 1h
#   KUBECONFIG, KUBE_CONTEXT, KUBECTL  for the issuer lookup only
#   VAULT                  the vault binary (default: vault on PATH)
set -euo pipefail

: "${VAULT_ADDR:?set VAULT_ADDR to the Vault address}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a token that may configure auth methods}"
export VAULT_ADDR VAULT_TOKEN
auth_path=${AUTH_PATH:-jwt}
auth_path=${auth_path#auth/}
auth_path=${auth_path%/}
vault=${VAULT:-vault}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

issuer=${ISSUER:-}
if [[ -z $issuer ]]; then
  kubectl=("${KUBECTL:-kubectl}")
  if [[ -n ${KUBE_CONTEXT:-} ]]; then
    kubectl+=(--context "$KUBE_CONTEXT")
  fi
  discovery=$("${kubectl[@]}" get --raw /.well-known/openid-configuration)
  issuer=$(sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p' <<<"$discovery")
  if [[ -z $issuer ]]; then
    echo "vault-jwt-setup: no issuer in the cluster's /.well-known/openid-configuration: set ISSUER" >&2
    exit 1
  fi
fi

mounts=$("$vault" auth list -format=json)
if ! grep -q "\"$auth_path/\"" <<<"$mounts"; then
  "$vault" auth enable -path="$auth_path" jwt
fi
if [[ -n ${SA_PUBLIC_KEY_FILE:-} ]]; then
  if ! grep -q 'BEGIN PUBLIC KEY\|BEGIN RSA PUBLIC KEY' "$SA_PUBLIC_KEY_FILE"; then
    echo "vault-jwt-setup: $SA_PUBLIC_KEY_FILE holds no PEM public key" >&2
    exit 1
  fi
  "$vault" write "auth/$auth_path/config" bound_issuer="$issuer" jwt_validation_pubkeys=@"$SA_PUBLIC_KEY_FILE"
elif [[ -n ${OIDC_DISCOVERY_URL:-} ]]; then
  args=(oidc_discovery_url="$OIDC_DISCOVERY_URL" bound_issuer="$issuer")
  if [[ -n ${OIDC_DISCOVERY_CA_PEM:-} ]]; then
    args+=(oidc_discovery_ca_pem=@"$OIDC_DISCOVERY_CA_PEM")
  fi
  "$vault" write "auth/$auth_path/config" "${args[@]}"
else
  echo "vault-jwt-setup: set SA_PUBLIC_KEY_FILE (PEM) or OIDC_DISCOVERY_URL" >&2
  exit 1
fi
echo "vault-jwt-setup: auth/$auth_path accepts service-account tokens of issuer $issuer"

if [[ -z ${ROLE:-} ]]; then
  exit 0
fi
: "${NAMESPACE:?set NAMESPACE to the namespace of the service account}"
: "${SERVICE_ACCOUNT:?set SERVICE_ACCOUNT to the name of the service account}"
: "${POLICIES:?set POLICIES to the Vault policies of the role}"
audience=${AUDIENCE:-vault}
policies_json=$(sed 's/[[:space:]]//g; s/,/","/g; s/^/["/; s/$/"]/' <<<"$POLICIES")
# bound_claims and claim_mappings take JSON pointers into the token's claims. A projected token
# carries kubernetes.io.{namespace, serviceaccount.{name,uid}, pod.{name,uid}, node.{name,uid}}.
cat >"$tmp/role.json" <<JSON
{
  "role_type": "jwt",
  "bound_audiences": ["$audience"],
  "user_claim": "sub",
  "bound_subject": "system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT",
  "bound_claims": {
    "/kubernetes.io/namespace": "$NAMESPACE",
    "/kubernetes.io/serviceaccount/name": "$SERVICE_ACCOUNT"
  },
  "claim_mappings": {
    "/kubernetes.io/namespace": "namespace",
    "/kubernetes.io/serviceaccount/name": "service_account_name",
    "/kubernetes.io/pod/name": "pod_name",
    "/kubernetes.io/pod/uid": "pod_uid"
  },
  "token_policies": $policies_json,
  "token_ttl": "${TOKEN_TTL:-1h}"
}
JSON
"$vault" write "auth/$auth_path/role/$ROLE" - <"$tmp/role.json"
echo "vault-jwt-setup: role $ROLE admits system:serviceaccount:$NAMESPACE:$SERVICE_ACCOUNT (audience $audience)"
