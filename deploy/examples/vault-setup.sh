#!/usr/bin/env bash
# Vault's kubernetes auth method for one cluster, for a Vault that runs outside that cluster
# (docs/vault-setup.md explains every step). The e2e suite runs this very script against its
# test cluster and test Vault, so what the doc says is what is tested.
#
# It creates, in the cluster (skipped with CREATE_REVIEWER=false, e.g. when the chart's
# vaultTokenReviewer.create=true made them):
#   - ServiceAccount $REVIEWER_NAMESPACE/$REVIEWER_NAME,
#   - ClusterRoleBinding $REVIEWER_NAME to system:auth-delegator (create tokenreviews),
#   - Secret $REVIEWER_NAMESPACE/$REVIEWER_NAME of type kubernetes.io/service-account-token: a
#     token that does not expire (`kubectl create token` gives one that does, an hour by default);
# and, in Vault, enables kubernetes auth at auth/$AUTH_PATH (if missing) and configures it with
# the API server's address and CA and that reviewer token.
#
# Environment:
#   VAULT_ADDR, VAULT_TOKEN (required; VAULT_CACERT, VAULT_NAMESPACE… as the vault CLI reads them)
#   KUBECONFIG, KUBE_CONTEXT   which cluster (default: kubectl's current context)
#   REVIEWER_NAMESPACE         default vault-injector
#   REVIEWER_NAME              default vault-token-reviewer
#   CREATE_REVIEWER            default true
#   AUTH_PATH                  default kubernetes
#   KUBERNETES_HOST            the API server URL as Vault reaches it
#                              (default: the server of the kubeconfig context)
#   KUBERNETES_CA_CERT         PEM file of the CA that signed the API server's certificate
#                              (default: the kubeconfig context's CA; if it has none, the
#                              reviewer Secret's ca.crt)
#   VAULT, KUBECTL             the binaries (default: vault, kubectl on PATH)
#   WAIT_SECONDS               how long to wait for the token controller (default 60)
set -euo pipefail

: "${VAULT_ADDR:?set VAULT_ADDR to the Vault address}"
: "${VAULT_TOKEN:?set VAULT_TOKEN to a token that may configure auth methods}"
export VAULT_ADDR VAULT_TOKEN
ns=${REVIEWER_NAMESPACE:-vault-injector}
name=${REVIEWER_NAME:-vault-token-reviewer}
create=${CREATE_REVIEWER:-true}
auth_path=${AUTH_PATH:-kubernetes}
auth_path=${auth_path#auth/}
auth_path=${auth_path%/}
vault=${VAULT:-vault}
wait_seconds=${WAIT_SECONDS:-60}

kubectl=("${KUBECTL:-kubectl}")
if [[ -n ${KUBE_CONTEXT:-} ]]; then
  kubectl+=(--context "$KUBE_CONTEXT")
fi

# The token and CA go to Vault as @files, never as arguments (visible in ps) or on stdout.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ $create == true ]]; then
  "${kubectl[@]}" create namespace "$ns" --dry-run=client -o yaml | "${kubectl[@]}" apply -f - >/dev/null
  "${kubectl[@]}" apply -f - <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: $name
  namespace: $ns
# Vault uses its token from outside the cluster; no pod runs as this account.
automountServiceAccountToken: false
---
# system:auth-delegator allows create on tokenreviews and subjectaccessreviews: what Vault
# needs to ask the API server whether a pod's token is valid, and nothing more.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: $name
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
  - kind: ServiceAccount
    name: $name
    namespace: $ns
---
# The token controller fills this Secret with a token for the ServiceAccount that does not
# expire; it stays valid until the Secret (or the ServiceAccount) is deleted.
apiVersion: v1
kind: Secret
metadata:
  name: $name
  namespace: $ns
  annotations:
    kubernetes.io/service-account.name: $name
type: kubernetes.io/service-account-token
EOF
fi

# The token controller (kube-controller-manager) fills the Secret asynchronously.
deadline=$((SECONDS + wait_seconds))
until token=$("${kubectl[@]}" -n "$ns" get secret "$name" -o jsonpath='{.data.token}' 2>/dev/null) && [[ -n $token ]]; do
  if ((SECONDS >= deadline)); then
    echo "vault-setup: Secret $ns/$name has no token after ${wait_seconds}s: is it of type kubernetes.io/service-account-token, annotated with kubernetes.io/service-account.name=$name, and does that ServiceAccount exist?" >&2
    exit 1
  fi
  sleep 1
done
base64 -d <<<"$token" >"$tmp/reviewer.jwt"

# Asking needs the right to impersonate; without it, say so and go on.
can=$("${kubectl[@]}" auth can-i create tokenreviews.authentication.k8s.io --as="system:serviceaccount:$ns:$name" 2>&1 || true)
case $can in
yes) ;;
no*)
  echo "vault-setup: system:serviceaccount:$ns:$name may not create tokenreviews: bind it to the ClusterRole system:auth-delegator" >&2
  exit 1
  ;;
*) echo "vault-setup: could not check the reviewer's RBAC (${can%%$'\n'*}); going on" >&2 ;;
esac

host=${KUBERNETES_HOST:-$("${kubectl[@]}" config view --minify -o jsonpath='{.clusters[0].cluster.server}')}
if [[ -z $host ]]; then
  echo "vault-setup: no API server address: set KUBERNETES_HOST" >&2
  exit 1
fi
if [[ -n ${KUBERNETES_CA_CERT:-} ]]; then
  cp "$KUBERNETES_CA_CERT" "$tmp/ca.crt"
else
  # --flatten inlines a certificate-authority file as certificate-authority-data.
  ca=$("${kubectl[@]}" config view --minify --flatten -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')
  if [[ -z $ca ]]; then
    ca=$("${kubectl[@]}" -n "$ns" get secret "$name" -o jsonpath='{.data.ca\.crt}')
  fi
  base64 -d <<<"$ca" >"$tmp/ca.crt"
fi
if ! grep -q 'BEGIN CERTIFICATE' "$tmp/ca.crt"; then
  echo "vault-setup: no PEM CA certificate for $host: set KUBERNETES_CA_CERT" >&2
  exit 1
fi

# Captured first: grep -q would stop reading early and pipefail would count vault's SIGPIPE.
mounts=$("$vault" auth list -format=json)
if ! grep -q "\"$auth_path/\"" <<<"$mounts"; then
  "$vault" auth enable -path="$auth_path" kubernetes
fi
# disable_local_ca_jwt: a Vault that runs in a pod of another cluster must not use its own
# pod's token and CA against this one.
"$vault" write "auth/$auth_path/config" \
  kubernetes_host="$host" \
  kubernetes_ca_cert=@"$tmp/ca.crt" \
  token_reviewer_jwt=@"$tmp/reviewer.jwt" \
  disable_local_ca_jwt=true
echo "vault-setup: auth/$auth_path reviews tokens at $host as system:serviceaccount:$ns:$name"
