// Checks the agent's env-file writer against the kubelet's own parser. A module of its own, so
// the product's go.mod never requires k8s.io/kubernetes; `make unit` runs it.
module github.com/vault-injector/vault-injector/test/tools/envfilecheck

go 1.26.8

require (
	github.com/vault-injector/vault-injector v0.0.0
	k8s.io/kubernetes v1.37.2
)

replace github.com/vault-injector/vault-injector => ../../..
