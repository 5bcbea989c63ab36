# Hallpass. `make run` serves the embedded default; `make test` installs what
# the tests need and runs them all.

GO      ?= go
BIN     := bin/hallpass
PKGS    := ./...

.PHONY: run build test test-deps bench fuzz vet fmt clean

## run: build and serve the embedded default (SQLite + in-process sessions) on http://localhost:8080
run: build
	./$(BIN) serve

## build: compile the hallpass binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/hallpass

## test-deps: install the real backends the tests run against (Debian packages)
test-deps:
	bash deploy/test-deps.sh

## test: install test dependencies, then run every test with the race detector; no backend may be skipped
test: test-deps
	$(GO) vet $(PKGS)
	HALLPASS_REQUIRE_BACKENDS=1 $(GO) test -race -count=1 -timeout 20m $(PKGS)

## bench: the scale benchmarks behind docs/SESSIONS.md (loopback Redis, a few minutes; not part of make test)
bench: test-deps
	$(GO) test -run '^$$' -bench 'BenchmarkRedisMemoryPerSession' -benchtime=1x ./internal/session/
	$(GO) test -run '^$$' -bench 'BenchmarkForcedLogoutScale' -benchtime=200x -timeout 20m ./internal/session/
	$(GO) test -run '^$$' -bench 'BenchmarkHashDefault' ./internal/password/

## fuzz: a short bounded run of every fuzz target (CI runs it too)
fuzz:
	bash deploy/fuzz.sh

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
