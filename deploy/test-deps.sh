#!/usr/bin/env bash
# Installs the real services Hallpass's tests run against, from Debian's
# packages, when they are missing. As root it runs apt-get; otherwise it names
# the packages to install and fails, because a missing backend must fail the
# test run rather than be skipped.
set -euo pipefail

missing=()
have() { command -v "$1" >/dev/null 2>&1; }
have_pg() { have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }

have redis-server || missing+=(redis-server)
have_pg || missing+=(postgresql)
have chromium || have chromium-browser || missing+=(chromium)
# The loopback cluster (internal/cluster, make cluster); haproxy lives in sbin.
have redis-sentinel || missing+=(redis-sentinel)
have haproxy || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
# promtool checks and unit-tests the alert rules in deploy/prometheus/.
have promtool || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: all present (redis-server, postgresql, chromium, redis-sentinel, haproxy, promtool)"
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
