# vpblu build. Every tool a target needs is installed by the target itself:
# Go tools at pinned versions into $(TOOLS), Debian packages by hack/deps.sh.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := build

CACHE ?= $(HOME)/.cache/vpblu
TOOLS := $(CACHE)/tools
export PATH := $(TOOLS):$(PATH)
# Builds outside the clone share one Go build cache (CI clones fresh).
export GOFLAGS := -buildvcs=false

CONTROLLER_GEN_VERSION := v0.23.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
STATICCHECK_VERSION := v0.8.2

CONTROLLER_GEN := $(TOOLS)/controller-gen-$(CONTROLLER_GEN_VERSION)
PROTOC_GEN_GO := $(TOOLS)/protoc-gen-go
PROTOC_GEN_GO_GRPC := $(TOOLS)/protoc-gen-go-grpc
STATICCHECK := $(TOOLS)/staticcheck-$(STATICCHECK_VERSION)

BINARIES := vpblu-controller vpblu-agent vpblu-sim kubectl-vpblu meshtop
# Test binaries and the API server need root for the data plane; tests that
# need privilege say so when they cannot run.
GO_TEST_FLAGS ?= -count=1
TEST_TIMEOUT ?= 60m

.PHONY: build
build: ## Build the binaries into bin/.
	@mkdir -p bin
	CGO_ENABLED=0 go build -trimpath -o bin/ $(addprefix ./cmd/,$(BINARIES))

.PHONY: generate
generate: generate-api generate-proto generate-bpf ## Regenerate all committed generated code.

.PHONY: generate-api
generate-api: $(CONTROLLER_GEN)
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./core/api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./core/api/... output:crd:artifacts:config=deploy/crds
	rm -rf deploy/helm/vpblu/crds && cp -R deploy/crds deploy/helm/vpblu/crds

.PHONY: generate-proto
generate-proto: $(PROTOC_GEN_GO) $(PROTOC_GEN_GO_GRPC)
	hack/deps.sh generate
	protoc --plugin=protoc-gen-go=$(PROTOC_GEN_GO) --plugin=protoc-gen-go-grpc=$(PROTOC_GEN_GO_GRPC) \
		-I core/meshpb --go_out=core/meshpb --go_opt=paths=source_relative \
		--go-grpc_out=core/meshpb --go-grpc_opt=paths=source_relative core/meshpb/mesh.proto

.PHONY: generate-bpf
generate-bpf:
	hack/deps.sh generate
	go generate ./bpf/...

.PHONY: verify-generated
verify-generated: generate ## Regenerate and fail if anything differs from what is committed.
	@if [ -n "$$(git status --porcelain -- core deploy/crds deploy/helm/vpblu/crds bpf)" ]; then \
		git status --porcelain -- core deploy/crds deploy/helm/vpblu/crds bpf; git diff --stat -- core deploy/crds deploy/helm/vpblu/crds bpf; \
		echo "generated code is stale: run make generate and commit"; exit 1; fi

.PHONY: test-assets
test-assets: ## Build (once, cached) the real kube-apiserver, etcd and kubectl tests run against.
	@hack/test-assets.sh

.PHONY: deps
deps:
	@hack/deps.sh etcd net vm

# The whole-cluster suites (the simulator's, the VM's) run one at a time
# after the rest: on a 2-core machine, two of them side by side would
# measure each other's load instead of vpblu.
CLUSTER_PKGS := ./sim/ ./cmd/vpblu-sim/ ./vm/

.PHONY: test
test: deps verify-generated lint ## Everything CI runs: generated code, lint, all tests (root for the data plane).
	assets=$$(hack/test-assets.sh) && \
	KUBEBUILDER_ASSETS=$$assets go test $(GO_TEST_FLAGS) -timeout $(TEST_TIMEOUT) \
		$$(go list ./... | grep -v -E '/(sim|vm|cmd/vpblu-sim)$$') && \
	KUBEBUILDER_ASSETS=$$assets go test $(GO_TEST_FLAGS) -p 1 -timeout $(TEST_TIMEOUT) $(CLUSTER_PKGS)

.PHONY: sim
sim: deps build ## The main job: a simulated 3-node mesh (SPEC §17), up until Ctrl-C (root).
	KUBEBUILDER_ASSETS=$$(hack/test-assets.sh) VPBLU_BIN_DIR=$(CURDIR)/bin bin/vpblu-sim up $(SIM_ARGS)

.PHONY: sim-down
sim-down: build ## Stop a running simulator and remove everything it made.
	bin/vpblu-sim down $(SIM_ARGS)

.PHONY: vm-e2e
vm-e2e: deps ## The whole acceptance suite in QEMU guests with kernel WireGuard, once per kernel (6.1, 6.12).
	KUBEBUILDER_ASSETS=$$(hack/test-assets.sh) VPBLU_VM_E2E=$${VPBLU_VM_E2E:-all} \
		go test -count=1 -timeout 170m -v -run 'TestAcceptanceSuiteInGuestWithKernelWireGuard' ./vm/

.PHONY: test-unit
test-unit: ## Only the tests that need neither root nor an API server.
	VPBLU_UNPRIVILEGED=1 go test $(GO_TEST_FLAGS) -short ./core/...

.PHONY: bench
bench: deps ## Benchmarks that print the ratios of SPEC §16, measured in one run.
	KUBEBUILDER_ASSETS=$$(hack/test-assets.sh) go test -run '^$$' -bench . -benchtime 1x -count=1 ./... | grep -E '^(desired|bpf|ctrl|sim):|^(ok|FAIL|---)'

.PHONY: lint
lint: $(STATICCHECK) ## gofmt, go vet and staticcheck.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	$(STATICCHECK) ./...

.PHONY: bpf-verify
bpf-verify: ## Load every BPF program through the running kernel's verifier (root).
	go test -count=1 -run 'TestVerifier' -v ./bpf/

$(CONTROLLER_GEN):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_GEN_VERSION)
	mv $(TOOLS)/controller-gen $@

$(PROTOC_GEN_GO): $(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/.protoc-gen-go-$(PROTOC_GEN_GO_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	touch $@

$(PROTOC_GEN_GO_GRPC): $(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/.protoc-gen-go-grpc-$(PROTOC_GEN_GO_GRPC_VERSION):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	touch $@

$(STATICCHECK):
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS) go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(TOOLS)/staticcheck $@

.PHONY: images
images: ## Build the controller and agent images into bin/images (OCI layout + docker-archive tarball), without Docker.
	go run ./tools/images --out bin/images

.PHONY: kind-e2e
kind-e2e: ## Install the chart on a kind cluster with Flannel and smoke-check the mesh (needs a running Docker engine).
	hack/kind-e2e.sh

.PHONY: clean
clean:
	rm -rf bin
