# kubectl-mirrord. `make help` lists the targets.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
# Evaluated once: a commit during a long build must not give its binaries two versions
# (make dist substitutes VERSION inside LDFLAGS).
VERSION := $(VERSION)
COMMIT  := $(COMMIT)
IMAGE   ?= mirrord.local/kubectl-mirrord:dev
CLUSTERS ?= 3
GOOS    ?= $(shell go env GOOS)
GOARCH  ?= $(shell go env GOARCH)

BIN       := $(CURDIR)/bin
LDFLAGS   := -s -w -X github.com/kubectl-mirrord/kubectl-mirrord/pkg/version.Version=$(VERSION) \
             -X github.com/kubectl-mirrord/kubectl-mirrord/pkg/version.Commit=$(COMMIT)
GOBUILD   := CGO_ENABLED=0 go build -trimpath -ldflags "$(LDFLAGS)"
RIG       := $(BIN)/rig
IMAGE_TAR := $(BIN)/images/kubectl-mirrord.tar
GENERATORS := $(addprefix $(BIN)/,controller-gen client-gen deepcopy-gen informer-gen lister-gen)

.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	  /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } \
	  /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Try it

.PHONY: demo
demo: deps build image rig ## Local clusters, kubectl-mirrord installed with `kubectl mirrord install`, a sample app and one session of each kind.
	hack/demo.sh

##@ Development

.PHONY: build
build: ## Build kubectl-mirrord for this machine into bin/.
	$(GOBUILD) -o $(BIN)/kubectl-mirrord ./cmd/kubectl-mirrord

.PHONY: tools
tools: $(GENERATORS) ## Build the pinned code generators (hack/tools) into bin/.

$(GENERATORS): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && GOBIN=$(BIN) go install k8s.io/code-generator/cmd/client-gen \
	  k8s.io/code-generator/cmd/deepcopy-gen k8s.io/code-generator/cmd/informer-gen \
	  k8s.io/code-generator/cmd/lister-gen sigs.k8s.io/controller-tools/cmd/controller-gen

.PHONY: generate
generate: tools ## Regenerate deepcopy, clientset, listers, informers and CRDs from pkg/apis.
	hack/update-codegen.sh

.PHONY: verify
verify: tools lint ## Fail when generated code is stale, code is unformatted, go.mod is untidy or lint complains.
	hack/verify.sh

GOLANGCI_LINT := $(BIN)/golangci-lint

$(GOLANGCI_LINT): hack/lint/go.mod hack/lint/go.sum
	cd hack/lint && go build -o $(GOLANGCI_LINT) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint (.golangci.yaml; pinned in hack/lint).
	$(GOLANGCI_LINT) run ./...

.PHONY: fmt
fmt: ## Format the Go code.
	gofmt -w ./cmd ./pkg ./hack ./test

# The controllers' tests (pkg/controller/apitest among them) run against a real kube-apiserver
# and etcd without nodes: the rig's binaries, built once and cached.
K8S_BINARIES = MIRRORD_K8S_BINARIES="$$($(RIG) binaries | paste -sd,)"

.PHONY: unit
unit: deps rig ## Run the unit tests (the agent's need iptables and nftables); the controllers' run against a real API server without nodes, and their coverage is checked.
	$(K8S_BINARIES) go test $$(go list ./... | grep -v /pkg/controller)
	$(MAKE) --no-print-directory apitest

# A count of executions, not a duration: with a duration Go's fuzzing coordinator can fail a
# run that found nothing with "context deadline exceeded" as its time runs out on a loaded
# machine (golang/go#75804; seen here in CI). 50000 is 5-15 s a target on 2 cores.
FUZZTIME ?= 50000x
FUZZ_TARGETS := FuzzReadMessage:./pkg/protocol FuzzAccept:./pkg/protocol FuzzAcceptAgent:./pkg/protocol FuzzFilter:./pkg/httpfilter FuzzPermit:./pkg/agent FuzzStealServer:./pkg/agent/steal FuzzMirrorPackets:./pkg/agent/mirror FuzzServeStream:./pkg/controller/relayserver FuzzParse:./pkg/config

.PHONY: fuzz
fuzz: ## Run each native fuzz target for FUZZTIME (default 50000 executions; or a duration, 30s).
	@for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} ($${t#*:}) for $(FUZZTIME)"; \
	  go test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) -timeout 5m "$${t#*:}" || exit 1; \
	done

##@ Release

DIST_VERSION ?= v0.1.0-dev
DIST_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64

.PHONY: dist
dist: ## Build the krew archives for every platform and render dist/mirrord.yaml with their sha256.
	@for p in $(DIST_PLATFORMS); do \
	  echo "build $$p"; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} CGO_ENABLED=0 go build -trimpath -ldflags "$(subst $(VERSION),$(DIST_VERSION),$(LDFLAGS))" \
	    -o $(BIN)/dist/$${p%/*}_$${p#*/}/kubectl-mirrord ./cmd/kubectl-mirrord || exit 1; \
	done
	go run ./hack/dist -version $(DIST_VERSION) -bin $(BIN)/dist -out dist

# REGISTRY is where `make release` pushes the image (REGISTRY/kubectl-mirrord:DIST_VERSION);
# the canonical one is ghcr.io/kubectl-mirrord (what kustomize/base and `kubectl mirrord
# install` name). Credentials come from ~/.docker/config.json, as docker login writes them.
REGISTRY ?=

.PHONY: release
release: dist ## Push the linux/amd64+arm64 image to REGISTRY as DIST_VERSION, no Docker; write dist/SHA256SUMS and dist/IMAGE.
	@test -n "$(REGISTRY)" || { echo "make release REGISTRY=ghcr.io/kubectl-mirrord DIST_VERSION=vX.Y.Z"; exit 2; }
	go run ./hack/release -version $(DIST_VERSION) -registry $(REGISTRY) -bin $(BIN)/dist -dist dist $(RELEASE_FLAGS)

KREW_TOOLS := $(BIN)/krew $(BIN)/validate-krew-manifest

.PHONY: krew
krew: $(KREW_TOOLS) ## Build krew and its manifest validator (pinned in hack/krew) into bin/.

$(KREW_TOOLS): hack/krew/go.mod hack/krew/go.sum
	cd hack/krew && GOBIN=$(BIN) go install sigs.k8s.io/krew/cmd/krew sigs.k8s.io/krew/cmd/validate-krew-manifest

##@ Images

.PHONY: image
image: ## Build the kubectl-mirrord image as an OCI tarball (bin/images/kubectl-mirrord.tar), no Docker.
	GOOS=linux $(GOBUILD) -o $(BIN)/linux_$(GOARCH)/kubectl-mirrord ./cmd/kubectl-mirrord
	go run ./hack/image -binary $(BIN)/linux_$(GOARCH)/kubectl-mirrord -ref $(IMAGE) -o $(IMAGE_TAR)

##@ Local clusters

.PHONY: deps
deps: ## Install the Debian packages the local clusters need (containerd, runc, CNI plugins, iptables).
	hack/install-deps.sh

.PHONY: rig
rig:
	go build -o $(RIG) ./test/rig

.PHONY: clusters
clusters: deps rig ## Bring up $(CLUSTERS) real local clusters and their registry (kubeconfigs in /var/lib/mirrord-rig/kubeconfig).
	$(RIG) up -clusters $(CLUSTERS)

# push-image pushes this build's image to the rig's registry; RIG_IMAGE is the reference by
# digest that `kubectl mirrord install --image` installs.
RIG_IMAGE = $$($(RIG) push $(IMAGE_TAR) kubectl-mirrord:$(VERSION))

.PHONY: clusters-down
clusters-down: rig ## Remove the local clusters and everything they made on this machine.
	$(RIG) down

.PHONY: clusters-status
clusters-status: rig ## List the local clusters' components.
	$(RIG) status

##@ Test

.PHONY: test
test: ## Unit tests, verify, then e2e on fresh local clusters (the CI command).
	hack/test.sh

# The controllers' statements the unit and API-level tests must cover together.
CONTROLLER_COVERAGE_MIN := 70

.PHONY: apitest
apitest: rig ## The controllers' tests alone (admission, RBAC, reconciles on a real API server without nodes; seconds); checks their coverage.
	$(K8S_BINARIES) go test -count=1 -timeout 10m \
	  -coverpkg=./pkg/controller/... -coverprofile=$(BIN)/controller-cover.out ./pkg/controller/...
	@go tool cover -func=$(BIN)/controller-cover.out | awk -v min=$(CONTROLLER_COVERAGE_MIN) \
	  '/^total:/ { sub("%", "", $$NF); printf "controllers covered: %s%% of statements (at least %s%%)\n", $$NF, min; if ($$NF + 0 < min) exit 1 }'

.PHONY: bench
bench: deps build image rig ## Run every benchmark on local clusters; print one table (medians, ratios vs same-run baselines).
	hack/bench.sh

.PHONY: e2e
e2e: build image rig dist krew ## Run the e2e suite against clusters that are already up (make clusters).
	MIRRORD_E2E_IMAGE=$(RIG_IMAGE) MIRRORD_E2E_DIST=$(CURDIR)/dist MIRRORD_E2E_KREW=$(BIN)/krew MIRRORD_E2E_KREW_VALIDATOR=$(BIN)/validate-krew-manifest \
	MIRRORD_E2E_KUBECONFIGS=$$(ls /var/lib/mirrord-rig/kubeconfig/c*.yaml | paste -sd,) \
	MIRRORD_E2E_KUBECTL=/var/lib/mirrord-rig/bin/kubectl \
	MIRRORD_E2E_COLLECT_LOGS="$(RIG) logs" \
	MIRRORD_E2E_RIG=$(RIG) MIRRORD_E2E_PLUGIN=$(BIN)/kubectl-mirrord \
	go test -tags e2e -count=1 -timeout 30m -v ./test/e2e/...
