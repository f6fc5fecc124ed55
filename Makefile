# vault-injector — see README.md. Tools (Kubernetes, containerd, Vault, consul-template) are cached
# outside the clone under $(CACHE)/tools, keyed by version.
SHELL := /bin/bash
CACHE ?= $(or $(VAULT_INJECTOR_CACHE),$(HOME)/.cache/vault-injector)
export VAULT_INJECTOR_CACHE := $(CACHE)
VERSION ?= 0.1.0
IMAGE ?= ghcr.io/vault-injector/vault-injector:$(VERSION)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO ?= go

.PHONY: all build tools image test unit e2e bench fuzz demo golden clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vault-injector ./cmd/vault-injector

tools:
	test/tools/build.sh

# The product image as an OCI tarball, written without Docker (go-containerregistry).
image: build
	$(GO) run ./hack/image --binary bin/vault-injector --tag $(IMAGE) --out bin/vault-injector-image.tar

# Unit and component tests, with the race detector (needs gcc, installed by `make tools`). Some
# start a real Vault, PostgreSQL or consul-template from the tools cache (`make tools`); a
# missing tool fails the test, it never skips it.
unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

e2e: tools build
	$(GO) test -count=1 -tags e2e -timeout 45m ./test/... -v

test: tools
	$(MAKE) unit
	$(MAKE) e2e

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./patch/ ./webhook/
	$(GO) run ./hack/loadtest
	$(GO) run ./hack/agentbench

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFromAnnotations -fuzztime $(FUZZTIME) ./agentconfig/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./agentconfig/
	$(GO) test -run '^$$' -fuzz FuzzMutate -fuzztime $(FUZZTIME) ./webhook/
	$(GO) test -run '^$$' -fuzz FuzzHandler -fuzztime $(FUZZTIME) ./webhook/
	$(GO) test -run '^$$' -fuzz FuzzRender -fuzztime $(FUZZTIME) ./agent/

golden:
	$(GO) test ./webhook/ ./inject/ -update

# The demo is the templated-nginx scenario on the real local cluster, verbose.
demo: tools build
	$(GO) test -count=1 -tags e2e -timeout 15m -run 'TestTemplatedNginx' -v ./test/e2e

clean:
	rm -rf bin
