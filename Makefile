# Hallpass. `make run` serves the embedded default; `make test` installs what
# the tests need and runs them all.

GO      ?= go
BIN     := bin/hallpass
PKGS    := ./...

.PHONY: run build test test-deps bench fuzz vet fmt clean screenshots

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

## screenshots: regenerate docs/screenshots/<page>-desktop.png and <page>-phone.png with headless Chromium
screenshots: test-deps
	HALLPASS_REQUIRE_BACKENDS=1 HALLPASS_SCREENSHOTS=$(CURDIR)/docs/screenshots \
		$(GO) test -count=1 -run '^TestScreenshots$$' ./internal/browsertest/

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# --- Docker Compose: three replicas behind HAProxy, Redis with Sentinel, PostgreSQL ---

# docker-compose (1.29) when installed, else `docker compose` (v2).
COMPOSE = $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)
# The stand-in images deploy/images/build.sh builds, unless the environment names others.
STANDIN_IMAGES = REDIS_IMAGE=$${REDIS_IMAGE:-hallpass-redis:local} HAPROXY_IMAGE=$${HAPROXY_IMAGE:-hallpass-haproxy:local} \
	POSTGRES_IMAGE=$${POSTGRES_IMAGE:-hallpass-postgres:local} HALLPASS_IMAGE=$${HALLPASS_IMAGE:-hallpass-app:local}

.PHONY: images compose-up compose-down test-compose

## images: build the stand-in container images from Debian's packages (as root; no registry needed)
images:
	bash deploy/images/build.sh

## compose-up: build the images and start the cluster on http://localhost:8080 ($$HALLPASS_HTTP_PORT)
compose-up: images
	$(STANDIN_IMAGES) $(COMPOSE) up -d
	@echo "Hallpass is up on http://localhost:$${HALLPASS_HTTP_PORT:-8080}. Create the first administrator with:"
	@echo "  $(STANDIN_IMAGES) $(COMPOSE) run --rm app1 user add admin --admin"

## compose-down: stop the cluster and remove its containers (its data volumes stay; add -v by hand to drop them)
compose-down:
	$(STANDIN_IMAGES) $(COMPOSE) down

## test-compose: build the images, start the cluster as project hallpass-ci, sign in and out through HAProxy, tear down
test-compose:
	bash deploy/compose-test.sh
