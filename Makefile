# Cairn: build, boot and test images.
#   make run           build images/minimal.yaml for qemu-x86_64, provision it as minimal-vm and boot it (BOARD=qemu-aarch64 for arm64)
#   make test          install what is needed and run every test CI runs
#   make test-full     the above plus the long matrix (all boards, fuzzing)
#   make bench         measure the figures in docs/figures.md
GO      ?= go
SPEC    ?= images/minimal.yaml
BOARD   ?= qemu-x86_64
OUT     ?= out
CACHE   ?= .cache
NAME    := $(basename $(notdir $(SPEC)))
ARCH    := $(if $(or $(findstring aarch64,$(BOARD)),$(findstring arm64,$(BOARD))),arm64,amd64)
CAIRN   := $(OUT)/bin/cairn
BINFLAGS := -trimpath -buildvcs=false -ldflags "-s -w"
export CAIRN_CACHE := $(abspath $(CACHE))/cairn

.PHONY: all deps binaries runtime runtime-amd64 addons kube kube-amd64 inputs kube-inputs kube-inputs-amd64 crane tools image images run test test-full bench fuzz clean

all: image

deps:
	@bash builder/scripts/deps.sh

# Our binaries: the cairn CLI for this machine; cairn-init, cairn-agent and
# cairn-agent-cri (the agent with containerd's CRI, for images that run
# Kubernetes) for each target.
binaries:
	$(GO) build -o $(CAIRN) ./builder/cmd/cairn
	for arch in amd64 arm64; do \
	  for cmd in cairn-init cairn-agent; do \
	    CGO_ENABLED=0 GOARCH=$$arch $(GO) build $(BINFLAGS) -o $(OUT)/bin/linux-$$arch/$$cmd ./agent/cmd/$$cmd || exit 1; \
	  done; \
	  CGO_ENABLED=0 GOARCH=$$arch $(GO) build $(BINFLAGS) -tags cri -o $(OUT)/bin/linux-$$arch/cairn-agent-cri ./agent/cmd/cairn-agent || exit 1; \
	done

# containerd, its runc shim and runc for both arches (pinned in agent/runtime/*/go.mod).
runtime:
	@bash agent/runtime/build.sh $(OUT)/bin

# The runtime for this machine's tests only: make test boots no arm64 node
# with services or Kubernetes, and runc, the shim and CoreDNS for arm64
# cost minutes from empty caches.
runtime-amd64:
	@bash agent/runtime/build.sh $(OUT)/bin amd64

# Cluster add-ons for both arches: CoreDNS (pinned in agent/addons/coredns/go.mod) and cairn-pause.
addons:
	@bash agent/addons/build.sh $(OUT)/bin

# cairn-kube, the single-process Kubernetes, for both arches (pinned in agent/kube/go.mod).
kube:
	@bash agent/kube/build.sh $(OUT)/bin

# cairn-kube for this machine's tests only (make test boots x86_64 nodes).
kube-amd64:
	@bash agent/kube/build.sh $(OUT)/bin amd64

# Debian's kernel, systemd-boot and nft (with its libraries) wrapped as OCI
# images in $(CACHE)/oci.
inputs: deps binaries
	@bash builder/scripts/debian-inputs.sh $(CAIRN) $(CACHE)

# The cluster's images the boards' kubernetes.images name (cairn-pause,
# CoreDNS), packed into $(CACHE)/oci. Cold, CoreDNS takes minutes per arch;
# after that both steps only check that nothing changed.
kube-inputs: binaries addons
	@bash agent/addons/images.sh $(OUT)/bin $(CACHE)/oci

# The same for x86_64 only (make test's Kubernetes nodes).
kube-inputs-amd64: binaries
	@bash agent/addons/build.sh $(OUT)/bin amd64
	@bash agent/addons/images.sh $(OUT)/bin $(CACHE)/oci amd64

# Real clients, pinned, built from the module proxy into $(TOOLS): crane
# (go-containerregistry at go.mod's version), which make test's upgrade
# tests read artifacts with, and cosign2 and cosign3 (cosign v2 and v3),
# which the signature interop test (builder/signature) runs in make
# test-full: cold, the two cosigns take ~15 minutes to build here. A tool
# already built at its pinned version is kept.
TOOLS           := $(abspath $(OUT))/bin/tools
COSIGN2_VERSION := v2.6.5
COSIGN3_VERSION := v3.1.3
CRANE_VERSION    = $(shell $(GO) list -m -f '{{.Version}}' github.com/google/go-containerregistry)
install_tool = set -e; \
	if $(GO) version -m $(TOOLS)/$(1) 2>/dev/null | grep -q "^[[:space:]]*mod[[:space:]]*$(firstword $(subst /cmd/, ,$(2)))[[:space:]]*$(3)\b"; then exit 0; fi; \
	echo "tools: building $(1) ($(2)@$(3))"; \
	GOBIN=$(TOOLS)/.build $(GO) install $(2)@$(3); \
	mv $(TOOLS)/.build/$(notdir $(2)) $(TOOLS)/$(1); rmdir $(TOOLS)/.build 2>/dev/null || true
crane:
	@$(call install_tool,crane,github.com/google/go-containerregistry/cmd/crane,$(CRANE_VERSION))
tools: crane
	@$(call install_tool,cosign2,github.com/sigstore/cosign/v2/cmd/cosign,$(COSIGN2_VERSION))
	@$(call install_tool,cosign3,github.com/sigstore/cosign/v3/cmd/cosign,$(COSIGN3_VERSION))

# A spec with a kubernetes section also needs the container runtime,
# cairn-kube and the cluster's images.
SPEC_NEEDS := $(if $(shell grep -qs '^kubernetes:' $(SPEC) && echo y),runtime kube kube-inputs)

image: inputs $(SPEC_NEEDS)
	$(CAIRN) build -f $(SPEC) --board $(BOARD) -o $(OUT)

images: inputs $(SPEC_NEEDS)
	$(CAIRN) build -f $(SPEC) --board qemu-x86_64 -o $(OUT)
	$(CAIRN) build -f $(SPEC) --board qemu-aarch64 -o $(OUT)

# make run's VM is provisioned as NAME-vm: cairn node --config out/NAME-vm.node.yaml --server 127.0.0.1:7443 status
run: image
	$(CAIRN) provision -f $(SPEC) --name $(NAME)-vm --replace $(OUT)/$(NAME)-$(BOARD).img
	$(GO) run ./qemu-tests/cmd/cairn-vm -arch $(ARCH) -image $(OUT)/$(NAME)-$(BOARD).img

TEST_ENV = CAIRN_TEST_INPUTS=$(abspath $(CACHE))/oci \
           CAIRN_TEST_BIN=$(abspath $(OUT))/bin \
           CAIRN_TEST_RUNTIME_BIN=$(abspath $(OUT))/bin/linux-amd64 \
           CAIRN_TEST_KERNEL_TREE=$(abspath $(CACHE))/debian/linux-amd64 \
           CAIRN_TEST_KERNEL_AMD64=$(abspath $(CACHE))/debian/linux-amd64/boot/vmlinuz \
           CAIRN_TEST_KERNEL_ARM64=$(abspath $(CACHE))/debian/linux-arm64/boot/vmlinuz \
           CAIRN_TEST_KUBE_BIN=$(abspath $(OUT))/bin/linux-amd64/cairn-kube \
           CAIRN_TEST_TOOLS=$(TOOLS)

test: inputs runtime-amd64 kube-inputs-amd64 kube-amd64 crane
	$(GO) vet ./...
	cd agent/kube && $(GO) test ./config ./args ./datastore ./memtrim
	$(TEST_ENV) $(GO) test -timeout 60m ./...

test-full: inputs runtime kube-inputs kube tools
	$(GO) vet ./...
	cd agent/kube && $(GO) vet ./... && $(GO) test ./...
	$(TEST_ENV) CAIRN_TEST_FULL=1 $(GO) test -timeout 180m ./...
	$(MAKE) fuzz FUZZTIME=60s

# Each fuzz target for FUZZTIME (go test -fuzz takes one target at a time).
FUZZTIME ?= 10s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

bench: inputs runtime kube-inputs kube
	$(GO) run ./qemu-tests/cmd/cairn-bench -runtime $(OUT)/bin
	$(TEST_ENV) $(GO) test -run '^$$' -bench BenchmarkPXEBoot -benchtime 3x ./qemu-tests/

clean:
	rm -rf $(OUT)
