#!/usr/bin/env bash
# Installs the real services Hallpass's tests run against, from Debian's
# packages, when they are missing. As root it runs apt-get; otherwise it names
# the packages to install and fails, because a missing backend must fail the
# test run rather than be skipped.
#
#   deploy/test-deps.sh            what `make test` needs
#   deploy/test-deps.sh --compose  what deploy/compose-test.sh needs on the host
#                                  besides Docker: curl, python3, and nsenter and
#                                  ip, which cut the partition's links inside the
#                                  containers' network namespaces
set -euo pipefail

missing=()
# ip and nsenter live in sbin, which a non-root PATH may lack.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
have_pg() { have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

if [ "${1:-}" = --compose ]; then
  have curl || missing+=(curl)
  have python3 || missing+=(python3)
  have nsenter || missing+=(util-linux)
  have ip || missing+=(iproute2)
  present="curl, python3, nsenter, ip"
else
  have redis-server || missing+=(redis-server)
  have_pg || missing+=(postgresql)
  have chromium || have chromium-browser || missing+=(chromium)
  # The loopback cluster (internal/cluster, make cluster).
  have redis-sentinel || missing+=(redis-sentinel)
  have haproxy || missing+=(haproxy)
  # promtool checks and unit-tests the alert rules in deploy/prometheus/.
  have promtool || missing+=(prometheus)
  present="redis-server, postgresql, chromium, redis-sentinel, haproxy, promtool"
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all present ($present)"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: missing Debian packages: ${missing[*]}" >&2
  echo "test-deps: install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the tests start their own on free ports.
for svc in redis-server postgresql redis-sentinel haproxy prometheus; do
  if have systemctl; then systemctl stop "$svc" >/dev/null 2>&1 || true; fi
  if have service; then service "$svc" stop >/dev/null 2>&1 || true; fi
done
echo "test-deps: installed ${missing[*]}"
