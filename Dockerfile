# Hallpass's container image: the hallpass binary built from this checkout,
# on a small runtime base, as an unprivileged user, with a health check.
#
#   docker build -t hallpass .                        # golang:1.26-bookworm → debian:bookworm-slim
#   docker compose up                                 # builds it through docker-compose.yml's build:
#
# The base images are build arguments, so the same file builds where no
# registry can be reached: deploy/images/build.sh makes stand-ins from
# Debian's packages and this machine's Go toolchain (make images), and
#
#   docker build --build-arg GO_IMAGE=hallpass-go:local --build-arg RUNTIME_IMAGE=hallpass-base:local .
#
# is what `make test-compose` runs (through docker-compose.yml). Any Go 1.26
# image with the standard layout (go on the PATH) serves as GO_IMAGE; any
# image with /etc/ssl/certs or none (distroless, scratch-like) as
# RUNTIME_IMAGE: the runtime stage runs no command.
#
# Modules are downloaded inside the build through GOPROXY (pass the host's:
# --build-arg GOPROXY="$(go env GOPROXY)"); go.sum pins every one of them.
# VERSION and COMMIT name the build in `hallpass version` and in
# hallpass_build_info (make passes git describe and git rev-parse HEAD).
#
# The image works with a read-only root file system (docker run --read-only,
# compose's read_only): the server writes nothing but its database, and
# only with the embedded SQLite default: mount a volume on
# /var/lib/hallpass/data (docker run -v hallpass-data:/var/lib/hallpass/data).
ARG GO_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
ARG GOPROXY=https://proxy.golang.org,direct
ARG GOSUMDB=sum.golang.org
ARG GOFLAGS=
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOPROXY=${GOPROXY} GOSUMDB=${GOSUMDB} GOFLAGS=${GOFLAGS}
WORKDIR /src
# The module download is its own layer: it is redone only when go.mod or
# go.sum change, not for every change to the code.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
ARG COMMIT=
# Static (pure Go: SQLite is modernc.org/sqlite), no paths of this machine
# in the binary; -X sets what `hallpass version` and /metrics report.
RUN go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/hallpass/hallpass/internal/metrics.version=${VERSION} -X github.com/hallpass/hallpass/internal/metrics.commit=${COMMIT}" \
      -o /out/usr/local/bin/hallpass ./cmd/hallpass \
 && /out/usr/local/bin/hallpass version \
 && mkdir -p /out/var/lib/hallpass/data

FROM ${RUNTIME_IMAGE}
# Certificates for TLS to PostgreSQL or Redis, from the builder: the slim
# and stand-in bases carry none.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/usr/local/bin/hallpass /usr/local/bin/hallpass
# A fixed unprivileged uid (no passwd entry needed), so volumes and policies
# can name it; it owns only its working directory and the embedded default's
# ./data, which a volume mounted there inherits.
COPY --from=build --chown=10001:10001 /out/var/lib/hallpass /var/lib/hallpass
ENV HOME=/var/lib/hallpass
WORKDIR /var/lib/hallpass
USER 10001:10001
EXPOSE 8080
# /healthz: the process answers. docker-compose.yml checks /readyz instead
# (store and database), so HAProxy starts after replicas that can serve.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/hallpass", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/hallpass"]
CMD ["serve"]
