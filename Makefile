# vault-injector — see README.md. Tools (Kubernetes, containerd, Vault, consul-template) are cached
# outside the clone under $(CACHE)/tools, keyed by version.
SHELL := /bin/bash
CACHE ?= $(or $(VAULT_INJECTOR_CACHE),$(HOME)/.cache/vault-injector)
export VAULT_INJECTOR_CACHE := $(CACHE)
VERSION ?= 0.1.0
IMAGE ?= ghcr.io/vault-injector/vault-injector:$(VERSION)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO ?= go
HELM ?= $(CACHE)/tools/helm-v3.22.0/bin/helm
# The Kubernetes release of the tools and the test cluster (`make e2e KUBERNETES_VERSION=1.30.14`;
# each minor has its wrapper module in test/tools/k8s/v1.<minor>). `make test` runs the e2e suite
# on the newest supported minor (the default) and on the oldest.
KUBERNETES_VERSION ?= 1.37.2
KUBERNETES_OLDEST ?= 1.30.14
export KUBERNETES_VERSION
# E2E_RUN narrows `make e2e` to the scenarios whose names match (go test -run); empty runs all.
# OLDEST_E2E_RUN does so for the oldest minor in `make test`: empty (all), since its build, not
# its scenarios, is what costs (README, "Measured"). The scenarios whose behaviour depends on the
# release, for a shorter run: $(VERSION_SCENARIOS).
E2E_RUN ?=
VERSION_SCENARIOS := TestClusterRunsRequestedVersion|TestEnvVariablesFromVault|TestEnvRestartOnChange|TestOneLeasePerPod|TestJobCompletes|TestDeletionOrder|TestWebhookDownSparesUnannotatedPods|TestDeployManifestsServerSideDryRun|TestHelmInstallRunsTheWebhookInAPod
OLDEST_E2E_RUN ?=
IMAGE_PLATFORMS := linux/amd64 linux/arm64
RELEASE_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64
RELEASE_DIR ?= bin/release
# platform_bin: linux/arm64 -> bin/linux-arm64/vault-injector (see the pattern rule below).
platform_bin = bin/$(subst /,-,$(1))/vault-injector

.PHONY: all build tools image release test unit e2e scale bench fuzz demo golden clean FORCE

all: build

# The CLI, and beside it the binaries the image runs: the webhook alone (the CLI built with the
# tag webhookonly, which the Deployment runs) and the agent's (what injected containers run:
# cmd/vault-injector-agent). Neither links the other faces' libraries.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vault-injector ./cmd/vault-injector
	CGO_ENABLED=0 $(GO) build -trimpath -tags webhookonly -ldflags '$(LDFLAGS)' -o bin/vault-injector-webhook ./cmd/vault-injector
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vault-injector-agent ./cmd/vault-injector-agent

tools:
	test/tools/build.sh

# Static binaries for one platform, cross-compiled: bin/linux-arm64/vault-injector and, for the
# image, bin/linux-arm64/vault-injector-agent and -webhook beside it. Always handed to go build
# (FORCE), whose cache makes an unchanged rebuild take a second.
bin/%/vault-injector: FORCE
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/vault-injector
bin/%/vault-injector-webhook: FORCE
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
		$(GO) build -trimpath -tags webhookonly -ldflags '$(LDFLAGS)' -o $@ ./cmd/vault-injector
bin/%/vault-injector-agent: FORCE
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/vault-injector-agent

# The product image for linux/amd64 and linux/arm64 (an image index), written without Docker
# (go-containerregistry): an OCI image layout, and the same as one tar file that
# `ctr -n k8s.io images import` loads (unpacking the host's platform).
image: $(foreach p,$(IMAGE_PLATFORMS),$(call platform_bin,$(p)) $(call platform_bin,$(p))-agent $(call platform_bin,$(p))-webhook)
	$(GO) run ./hack/image --tag $(IMAGE) --layout bin/vault-injector-image --archive bin/vault-injector-image.tar \
		$(foreach p,$(IMAGE_PLATFORMS),--platform $(p)=$(call platform_bin,$(p)))

# What a release needs, without a registry, in $(RELEASE_DIR): CLI binaries for
# $(RELEASE_PLATFORMS), the image (OCI layout and its tar), the packaged chart, SHA256SUMS;
# then the artifacts are checked (hack/release/release_test.go, build tag release: platforms
# and CPUs, helm lint + template of the package, checksums). Only helm is needed from the tools.
release: $(foreach p,$(RELEASE_PLATFORMS),$(call platform_bin,$(p))) $(foreach p,$(IMAGE_PLATFORMS),$(call platform_bin,$(p))-agent $(call platform_bin,$(p))-webhook)
	test/tools/build.sh helm
	$(GO) run ./hack/release --version $(VERSION) --tag $(IMAGE) --out $(RELEASE_DIR) --helm $(HELM) \
		--chart deploy/helm/vault-injector $(foreach p,$(RELEASE_PLATFORMS),--binary $(p)=$(call platform_bin,$(p)))
	$(GO) test -count=1 -tags release ./hack/release -run TestRelease -args \
		-release-dir $(abspath $(RELEASE_DIR)) -version $(VERSION) -tag $(IMAGE) -helm $(HELM)

# Unit and component tests, with the race detector (needs gcc, installed by `make tools`). Some
# start a real Vault, PostgreSQL or consul-template from the tools cache (`make tools`); a
# missing tool fails the test, it never skips it.
unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd test/tools/envfilecheck && $(GO) test -count=1 ./...

e2e: tools build
	$(GO) test -count=1 -tags e2e -timeout 45m $(if $(E2E_RUN),-run '$(E2E_RUN)') ./test/... -v

# A rollout of 300 injected pods through the real API server, two chart replicas rotating
# their certificate, figures from the API server's metrics (test/scale; about 2 minutes).
scale: tools build
	$(GO) test -count=1 -tags scale -timeout 20m ./test/scale -v

# unit, e2e, scale, then e2e on the oldest minor, whose Kubernetes builds in the background
# meanwhile (test/tools/test.sh).
test: tools
	MAKE='$(MAKE)' OLDEST='$(KUBERNETES_OLDEST)' OLDEST_E2E_RUN='$(OLDEST_E2E_RUN)' test/tools/test.sh

bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./patch/ ./webhook/
	$(GO) run ./hack/loadtest
	$(GO) run ./hack/agentbench

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzFromAnnotations -fuzztime $(FUZZTIME) ./agentconfig/
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./agentconfig/
	$(GO) test -run '^$$' -fuzz FuzzTranslateVaultAnnotations -fuzztime $(FUZZTIME) ./agentconfig/
	cd test/tools/envfilecheck && $(GO) test -run '^$$' -fuzz FuzzKubeletReadsWhatWeWrite -fuzztime $(FUZZTIME) .
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
