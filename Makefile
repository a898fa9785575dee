# idpsync. `make` lists the targets.

GO        ?= go
PKGS      ?= ./...
FUZZTIME  ?= 30s
BENCHTIME ?= 1x
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## run the whole pipeline locally: local Postgres, embedded NATS, receiver, worker, demo source
	$(GO) run ./cmd/dev

.PHONY: test
test: ## run the test suite (needs Postgres at TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test)
	$(GO) test -race -count=1 -timeout 8m $(PKGS)

.PHONY: chaos
chaos: ## chaos suite: real binaries, kill -9 and restarts, 10 runs of every scenario (CHAOS_* knobs)
	CHAOS=long $(GO) test -race -v -count=1 -parallel $(or $(CHAOS_PARALLEL),4) -timeout 4h -run '^TestChaos$$' ./internal/chaos

.PHONY: chaos-short
chaos-short: ## one short run of every chaos scenario, as CI runs it
	CHAOS=short $(GO) test -race -v -count=1 -parallel $(or $(CHAOS_PARALLEL),9) -timeout 20m -run '^TestChaos$$' ./internal/chaos

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

.PHONY: lint
lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l cmd internal migrations); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

.PHONY: build
build: ## build the binaries into bin/
	$(GO) build -o bin/ ./cmd/...
