# Hallpass. `make run` serves the embedded default; `make test` installs what
# the tests need and runs them all.

GO      ?= go
BIN     := bin/hallpass
PKGS    := ./...
# The suites that start a whole loopback cluster (Redis with Sentinels, HAProxy, replicas) and stop and restart its
# servers on the ports they had: run alone, one after the other, after the rest. Run beside other packages, a port one
# of them freed for a moment was taken by another package's server, and Sentinels restarted on the old ports then
# reconfigured the other cluster's Redis (seen in CI).
CLUSTER_PKGS := ./internal/cluster/ ./internal/browsertest/

# What `hallpass version` and hallpass_build_info report: git's names for this
# checkout, set at link time (the Dockerfile gets them as build arguments).
VERSION := $(or $(HALLPASS_VERSION),$(shell git describe --tags --always --dirty 2>/dev/null),unknown)
COMMIT  := $(or $(HALLPASS_COMMIT),$(shell git rev-parse HEAD 2>/dev/null),unknown)
LDFLAGS := -X github.com/hallpass/hallpass/internal/metrics.version=$(VERSION) \
           -X github.com/hallpass/hallpass/internal/metrics.commit=$(COMMIT)

.PHONY: run build test test-deps bench fuzz vet fmt clean screenshots image

## run: build and serve the embedded default (SQLite + in-process sessions) on http://localhost:8080.
## The secret key that encrypts TOTP secrets is made once into data/secret-key (a development key: a
## deployment sets HALLPASS_SECRET_KEY itself); an HALLPASS_SECRET_KEY in the environment wins.
run: build
	@mkdir -p data && test -s data/secret-key || (umask 077 && head -c 32 /dev/urandom | base64 > data/secret-key)
	HALLPASS_SECRET_KEY="$${HALLPASS_SECRET_KEY:-$$(cat data/secret-key)}" ./$(BIN) serve

## build: compile the hallpass binary into bin/
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/hallpass

## test-deps: install the real backends the tests run against (Debian packages)
test-deps:
	bash deploy/test-deps.sh

## test: install test dependencies, then run every test with the race detector; no backend may be skipped.
## The bench module (bench/go.mod) is checked too; both modules must be tidy. The tests of deploy/ run
## promtool on the alert rules and check the Grafana dashboard against the metrics.
test: test-deps
	$(GO) mod tidy -diff
	$(GO) -C bench mod tidy -diff
	$(GO) vet $(PKGS)
	$(GO) -C bench vet ./...
	HALLPASS_REQUIRE_BACKENDS=1 $(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v -e '/internal/cluster$$' -e '/internal/browsertest$$')
	HALLPASS_REQUIRE_BACKENDS=1 $(GO) test -race -count=1 -timeout 20m -p 1 $(CLUSTER_PKGS)
	$(GO) -C bench test -race -count=1 ./...

## bench: the scale benchmarks behind docs/SESSIONS.md, then bench/cmd/benchmarks, which loads the signed-in page
## (replica with Redis, with memory, the cluster, a stateless JWT baseline) and writes docs/BENCHMARKS.md with charts
## in docs/benchmarks/ (loopback only, about 8 minutes; not part of make test). Each Go benchmark's output is kept in
## bin/bench/ for the driver, which checks that it passed.
bench: test-deps
	mkdir -p bin/bench
	$(GO) test -run '^$$' -bench 'BenchmarkRedisMemoryPerSession' -benchtime=1x ./internal/session/ 2>&1 | tee bin/bench/memory.txt
	$(GO) test -run '^$$' -bench 'BenchmarkForcedLogoutScale' -benchtime=2000x -count=3 -timeout 20m ./internal/session/ 2>&1 | tee bin/bench/logout.txt
	$(GO) test -run '^$$' -bench 'BenchmarkHashDefault' ./internal/password/ 2>&1 | tee bin/bench/hash.txt
	$(GO) test -run '^$$' -bench 'BenchmarkPrimaries' -benchtime=30000x -count=3 ./internal/session/ 2>&1 | tee bin/bench/primaries.txt
	$(GO) test -run '^$$' -bench 'BenchmarkSignOutEveryone' -benchtime=1x -timeout 20m ./internal/session/ 2>&1 | tee bin/bench/everyone.txt
	$(GO) test -run '^$$' -bench 'BenchmarkIdleEventStreamMemory' -benchtime=5000x -count=3 ./internal/web/ 2>&1 | tee bin/bench/streams.txt
	$(GO) test -run '^$$' -bench 'BenchmarkPageViewsWithManyOpenStreams' -benchtime=5000x -timeout 20m ./internal/web/ 2>&1 | tee bin/bench/manystreams.txt
	command -v haproxy >/dev/null && command -v redis-benchmark >/dev/null || { echo "bench: needs haproxy and redis-benchmark (Debian: apt-get install haproxy redis-tools)" >&2; exit 1; }
	$(GO) -C bench run ./cmd/benchmarks -repo .. -gotest-dir ../bin/bench -out ../docs/BENCHMARKS.md -charts ../docs/benchmarks

## fuzz: a short bounded run of every fuzz target (CI runs it too)
fuzz:
	bash deploy/fuzz.sh

## screenshots: regenerate docs/screenshots/<page>-desktop.png and <page>-phone.png with headless Chromium
screenshots: test-deps
	HALLPASS_REQUIRE_BACKENDS=1 HALLPASS_SCREENSHOTS=$(CURDIR)/docs/screenshots \
		$(GO) test -count=1 -run '^TestScreenshots$$' ./internal/browsertest/

vet:
	$(GO) vet $(PKGS)
	$(GO) -C bench vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# --- Docker Compose: three replicas behind HAProxy, Redis with Sentinel, PostgreSQL ---

# docker-compose (1.29) when installed, else `docker compose` (v2).
COMPOSE = $(shell command -v docker-compose >/dev/null 2>&1 && echo docker-compose || echo docker compose)
# The stand-in images deploy/images/build.sh builds (the app is built from the Dockerfile on the Go and base
# ones), unless the environment names others; the build fetches modules as this machine's go command does.
STANDIN_IMAGES = REDIS_IMAGE=$${REDIS_IMAGE:-hallpass-redis:local} HAPROXY_IMAGE=$${HAPROXY_IMAGE:-hallpass-haproxy:local} \
	POSTGRES_IMAGE=$${POSTGRES_IMAGE:-hallpass-postgres:local} HALLPASS_IMAGE=$${HALLPASS_IMAGE:-hallpass-app:local} \
	HALLPASS_GO_IMAGE=$${HALLPASS_GO_IMAGE:-hallpass-go:local} HALLPASS_RUNTIME_IMAGE=$${HALLPASS_RUNTIME_IMAGE:-hallpass-base:local}
BUILD_ENV = HALLPASS_VERSION=$(VERSION) HALLPASS_COMMIT=$(COMMIT) \
	GOPROXY="$$($(GO) env GOPROXY)" GOSUMDB="$$($(GO) env GOSUMDB)" GOFLAGS="$$($(GO) env GOFLAGS)"

.PHONY: images compose-up compose-down test-compose

## image: build the app image from the Dockerfile with its default bases (needs a registry), as $$HALLPASS_IMAGE
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) \
		--build-arg GOPROXY="$$($(GO) env GOPROXY)" -t $${HALLPASS_IMAGE:-hallpass:latest} .

## images: build the stand-in container images from Debian's packages and this machine's Go (as root; no registry needed)
images:
	bash deploy/images/build.sh

## compose-up: build the images (the app from the Dockerfile) and start the cluster on http://localhost:8080 ($$HALLPASS_HTTP_PORT)
compose-up: images
	$(STANDIN_IMAGES) $(BUILD_ENV) $(COMPOSE) up -d --build
	@echo "Hallpass is up on http://localhost:$${HALLPASS_HTTP_PORT:-8080}. Create the first administrator with:"
	@echo "  $(STANDIN_IMAGES) $(COMPOSE) run --rm app1 user add admin --admin"

## compose-down: stop the cluster and remove its containers (its data volumes stay; add -v by hand to drop them)
compose-down:
	$(STANDIN_IMAGES) $(COMPOSE) down

## test-compose: build the images, start the cluster as project hallpass-ci, sign in and out through HAProxy, kill the
## Redis primary and then cut it off with app1 (a partition) under load, check the history, tear down (as root: nsenter)
test-compose:
	HALLPASS_VERSION=$(VERSION) HALLPASS_COMMIT=$(COMMIT) bash deploy/compose-test.sh

# --- Loopback cluster: the same topology as local processes on 127.0.0.1 (internal/cluster) ---

CLUSTER_ADDR ?= 127.0.0.1:8090
CLUSTER_DB   ?= postgres
CLUSTER_DIR  ?= $(or $(XDG_RUNTIME_DIR),/tmp)/hallpass-cluster
CLUSTER_BIN  := bin/hallpass-cluster

.PHONY: cluster cluster-down soak

## cluster: start 3 replicas behind HAProxy, Redis with Sentinel and PostgreSQL ($(CLUSTER_DB)) as local processes in the background; prints the URL
cluster: build
	$(GO) build -o $(CLUSTER_BIN) ./internal/cluster/cmd/hallpass-cluster
	./$(CLUSTER_BIN) up -dir $(CLUSTER_DIR) -addr $(CLUSTER_ADDR) -db $(CLUSTER_DB) -hallpass $(BIN)

## cluster-down: stop the loopback cluster and every process it started (its logs stay in $(CLUSTER_DIR))
cluster-down:
	$(GO) build -o $(CLUSTER_BIN) ./internal/cluster/cmd/hallpass-cluster
	./$(CLUSTER_BIN) down -dir $(CLUSTER_DIR)

## soak: run the loopback cluster under mixed load with rolling restarts for $${SOAK_DURATION:-15m}; report memory,
## goroutines, open files and Redis memory over time with their slopes (deploy/soak; not part of make test or CI)
soak: build
	$(GO) run ./deploy/soak -hallpass $(BIN) -duration $${SOAK_DURATION:-15m}
