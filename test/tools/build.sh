#!/usr/bin/env bash
# Builds or installs the tools the e2e cluster and the agent's differential test need, into
# ${VAULT_INJECTOR_CACHE:-$HOME/.cache/vault-injector}/tools/<name>-<version>/, outside the clone,
# so every checkout reuses them. A tool whose stamp file exists is skipped: a second run is a no-op.
# Usage: test/tools/build.sh [tool...]   (tools: debs k8s k8s-scheduler containerd vault consul-template helm)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VAULT_INJECTOR_CACHE:-$HOME/.cache/vault-injector}
tools=$cache/tools
mkdir -p "$tools"

K8S_VERSION=v1.37.2
CONTAINERD_VERSION=v2.4.2
VAULT_VERSION=v1.19.5
CONSUL_TEMPLATE_VERSION=v0.41.1
HELM_VERSION=v3.22.0
DEBS="etcd-server runc containernetworking-plugins busybox-static iproute2 postgresql gcc libc6-dev"

say() { printf '[tools %s] %s\n' "$(date -u +%T)" "$*"; }

# done_or_build NAME DIR FUNC: runs FUNC into DIR unless DIR/.done exists; builds into a
# temporary directory and renames it so an interrupted build never looks finished.
done_or_build() {
	local name=$1 dir=$2 fn=$3 start
	if [ -f "$dir/.done" ]; then say "$name: cached in $dir"; return; fi
	say "$name: building into $dir (cold: $4)"
	start=$(date +%s)
	rm -rf "$dir.tmp"; mkdir -p "$dir.tmp/bin"
	"$fn" "$dir.tmp"
	date -u +%FT%TZ > "$dir.tmp/.done"
	rm -rf "$dir"; mv "$dir.tmp" "$dir"
	say "$name: done in $(( $(date +%s) - start ))s"
}

debs() {
	local missing="" p
	for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
	if [ -z "$missing" ]; then say "debian packages: present"; return; fi
	say "debian packages: installing$missing (no service is started)"
	local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
	# policy-rc.d exiting 101 forbids package scripts from starting daemons: the harness starts
	# its own etcd/postgres with their own state directories.
	if [ ! -x /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
		$sudo chmod +x /usr/sbin/policy-rc.d
	fi
	$sudo apt-get update -q
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
}

build_k8s() {
	local out=$1 minor ld p b
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	ld="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	for b in kubelet kube-apiserver kube-controller-manager; do
		say "  $b"
		(cd "$here/k8s" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out/bin/$b" "k8s.io/kubernetes/cmd/$b")
	done
}

# The scheduler is its own cache entry so caches built before it was added stay valid.
build_k8s_scheduler() {
	local out=$1 minor ld p
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	ld="-s -w"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
	done
	(cd "$here/k8s" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$out/bin/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler)
}

build_containerd() {
	local out=$1 c
	for c in containerd containerd-shim-runc-v2 ctr; do
		say "  $c"
		GOBIN=$out/bin CGO_ENABLED=0 go install -trimpath -tags "no_btrfs no_devmapper no_zfs" \
			-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
			"github.com/containerd/containerd/v2/cmd/$c@$CONTAINERD_VERSION"
	done
}

build_vault() {
	(cd "$here/vault" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$1/bin/vault" github.com/hashicorp/vault)
}

build_consul_template() {
	GOBIN=$1/bin CGO_ENABLED=0 go install -trimpath -ldflags "-s -w" "github.com/hashicorp/consul-template@$CONSUL_TEMPLATE_VERSION"
}

# Helm renders deploy/helm/vault-injector for the e2e suite (server-side dry-run against the test
# API server). Built from its own module (test/tools/helm) so helm's dependencies stay out of the
# main module; the ldflags are those of helm's Makefile: without them helm assumes Kubernetes
# v1.20 when rendering.
build_helm() {
	local minor ld
	minor=$(echo "$K8S_VERSION" | cut -d. -f2)
	ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
	ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
	(cd "$here/helm" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$1/bin/helm" helm.sh/helm/v3/cmd/helm)
}

want=${*:-debs k8s k8s-scheduler containerd vault consul-template helm}
for t in $want; do
	case $t in
	debs) debs ;;
	k8s) done_or_build "kubernetes $K8S_VERSION" "$tools/kubernetes-$K8S_VERSION" build_k8s "~7 min" ;;
	k8s-scheduler) done_or_build "kube-scheduler $K8S_VERSION" "$tools/kube-scheduler-$K8S_VERSION" build_k8s_scheduler "~1 min" ;;
	containerd) done_or_build "containerd $CONTAINERD_VERSION" "$tools/containerd-$CONTAINERD_VERSION" build_containerd "~1-2 min" ;;
	vault) done_or_build "vault $VAULT_VERSION" "$tools/vault-$VAULT_VERSION" build_vault "10-15 min" ;;
	consul-template) done_or_build "consul-template $CONSUL_TEMPLATE_VERSION" "$tools/consul-template-$CONSUL_TEMPLATE_VERSION" build_consul_template "~2 min" ;;
	helm) done_or_build "helm $HELM_VERSION" "$tools/helm-$HELM_VERSION" build_helm "~3 min" ;;
	*) echo "unknown tool $t" >&2; exit 2 ;;
	esac
done
say "all tools ready under $tools"
