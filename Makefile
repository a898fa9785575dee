# idpsync. `make` lists the targets.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1x
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## run the whole pipeline locally: local Postgres, embedded NATS, receiver, worker, demo source
	$(GO) run ./cmd/dev

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

.PHONY: bench
bench: ## run the benchmarks and print the figures the README reports
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m $(PKGS)

.PHONY: fuzz
fuzz: ## fuzz every parser that faces the internet for FUZZTIME each
	$(GO) test -run '^$$' -fuzz '^FuzzParseClerk$$' -fuzztime $(FUZZTIME) ./internal/events
	$(GO) test -run '^$$' -fuzz '^FuzzParseZitadel$$' -fuzztime $(FUZZTIME) ./internal/events
	$(GO) test -run '^$$' -fuzz '^FuzzParseAuthPI$$' -fuzztime $(FUZZTIME) ./internal/events
	$(GO) test -run '^$$' -fuzz '^FuzzScanAgreesWithEncodingJSON$$' -fuzztime $(FUZZTIME) ./internal/events
	$(GO) test -run '^$$' -fuzz '^FuzzVerifySvix$$' -fuzztime $(FUZZTIME) ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzVerifyZitadel$$' -fuzztime $(FUZZTIME) ./internal/webhook
	$(GO) test -run '^$$' -fuzz '^FuzzSSFManagementAPI$$' -fuzztime $(FUZZTIME) ./internal/handlers

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
