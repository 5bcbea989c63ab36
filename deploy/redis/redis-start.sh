#!/bin/sh
# Starts one of the session store's Redis servers for docker-compose.yml, in
# the role the Sentinels give it now rather than the one it had at the first
# start:
#   REDIS_SELF=redis-primary REDIS_PRIMARY_HOST=redis-primary \
#   REDIS_SENTINELS="redis-sentinel1:26379 …" sh redis-start.sh [redis-server options…]
# After a failover the Sentinels name another server as primary. A server
# that restarts as the primary it used to be is a second primary, with no
# replica, until a Sentinel notices and turns it into a replica, which Redis
# Sentinel does only after the server has been up for 8 s. Asking first, it
# follows the current primary at once. The same script starts redis-primary,
# redis-replica and redis-replica2: only REDIS_SELF differs.
# When no Sentinel answers (the first start: they start after the servers),
# REDIS_PRIMARY_HOST decides: this server is the primary if it is REDIS_SELF.
# `make cluster` starts its servers in the right role itself (internal/cluster).
set -eu

here=$(dirname "$0")
: "${REDIS_SELF:?set REDIS_SELF to this server's announced host name}"
: "${REDIS_PRIMARY_HOST:?set REDIS_PRIMARY_HOST to the primary of the first start}"
: "${REDIS_PRIMARY_PORT:=6379}"
: "${REDIS_MASTER_NAME:=hallpass}"

primary_host=$REDIS_PRIMARY_HOST
primary_port=$REDIS_PRIMARY_PORT
source="first-start default"
for s in ${REDIS_SENTINELS:-}; do
  # Two lines, host and port; nothing when the Sentinel is not up.
  answer=$(timeout 2 redis-cli -h "${s%:*}" -p "${s##*:}" --raw sentinel get-master-addr-by-name "$REDIS_MASTER_NAME" 2>/dev/null || true)
  host=$(echo "$answer" | sed -n 1p)
  port=$(echo "$answer" | sed -n 2p)
  case $port in
    '' | *[!0-9]*) continue ;;
  esac
  primary_host=$host primary_port=$port source="Sentinel $s"
  break
done

if [ "$primary_host" = "$REDIS_SELF" ]; then
  echo "redis-start: $REDIS_SELF starts as the primary ($source)"
  exec redis-server "$here/primary.conf" --replica-announce-ip "$REDIS_SELF" "$@"
fi
echo "redis-start: $REDIS_SELF starts as a replica of $primary_host:$primary_port ($source)"
exec redis-server "$here/replica.conf" --replica-announce-ip "$REDIS_SELF" --replicaof "$primary_host" "$primary_port" "$@"
