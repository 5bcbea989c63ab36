#!/usr/bin/env bash
# Builds the stand-in container images docker-compose.yml runs when no registry
# can be reached, from Debian bookworm's own packages:
#
#   hallpass-redis:local     redis-server + redis-sentinel (Redis 7.0)
#   hallpass-haproxy:local   haproxy (2.6)
#   hallpass-postgres:local  postgresql-15, with an entrypoint that initialises
#                            the data directory like the official image's basics
#   hallpass-go:local        the Dockerfile's builder (for golang:1.26-bookworm):
#                            this machine's Go toolchain (go env GOROOT) at
#                            /usr/local/go + ca-certificates
#   hallpass-base:local      the Dockerfile's runtime base (for
#                            debian:bookworm-slim): the minimal root itself
#
# The app image itself is not made here: docker-compose.yml builds it from the
# Dockerfile (`build:`) with GO_IMAGE=hallpass-go:local and
# RUNTIME_IMAGE=hallpass-base:local, which make compose-up and make
# test-compose pass; or by hand:
#
#   docker build --build-arg GO_IMAGE=hallpass-go:local --build-arg RUNTIME_IMAGE=hallpass-base:local \
#     --build-arg GOPROXY="$(go env GOPROXY)" -t hallpass-app:local .
#
# A minimal bookworm root is debootstrapped once into a cache directory and
# reused; each image is a copy of it with its packages installed in a chroot,
# trimmed (no docs, no apt lists) and turned into an image with `docker import`.
# Every image carries a label with the hash of its inputs (this script, its
# files under deploy/images/, its package list, the base root and, for the Go
# image, the toolchain's version), and an image whose inputs did not change is
# not rebuilt.
#
# Usage: deploy/images/build.sh [--force] [redis|haproxy|postgres|go|base ...]
#
#   HALLPASS_IMAGE_CACHE   cache directory (default /var/cache/hallpass-images)
#   HALLPASS_IMAGE_TAG     tag of the images (default local)
#   DEBIAN_MIRROR          default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR default http://deb.debian.org/debian-security
#   HALLPASS_CA_BUNDLE     the certificate authorities the Go image trusts
#                          (default /etc/ssl/certs/ca-certificates.crt: this
#                          machine's, so module downloads work where it works)
#
# Needs root (debootstrap, chroot, mount), docker and, for the Go image, go.
# Security updates to the packages do not change the inputs: rebuild with
# --force to pick them up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${HALLPASS_IMAGE_CACHE:-/var/cache/hallpass-images}
tag=${HALLPASS_IMAGE_TAG:-local}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
ca_bundle=${HALLPASS_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
label=org.hallpass.inputs
all_images=(redis haproxy postgres go base)

started=$SECONDS
say() { printf 'images: [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

force=0
wanted=()
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    redis | haproxy | postgres | go | base) wanted+=("$arg") ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (want --force or any of: ${all_images[*]})" ;;
  esac
done
[ ${#wanted[@]} -gt 0 ] || wanted=("${all_images[@]}")

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap, chroot and mount need it (sudo $0)"
command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the docker engine does not answer (docker info)"
if [[ " ${wanted[*]} " == *" go "* ]]; then command -v go >/dev/null || die "go is needed: the Go image carries this machine's toolchain"; fi
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

mkdir -p "$cache/debs/partial" "$cache/work" "$cache/logs"
# One build at a time per cache: the base root and the .deb cache are shared.
exec 9>"$cache/lock"
if ! flock -n 9; then
  say "another build holds $cache/lock; waiting"
  flock 9
fi

# Mounts made inside a work root, undone on any exit.
mounts=()
unmount_all() {
  local i
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
  done
  mounts=()
}
trap unmount_all EXIT

# --- the base root, made once -------------------------------------------------

base=$cache/base-$suite
make_base() {
  local tmp=$base.tmp log=$cache/logs/base.log
  rm -rf "$tmp"
  say "debootstrap --variant=minbase $suite from $mirror into $base (once; log $log)"
  if ! debootstrap --variant=minbase --components=main "$suite" "$tmp" "$mirror" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "debootstrap failed; see $log"
  fi
  # Packages installed later leave out documentation, manuals and
  # translations (copyright files stay): the images are for running services.
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/90hallpass-slim" <<'EOF'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
EOF
  cat >"$tmp/etc/apt/apt.conf.d/90hallpass" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
  rm -f "$tmp/etc/apt/sources.list"
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  trim_root "$tmp"
  date -u +%Y-%m-%dT%H:%M:%SZ >"$tmp/.hallpass-base"
  mv "$tmp" "$base"
}

# trim_root removes what a service image never reads.
trim_root() {
  local root=$1
  find "$root/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete 2>/dev/null || true
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/* \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
  # apt's archives directory must exist with its partial/ subdirectory.
  mkdir -p "$root/var/cache/apt/archives/partial"
}

if [ ! -s "$base/.hallpass-base" ]; then
  make_base
else
  say "reusing base root $base (made $(cat "$base/.hallpass-base"))"
fi

# --- one image ----------------------------------------------------------------

# in_root runs a command in the work root's chroot.
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

# start_root copies the base into a fresh work root and prepares the chroot
# for apt-get: /proc, DNS, the shared .deb cache, and no service starts.
start_root() {
  root=$cache/work/$1
  rm -rf "$root"
  cp -a "$base" "$root"
  rm -f "$root/.hallpass-base"
  mount -t proc proc "$root/proc"
  mounts+=("$root/proc")
  mount --bind "$cache/debs" "$root/var/cache/apt/archives"
  mounts+=("$root/var/cache/apt/archives")
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"
}

# install_packages runs apt-get in the work root; its output goes to the log.
install_packages() {
  local log=$cache/logs/$name.log
  say "$name: apt-get install $* (log $log)"
  if ! { in_root apt-get -q update && in_root apt-get install -y -q "$@"; } >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "$name: apt-get failed; see $log"
  fi
}

# finish_root undoes start_root's preparations and trims the root.
finish_root() {
  unmount_all
  rm -f "$root/usr/sbin/policy-rc.d"
  : >"$root/etc/resolv.conf"
  trim_root "$root"
}

# import_root turns the work root into image $1 with the given --change
# instructions, and removes the image it replaces.
import_root() {
  local image=$1 old new size
  shift
  old=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  say "$name: docker import -> $image"
  new=$(tar --numeric-owner --xattrs -C "$root" \
    --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -cf - . |
    docker import --message "hallpass stand-in image, deploy/images/build.sh" \
      --change "LABEL $label=$hash" "$@" - "$image")
  rm -rf "$root"
  if [ -n "$old" ] && [ "$old" != "$new" ]; then
    docker image rm "$old" >/dev/null 2>&1 || true
  fi
  size=$(docker image inspect -f '{{.Size}}' "$image")
  say "$name: built $image ($((size / 1000000)) MB)"
}

# inputs_hash hashes what an image is made of; $@ are extra strings.
inputs_hash() {
  {
    sha256sum "$here/build.sh"
    if [ -d "$here/$name" ]; then find "$here/$name" -type f -print0 | sort -z | xargs -0r sha256sum | sed "s|$here/||"; fi
    cat "$base/.hallpass-base"
    printf '%s\n' "$@"
  } | sha256sum | cut -c1-16
}

# up_to_date says whether $1 already carries the current inputs hash.
up_to_date() {
  [ "$force" -eq 0 ] && [ "$(docker image inspect -f "{{ index .Config.Labels \"$label\" }}" "$1" 2>/dev/null)" = "$hash" ]
}

build_redis() {
  local image=hallpass-redis:$tag packages=(redis-server redis-sentinel)
  hash=$(inputs_hash "${packages[@]}")
  if up_to_date "$image"; then say "$name: $image is up to date ($hash)"; return; fi
  start_root "$name"
  install_packages "${packages[@]}"
  # Like the official image: data and Sentinel's rewritable config in /data,
  # owned by the redis user the package created.
  mkdir -p "$root/data"
  in_root chown redis:redis /data
  finish_root
  import_root "$image" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /data' \
    --change 'VOLUME /data' \
    --change 'USER redis' \
    --change 'EXPOSE 6379 26379' \
    --change 'CMD ["redis-server"]'
}

build_haproxy() {
  local image=hallpass-haproxy:$tag packages=(haproxy)
  hash=$(inputs_hash "${packages[@]}")
  if up_to_date "$image"; then say "$name: $image is up to date ($hash)"; return; fi
  start_root "$name"
  install_packages "${packages[@]}"
  # The official image reads /usr/local/etc/haproxy/haproxy.cfg (mounted).
  # `docker import` cannot set STOPSIGNAL (SIGUSR1 in the official image, a
  # soft stop): docker-compose.yml sets stop_signal.
  mkdir -p "$root/usr/local/etc/haproxy"
  finish_root
  import_root "$image" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'WORKDIR /var/lib/haproxy' \
    --change 'USER haproxy' \
    --change 'EXPOSE 8080' \
    --change 'CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
}

build_postgres() {
  local image=hallpass-postgres:$tag packages=(postgresql-15)
  hash=$(inputs_hash "${packages[@]}")
  if up_to_date "$image"; then say "$name: $image is up to date ($hash)"; return; fi
  start_root "$name"
  # The entrypoint makes the cluster in the volume; the package must not make
  # its own under /var/lib/postgresql/15/main.
  mkdir -p "$root/etc/postgresql-common"
  echo 'create_main_cluster = false' >"$root/etc/postgresql-common/createcluster.conf"
  install_packages "${packages[@]}"
  # JIT compilation needs LLVM and Z3 (over 130 MB); the entrypoint sets jit = off
  # and PostgreSQL runs without JIT when its provider is missing.
  rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root"/usr/lib/postgresql/15/lib/bitcode \
    "$root"/usr/lib/x86_64-linux-gnu/libLLVM-14.so* "$root"/usr/lib/x86_64-linux-gnu/libz3.so*
  # `docker import` cannot set STOPSIGNAL (SIGINT, a fast shutdown, in the
  # official image): docker-compose.yml sets stop_signal.
  install -m 755 "$here/postgres/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
  mkdir -p "$root/var/lib/postgresql/data" "$root/var/run/postgresql"
  in_root chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
  chmod 700 "$root/var/lib/postgresql/data"
  chmod 2775 "$root/var/run/postgresql"
  finish_root
  import_root "$image" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PGDATA=/var/lib/postgresql/data' \
    --change 'VOLUME /var/lib/postgresql/data' \
    --change 'EXPOSE 5432' \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["postgres"]'
}

build_go() {
  local image=hallpass-go:$tag packages=(ca-certificates) goroot goversion cas=$ca_bundle
  goroot=$(go env GOROOT)
  goversion=$(go env GOVERSION)
  [[ $goversion == go1.26* ]] || die "$name: the Dockerfile wants Go 1.26; this machine has $goversion"
  [ -s "$cas" ] || cas=
  hash=$(inputs_hash "${packages[@]}" "$goversion" "$(go env GOARCH)" "$(sha256sum <"$goroot/bin/go")" \
    "${cas:+$(sha256sum <"$cas")}")
  if up_to_date "$image"; then say "$name: $image is up to date ($hash)"; return; fi
  start_root "$name"
  install_packages "${packages[@]}"
  # The build downloads modules through GOPROXY from inside the image: it
  # trusts the certificate authorities this machine trusts, so it works
  # behind the same TLS-inspecting proxy as this machine's own go command.
  if [ -n "$cas" ]; then
    say "$name: trusting this machine's certificate authorities ($cas)"
    install -m 644 "$cas" "$root/etc/ssl/certs/ca-certificates.crt"
  fi
  # Like the official golang image: the toolchain in /usr/local/go (its own
  # test suite left out), GOPATH /go, no toolchain downloads.
  say "$name: copying $goroot ($goversion) to /usr/local/go"
  mkdir -p "$root/usr/local/go" "$root/go/bin" "$root/go/src"
  tar -C "$goroot" --exclude=./test -cf - . | tar -C "$root/usr/local/go" -xf -
  finish_root
  import_root "$image" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV GOLANG_VERSION='"${goversion#go}" \
    --change 'ENV GOTOOLCHAIN=local' \
    --change 'ENV GOPATH=/go' \
    --change 'ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /go' \
    --change 'CMD ["bash"]'
}

build_base() {
  local image=hallpass-base:$tag
  hash=$(inputs_hash)
  if up_to_date "$image"; then say "$name: $image is up to date ($hash)"; return; fi
  # debian:bookworm-slim's counterpart: the trimmed minimal root, unchanged.
  root=$cache/work/$name
  rm -rf "$root"
  cp -a "$base" "$root"
  rm -f "$root/.hallpass-base"
  trim_root "$root"
  import_root "$image" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["bash"]'
}

for name in "${wanted[@]}"; do
  "build_$name"
done
unmount_all

say "done in $((SECONDS - started)) s:"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}\t{{.ID}}' |
  grep -E "^hallpass-(redis|haproxy|postgres|go|base):$tag[[:space:]]" | sed 's/^/  /' || true
cat <<EOF
images: docker-compose.yml runs them, and builds the app on the Go and base images, when these are set
(make compose-up and test-compose set them):
  export REDIS_IMAGE=hallpass-redis:$tag HAPROXY_IMAGE=hallpass-haproxy:$tag POSTGRES_IMAGE=hallpass-postgres:$tag \\
    HALLPASS_GO_IMAGE=hallpass-go:$tag HALLPASS_RUNTIME_IMAGE=hallpass-base:$tag HALLPASS_IMAGE=hallpass-app:$tag
EOF
