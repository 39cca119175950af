SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BUF := go tool -modfile=tools.mod buf

.PHONY: help run test generate lint verify bench

help: ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

run: ## run the server with its own private Postgres in ./.pods
	go run ./cmd/podsd

test: ## run every test with the race detector (needs the Postgres binaries)
	go test -race -count=1 -timeout 20m ./...

generate: ## regenerate code from schema/
	$(BUF) generate

lint: ## buf lint, gofmt and go vet
	$(BUF) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	go vet ./...

verify: lint generate ## fail if generated code is stale or lint fails
	@test -z "$$(git status --porcelain -- rpc/gen)" || { git status --short -- rpc/gen; echo 'generated code is stale: run make generate and commit'; exit 1; }

bench: ## run the Go benchmarks
	go test -run '^$$' -bench . -benchmem ./...
