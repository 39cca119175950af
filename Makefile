SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUF := go tool -modfile=tools.mod buf

.PHONY: help run test generate web test-e2e test-storm lint verify bench

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the server with its own private Postgres in ./.pods
	go run ./cmd/podsd

test: ## run every test with the race detector (needs the Postgres binaries)
	go test -race -count=1 -timeout 20m ./...

generate: web/node_modules ## regenerate code from schema/ (Go into rpc/gen, TypeScript into web/src/gen)
	$(BUF) generate

# protoc-gen-es and esbuild are pinned npm devDependencies of web/.
web/node_modules: web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund
	@touch $@

web: generate ## type-check, unit-test and bundle the web client into web/dist (embedded in podsd)
	cd web && npm run --silent typecheck && npm run --silent test && npm run --silent build

test-e2e: web ## browser tests: two users chat through a podsd restart (needs /usr/bin/chromium)
	cd web && npm run --silent e2e

test-storm: ## 10,000 clients resubscribe at once with cursors: all served, nothing lost or duplicated (podsbench storm)
	go run ./cmd/podsbench --scenario storm >/dev/null

lint: ## buf lint, gofmt and go vet
	$(BUF) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	go vet ./...

verify: lint web ## fail if generated code or the web bundle is stale, or lint fails
	@test -z "$$(git status --porcelain -- rpc/gen web/src/gen web/dist)" || { git status --short -- rpc/gen web/src/gen web/dist; echo 'generated code or web/dist is stale: run make web and commit'; exit 1; }

# Flags for every podsbench run of make bench, e.g. '--change-source wal'.
PODSBENCH_FLAGS ?=

bench: ## Go benchmarks, then podsbench seed, mid, high and pgbench, each on a fresh private server, and a summary
	go test -run '^$$' -bench . -benchmem ./...
	@results=$$(mktemp); trap 'rm -f "$$results"' EXIT; \
	for s in seed mid high pgbench; do go run ./cmd/podsbench --scenario $$s $(PODSBENCH_FLAGS) >>"$$results"; done; \
	echo; go run ./cmd/podsbench --summary "$$results"
