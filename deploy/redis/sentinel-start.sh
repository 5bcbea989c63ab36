#!/bin/sh
# Starts a Redis Sentinel from the sentinel.conf template next to this script,
# for docker-compose.yml and `make cluster`:
#   REDIS_PRIMARY_HOST=redis-primary REDIS_PRIMARY_PORT=6379 sh sentinel-start.sh [redis-server options…]
# Sentinel rewrites its config file, so the template is rendered into a
# writable copy, $SENTINEL_CONF (default ./sentinel.conf, in the working
# directory). A copy that already exists is kept: it holds what this Sentinel
# learnt (after a failover, which server is primary), and a restarted Sentinel
# must not forget it. Remove it (docker-compose down -v) to start afresh.
set -eu

template=$(dirname "$0")/sentinel.conf
conf=${SENTINEL_CONF:-$PWD/sentinel.conf}
: "${REDIS_PRIMARY_HOST:?set REDIS_PRIMARY_HOST to the primary's host name or address}"
: "${REDIS_PRIMARY_PORT:=6379}"

if [ -s "$conf" ]; then
  echo "sentinel-start: keeping $conf from an earlier start"
else
  echo "sentinel-start: rendering $template into $conf (primary $REDIS_PRIMARY_HOST:$REDIS_PRIMARY_PORT)"
  sed -e "s|\${REDIS_PRIMARY_HOST}|$REDIS_PRIMARY_HOST|g" \
    -e "s|\${REDIS_PRIMARY_PORT}|$REDIS_PRIMARY_PORT|g" "$template" >"$conf.tmp"
  mv "$conf.tmp" "$conf"
fi
exec redis-server "$conf" --sentinel "$@"
