//go:build tools

// Package tools keeps helm.sh/helm/v3 in this wrapper module's requirements, so the helm CLI
// that lints and renders deploy/helm/vault-injector is built from a pinned version:
//
//	cd test/tools/helm && GOFLAGS=-mod=mod go build -o "$out/bin/helm" helm.sh/helm/v3/cmd/helm
//
// README.md gives the ldflags that set helm's version and default Kubernetes version.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
