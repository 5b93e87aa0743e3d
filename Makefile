# pyro build and test entry points. See README.md.
GO      ?= go
BIN     := bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/pyrovm/pyro/internal/cliexec.Version=$(VERSION)

.PHONY: all build deps test test-short faults bench demo clean fmt vet

all: build

# Host packages (Debian 12). Idempotent; needs root.
deps:
	./scripts/install-host-deps.sh

# pyro (the CLI's fast front), pyro-full (the complete CLI it hands every other
# call to), the workspace supervisor and the guest agent side by side: each
# finds the others next to itself. All static: no ld.so or libc at each start,
# and less host memory per running workspace's supervisor.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '-s -w' -o $(BIN)/pyro-agent ./cmd/pyro-agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/pyro-supervisor ./cmd/pyro-supervisor
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pyro-full ./cmd/pyro-full
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/pyro ./cmd/pyro

# The main job on a fresh machine: install, build, run a real command in a microVM.
demo: deps build
	$(BIN)/pyro run debian:12 -- uname -r

# The whole suite: real VMs, real MCP clients. Environments are built once and cached.
test: deps build
	$(BIN)/pyro env pull debian:12 debian:12-base debian:12-build
	npm ci --prefix e2e/tsclient --no-audit --no-fund
	npm ci --prefix e2e/inspector --no-audit --no-fund
	$(GO) mod tidy -diff && cd examples && $(GO) mod tidy -diff
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	PYRO_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 60m ./...
	cd examples && $(GO) vet ./... && PYRO_AGENT_PATH=$(CURDIR)/$(BIN)/pyro-agent PYRO_BIN=$(CURDIR)/$(BIN)/pyro $(GO) test -race -count=1 ./...
	$(MAKE) faults

# The fault suite (e2e/faults, build tag faults): kills, hostile guests, full
# disks on real VMs; prints one table (fault, expected, observed, verdict).
# Run from its directory so that go test shows the table of a passing run.
faults: build
	cd e2e/faults && PYRO_BIN_DIR=$(CURDIR)/$(BIN) $(GO) vet -tags faults . && PYRO_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -tags faults -count=1 -timeout 45m

# Logic only, no VMs.
test-short:
	$(GO) test -short -race ./...

bench: build
	$(BIN)/pyro bench

clean:
	rm -rf $(BIN)
