#!/usr/bin/env bash
# Builds or installs the tools the e2e cluster and the agent's differential test need, into
# ${VAULT_INJECTOR_CACHE:-$HOME/.cache/vault-injector}/tools/<name>-<version>/, outside the clone,
# so every checkout reuses them. A tool whose stamp file exists is skipped: a second run is a no-op.
# Usage: [KUBERNETES_VERSION=1.30.14] test/tools/build.sh [tool...]
#   (tools: debs k8s k8s-scheduler containerd vault consul-template helm)
# KUBERNETES_VERSION (default 1.37.2) picks the Kubernetes release; each minor has its wrapper
# module in test/tools/k8s/v1.<minor>, and its binaries are cached by version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${VAULT_INJECTOR_CACHE:-$HOME/.cache/vault-injector}
tools=$cache/tools
mkdir -p "$tools"

# The newest supported minor; helm's render default follows it whatever KUBERNETES_VERSION says.
DEFAULT_K8S_VERSION=v1.37.2
K8S_VERSION=${KUBERNETES_VERSION:-$DEFAULT_K8S_VERSION}
K8S_VERSION=v${K8S_VERSION#v}
CONTAINERD_VERSION=v2.4.2
VAULT_VERSION=v1.19.5
# The cache key's suffix: which plugins build_vault builds in (vaulttest.Flavour).
VAULT_FLAVOUR=minimal-builtins
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

# k8s_version_check: a release version (1.30.14), and the wrapper module of its minor.
k8s_version_check() {
	if ! [[ $K8S_VERSION =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
		echo "KUBERNETES_VERSION=${KUBERNETES_VERSION:-} is not a Kubernetes release: expected MAJOR.MINOR.PATCH such as 1.37.2 or 1.30.14" >&2
		exit 2
	fi
	K8S_MINOR=${BASH_REMATCH[1]}
	K8S_MODULE=$here/k8s/v1.$K8S_MINOR
	if [ ! -f "$K8S_MODULE/go.mod" ]; then
		echo "KUBERNETES_VERSION=${K8S_VERSION#v}: no wrapper module for minor 1.$K8S_MINOR (expected $K8S_MODULE/go.mod; have: $(cd "$here/k8s" && echo v1.*))" >&2
		exit 2
	fi
}

k8s_ldflags() {
	local ld="-s -w" p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR -X $p.gitTreeState=clean"
	done
	echo "$ld"
}

# k8s_module_dir: the wrapper module of the minor, or, for another patch release of that minor,
# a copy of it re-pinned to that release (k8s.io/kubernetes and every staging module at
# v0.<minor>.<patch>): the proxy serves them, and go.sum is completed by -mod=mod.
k8s_module_dir() {
	local pinned dir m
	pinned=$(cd "$K8S_MODULE" && go list -m -f '{{.Version}}' k8s.io/kubernetes)
	if [ "$pinned" = "$K8S_VERSION" ]; then echo "$K8S_MODULE"; return; fi
	dir=$1/module
	mkdir -p "$dir"
	cp "$K8S_MODULE/go.mod" "$K8S_MODULE/go.sum" "$K8S_MODULE/tools.go" "$dir/"
	(cd "$dir" && go mod edit -require="k8s.io/kubernetes@$K8S_VERSION" &&
		for m in $(awk '$2 == "=>" && $1 ~ /^k8s\.io\// {print $1}' go.mod); do
			go mod edit -replace="$m=$m@v0.${K8S_VERSION#v1.}"
		done)
	echo "$dir"
}

# All four commands in one go build: the packages they share compile once and the links run in
# parallel (a cold build per command recompiled nothing but linked one at a time).
build_k8s() {
	local out=$1 dir
	dir=$(k8s_module_dir "$out")
	say "  kubelet kube-apiserver kube-controller-manager kube-scheduler (module $dir)"
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/bin/" \
		k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler)
	rm -rf "$out/module"
}

# Caches built before the scheduler joined build_k8s keep it in its own entry; a kubernetes
# entry that has it needs nothing more. The harness looks in both places.
build_k8s_scheduler() {
	local out=$1 dir
	dir=$(k8s_module_dir "$out")
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$(k8s_ldflags)" -o "$out/bin/kube-scheduler" k8s.io/kubernetes/cmd/kube-scheduler)
	rm -rf "$out/module"
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

# Vault's minimal server (build tag `minimal`: kv, pki, transit, jwt…) leaves out the cloud SDKs
# of its other plugins, which were most of a 16-minute cold build. It also leaves out the two
# the tests use and a released Vault has built in: kubernetes auth and the PostgreSQL database
# plugin. Served as external plugins they cost a gRPC hop and a plugin process per login, which
# no production Vault pays (it was ~4 ms of the agent's start-up bench). So the server is built
# from a copy of Vault's module whose minimal registry also holds those two
# (vault/overlay/registry_min.go): go build -overlay refuses files of the module cache, a
# replace of the module by a local copy does not. The copy (~25 MB: no ui, website,
# changelog) is removed after the build.
build_vault() {
	local src mod
	# go list names the module's directory only once it is in the module cache.
	src=$(cd "$here/vault" && GOFLAGS=-mod=mod go mod download github.com/hashicorp/vault &&
		GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/hashicorp/vault)
	[ -d "$src" ] || { echo "build_vault: no directory for github.com/hashicorp/vault ($src)" >&2; return 1; }
	mod=$1/build
	rm -rf "$mod" && mkdir -p "$mod/vault" "$mod/wrapper" "$1/bin"
	tar -C "$src" --exclude=./ui --exclude=./website --exclude=./changelog -cf - . | tar -C "$mod/vault" -xf -
	chmod -R u+w "$mod/vault"
	cp "$here/vault/overlay/registry_min.go" "$mod/vault/helper/builtinplugins/registry_min.go"
	cp "$here/vault/go.mod" "$here/vault/go.sum" "$here/vault/tools.go" "$mod/wrapper/"
	(cd "$mod/wrapper" && go mod edit -replace "github.com/hashicorp/vault=$mod/vault" &&
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -tags minimal -ldflags "-s -w" -o "$1/bin/vault" github.com/hashicorp/vault)
	rm -rf "$mod"
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
	minor=$(echo "$DEFAULT_K8S_VERSION" | cut -d. -f2)
	ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
	ld="$ld -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
	ld="$ld -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor"
	(cd "$here/helm" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$1/bin/helm" helm.sh/helm/v3/cmd/helm)
}

want=${*:-debs k8s k8s-scheduler containerd vault consul-template helm}
for t in $want; do
	case $t in
	debs) debs ;;
	k8s) k8s_version_check; done_or_build "kubernetes $K8S_VERSION" "$tools/kubernetes-$K8S_VERSION" build_k8s "7-20 min" ;;
	k8s-scheduler)
		k8s_version_check
		if [ -x "$tools/kubernetes-$K8S_VERSION/bin/kube-scheduler" ]; then
			say "kube-scheduler $K8S_VERSION: cached in $tools/kubernetes-$K8S_VERSION"
		else
			done_or_build "kube-scheduler $K8S_VERSION" "$tools/kube-scheduler-$K8S_VERSION" build_k8s_scheduler "~1 min"
		fi ;;
	containerd) done_or_build "containerd $CONTAINERD_VERSION" "$tools/containerd-$CONTAINERD_VERSION" build_containerd "~1-2 min" ;;
	vault) done_or_build "vault $VAULT_VERSION (minimal + kubernetes auth + postgresql, built in)" "$tools/vault-$VAULT_VERSION-$VAULT_FLAVOUR" build_vault "5-8 min" ;;
	consul-template) done_or_build "consul-template $CONSUL_TEMPLATE_VERSION" "$tools/consul-template-$CONSUL_TEMPLATE_VERSION" build_consul_template "~2 min" ;;
	helm) done_or_build "helm $HELM_VERSION" "$tools/helm-$HELM_VERSION" build_helm "~3 min" ;;
	*) echo "unknown tool $t" >&2; exit 2 ;;
	esac
done
say "all tools ready under $tools"
