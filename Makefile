# idpsync. `make` lists the targets.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
# Each benchmark runs its own rounds and reports medians, so one iteration each; -p 1 keeps one
# package's benchmarks from running beside another's on the machine's two cores.
BENCHTIME ?= 1x
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# run builds cmd/dev and runs the binary: `go run` exits 1 when its program stops on a signal. In a
# terminal (the shell is in the foreground process group: "+" in ps's stat), the shell runs dev as a
# job of its own (set -m), so Ctrl-C reaches dev alone; dev stops cleanly and exits 0, and so does
# make. Without that, make would get the SIGINT too and, once dev exited, end on it (status 130).
.PHONY: run
run: ## run the whole pipeline locally: local Postgres, embedded NATS, receiver, worker, demo source
	$(GO) build -o bin/dev ./cmd/dev
	@if ps -o stat= -p $$$$ 2>/dev/null | grep -q '+'; then set -m; bin/dev; else exec bin/dev; fi

.PHONY: test
test: ## run the test suite (needs Postgres at TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

# Prism, the validating mock of the contract test, pinned in tools/prism/package-lock.json.
PRISM_DIR := tools/prism
PRISM     := $(PRISM_DIR)/node_modules/.bin/prism

.PHONY: contract
contract: $(PRISM) ## check the Clerk client against Clerk's published API spec with Prism (installs it with npm)
	IDPSYNC_CONTRACT=require $(GO) test -count=1 -timeout 5m -run '^TestContract$$' ./internal/provider/clerk

$(PRISM): $(PRISM_DIR)/package.json $(PRISM_DIR)/package-lock.json
	npm ci --prefix $(PRISM_DIR) --ignore-scripts --no-audit --no-fund
	@touch $@

.PHONY: chaos
chaos: ## chaos suite: real binaries, kill -9 and restarts, 10 runs of every scenario (CHAOS_* knobs)
	CHAOS=long $(GO) test -race -v -count=1 -parallel $(or $(CHAOS_PARALLEL),4) -timeout 4h -run '^TestChaos$$' ./internal/chaos

.PHONY: chaos-short
chaos-short: ## one short run of every chaos scenario, as CI runs it
	CHAOS=short $(GO) test -race -v -count=1 -parallel $(or $(CHAOS_PARALLEL),9) -timeout 20m -run '^TestChaos$$' ./internal/chaos

.PHONY: bench
bench: ## run the benchmarks and print the figures the README reports (BENCH_* knobs: see each benchmark)
	$(GO) test -p 1 -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz test of the repository (parsers, verifiers, inputs from the network) for FUZZTIME each
	@for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l cmd internal migrations); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

# promtool, built from the Go module proxy at the Prometheus version deploy/monitoring/go.mod
# requires, without the service-discovery plugins it does not need here (remove_all_sd: half the
# code to compile). Cached under .cache/, one directory per version.
PROMETHEUS_VERSION := v0.316.0
PROMTOOL           := .cache/promtool-$(PROMETHEUS_VERSION)/promtool
MONITORING         := deploy/monitoring

.PHONY: monitoring-check
monitoring-check: $(PROMTOOL) ## check the Prometheus rules (promtool check, unit tests) and the Grafana dashboard's PromQL
	$(PROMTOOL) check rules --lint=all --lint-fatal $(MONITORING)/idpsync.rules.yml
	$(PROMTOOL) test rules $(MONITORING)/*.test.yml
	@out=$$(gofmt -l $(MONITORING)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	cd $(MONITORING) && $(GO) vet ./... && PROMETHEUS_VERSION=$(PROMETHEUS_VERSION) $(GO) test -count=1 ./...

$(PROMTOOL):
	GOBIN=$(CURDIR)/$(@D) $(GO) install -tags remove_all_sd github.com/prometheus/prometheus/cmd/promtool@$(PROMETHEUS_VERSION)

.PHONY: build
build: ## build the binaries into bin/
	$(GO) build -o bin/ ./cmd/...
