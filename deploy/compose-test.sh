#!/usr/bin/env bash
# End-to-end check of docker-compose.yml and the Dockerfile (`make
# test-compose`): builds the stand-in images, builds the app through
# docker-compose.yml's `build:` (the Dockerfile, on the stand-in Go and runtime
# bases, modules through GOPROXY), checks the image (unprivileged, read-only
# root, its version), starts the whole cluster as project hallpass-ci, creates
# an administrator with `run --rm`, and through HAProxy signs in, loads /
# thirty times (every replica must serve it, signed in), kills a replica and
# then the Redis primary under the signed-in client (no failure, no sign-out)
# and under load (deploy/partitioncheck: no acknowledged sign-in or sign-out
# lost, promotion and refused sign-ins within bounds), cuts the Redis
# primary off the network under load and heals it (the same checks; the old
# primary must rejoin as a replica by itself), and signs out. The project is
# always torn down with its volumes, pass or fail.
#
#   HALLPASS_MAX_PROMOTION  bound on Sentinel's promotion after the primary is killed (default 5 s)
#   HALLPASS_MAX_REFUSAL  bound on refused sign-ins after the primary is killed (default 8 s)
#   HALLPASS_PARTITION_SECONDS  how long the primary stays cut off (default 12)
#   HALLPASS_CI_PROJECT   compose project name (default hallpass-ci)
#   HALLPASS_HTTP_PORT    published port (default: a free one)
#   HALLPASS_SUBNET       the project network (default: a free 172.28.N.0/24)
#   HALLPASS_SKIP_IMAGES  1: do not run deploy/images/build.sh
#   REDIS_IMAGE HAPROXY_IMAGE POSTGRES_IMAGE HALLPASS_IMAGE  default: the stand-ins
#   HALLPASS_GO_IMAGE HALLPASS_RUNTIME_IMAGE  the Dockerfile's bases (default: the stand-ins)
#   GOPROXY GOFLAGS GOSUMDB   for the build (default: this machine's `go env`)
#   HALLPASS_VERSION HALLPASS_COMMIT  name the build (default: git describe, git rev-parse HEAD)
#
# Uses docker-compose (1.29) and falls back to `docker compose` (v2).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

started=$SECONDS
say() { printf 'test-compose: [%3ds] %s\n' "$((SECONDS - started))" "$*"; }
results=()
pass() { results+=("PASS  $*"); say "PASS $*"; }
fail() {
  results+=("FAIL  $*")
  say "FAIL $*"
  exit 1
}

if command -v docker-compose >/dev/null 2>&1; then
  compose_cmd=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
else
  echo "test-compose: neither docker-compose nor docker compose is installed" >&2
  exit 1
fi

export REDIS_IMAGE=${REDIS_IMAGE:-hallpass-redis:local}
export HAPROXY_IMAGE=${HAPROXY_IMAGE:-hallpass-haproxy:local}
export POSTGRES_IMAGE=${POSTGRES_IMAGE:-hallpass-postgres:local}
export HALLPASS_IMAGE=${HALLPASS_IMAGE:-hallpass-app:local}
export HALLPASS_GO_IMAGE=${HALLPASS_GO_IMAGE:-hallpass-go:local}
export HALLPASS_RUNTIME_IMAGE=${HALLPASS_RUNTIME_IMAGE:-hallpass-base:local}
# The build downloads modules the way this machine's go command does.
if command -v go >/dev/null 2>&1; then
  export GOPROXY=${GOPROXY:-$(go env GOPROXY)} GOSUMDB=${GOSUMDB:-$(go env GOSUMDB)} GOFLAGS=${GOFLAGS:-$(go env GOFLAGS)}
fi
export HALLPASS_VERSION=${HALLPASS_VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo unknown)}
export HALLPASS_COMMIT=${HALLPASS_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
project=${HALLPASS_CI_PROJECT:-hallpass-ci}

# free_port prints a TCP port nothing listens on.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# free_subnet prints a 172.28.N.0/24 no docker network uses, so this run
# cannot clash with a cluster already up on this machine.
free_subnet() {
  local used n
  used=$(docker network inspect $(docker network ls -q) -f '{{range .IPAM.Config}}{{.Subnet}} {{end}}' 2>/dev/null || true)
  for n in $(seq 100 250); do
    if [[ " $used " != *" 172.28.$n.0/24 "* ]]; then
      echo "172.28.$n.0/24"
      return
    fi
  done
  echo "test-compose: no free 172.28.N.0/24 subnet" >&2
  return 1
}

export HALLPASS_HTTP_PORT=${HALLPASS_HTTP_PORT:-$(free_port)}
export HALLPASS_SUBNET=${HALLPASS_SUBNET:-$(free_subnet)}
# The Redis servers' fixed addresses (docker-compose.yml), inside that subnet.
net_prefix=${HALLPASS_SUBNET%.*}
export HALLPASS_REDIS_PRIMARY_ADDR=${HALLPASS_REDIS_PRIMARY_ADDR:-$net_prefix.11}
export HALLPASS_REDIS_REPLICA_ADDR=${HALLPASS_REDIS_REPLICA_ADDR:-$net_prefix.12}
compose() { "${compose_cmd[@]}" -p "$project" "$@"; }
# Containers of the project, found by the labels both compose versions set:
# plain docker commands start much faster than compose's.
containers() { docker ps -aq --filter "label=com.docker.compose.project=$project" "$@"; }
# in_service SERVICE CMD… runs CMD in the service's (first) container.
in_service() {
  local service=$1 id
  shift
  id=$(containers --filter "label=com.docker.compose.service=$service" | head -n 1)
  [ -n "$id" ] || fail "no container for service $service"
  docker exec "$id" "$@"
}
base=http://localhost:$HALLPASS_HTTP_PORT
headers=$(mktemp)
body=$(mktemp)
# deploy/partitioncheck's binary, its marks, histories and output.
check_dir=$(mktemp -d)
load_pid=

# service_container SERVICE prints the id of the service's (first) container.
service_container() { containers --filter "label=com.docker.compose.service=$1" | head -n 1; }
# sentinel_primary prints the host the first Sentinel names as primary:
# asked straight from this machine over the project network when it can
# reach it (bash's /dev/tcp, Redis's inline protocol), since a docker exec
# takes a few tenths of a second, and through docker exec otherwise.
sentinel1_ip=
sentinel_primary() {
  local reply
  if [ -n "$sentinel1_ip" ]; then
    reply=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/26379" && printf "SENTINEL get-master-addr-by-name hallpass\r\n" >&3 && head -n 3 <&3' \
      "$sentinel1_ip" 2>/dev/null | tr -d '\r' | sed -n 3p || true)
    if [ -n "$reply" ]; then
      echo "$reply"
      return
    fi
  fi
  in_service redis-sentinel1 redis-cli -p 26379 sentinel get-master-addr-by-name hallpass 2>/dev/null | tr -d '\r' | head -n 1
}
# wait_settled SECONDS waits until the session store can lose its primary
# again: both servers up, the one every Sentinel names is primary with one
# replica online, the other follows it, the Sentinels can reach quorum.
# On time out, settle_problem says what was still wrong.
settle_problem=
wait_settled() {
  local deadline=$((SECONDS + $1)) primary other info s
  while :; do
    settle_problem=
    primary=$(sentinel_primary)
    for s in redis-sentinel2 redis-sentinel3; do
      [ "$(in_service "$s" redis-cli -p 26379 sentinel get-master-addr-by-name hallpass 2>/dev/null | tr -d '\r' | head -n 1)" = "$primary" ] ||
        settle_problem="$s does not name $primary"
    done
    case $primary in
      redis-primary) other=redis-replica ;;
      redis-replica) other=redis-primary ;;
      *) settle_problem="Sentinel names the primary '$primary'" ;;
    esac
    if [ -z "$settle_problem" ]; then
      info=$(in_service "$primary" redis-cli info replication 2>/dev/null | tr -d '\r')
      [[ $info == *"role:master"* && $info == *"connected_slaves:1"* && $info == *"state=online"* ]] ||
        settle_problem="$primary: $(grep -E '^(role|connected_slaves|slave0):' <<<"$info" | tr '\n' ' ')"
    fi
    if [ -z "$settle_problem" ]; then
      info=$(in_service "$other" redis-cli info replication 2>/dev/null | tr -d '\r')
      [[ $info == *"role:slave"* && $info == *"master_host:$primary"* && $info == *"master_link_status:up"* ]] ||
        settle_problem="$other: $(grep -E '^(role|master_host|master_link_status):' <<<"$info" | tr '\n' ' ')"
    fi
    if [ -z "$settle_problem" ]; then
      in_service redis-sentinel1 redis-cli -p 26379 sentinel ckquorum hallpass 2>/dev/null | grep -q '^OK' ||
        settle_problem="no Sentinel quorum"
    fi
    [ -z "$settle_problem" ] && return 0
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
# start_load NAME [partitioncheck flags…] starts deploy/partitioncheck
# through HAProxy and waits until its accounts exist and the load runs.
start_load() {
  local name=$1
  shift
  "$check_dir/partitioncheck" -url "$base" -prefix "$name" -ready "$check_dir/$name.ready" \
    -marks "$check_dir/$name.marks" -history "$check_dir/$name.history.jsonl" "$@" >"$check_dir/$name.out" 2>&1 &
  load_pid=$!
  local deadline=$((SECONDS + 90))
  until [ -s "$check_dir/$name.ready" ]; do
    kill -0 "$load_pid" 2>/dev/null || { load_pid=; sed 's/^/    /' "$check_dir/$name.out"; fail "partitioncheck ($name) stopped before its load ran"; }
    [ $SECONDS -lt $deadline ] || fail "partitioncheck ($name) did not start its load within 90 s"
    sleep 0.2
  done
  say "load running (partitioncheck $name, pid $load_pid)"
}
# mark NAME LABEL notes the moment for NAME's summary.
mark() { echo "$(date +%s.%N) $2" >>"$check_dir/$1.marks"; }
# stop_load NAME stops the load, waits for its final checks and prints its
# summary; its status is partitioncheck's.
stop_load() {
  local rc=0
  kill -TERM "$load_pid" 2>/dev/null || true
  wait "$load_pid" || rc=$?
  load_pid=
  say "partitioncheck $1:"
  sed 's/^/    /' "$check_dir/$1.out"
  return "$rc"
}
# load_line NAME sums NAME's history up in one line for the summary.
load_line() {
  local out=$check_dir/$1.out
  printf '%s; %s; %s' "$(grep -m1 'sign-ins' "$out" | sed 's/^ *//')" \
    "$(grep -m1 'sessions at the end' "$out" | sed 's/^ *sessions at the end: //')" "$(grep -m1 'violations:' "$out" | sed 's/^ *//')"
}

summary() {
  local rc=$?
  trap - EXIT
  [ -z "$load_pid" ] || kill -TERM "$load_pid" 2>/dev/null || true
  # A partitioned container goes back on its network so that down can
  # remove the network.
  if [ -n "${partitioned:-}" ]; then docker network connect "$network" "$cut_id" >/dev/null 2>&1 || true; fi
  rm -f "$headers" "$body"
  if [ "$rc" -ne 0 ] && [ -d "$check_dir" ]; then
    keep=$(mktemp -d /tmp/compose-test-history.XXXXXX)
    cp "$check_dir"/*.jsonl "$check_dir"/*.marks "$check_dir"/*.out "$keep"/ 2>/dev/null || true
    say "partitioncheck histories kept in $keep"
  fi
  rm -rf "$check_dir"
  if [ "$rc" -ne 0 ]; then
    say "failed; state of the project and the last log lines:"
    compose ps 2>&1 || true
    compose logs --no-color --tail=25 2>&1 | tail -n 150 || true
  fi
  say "tearing down: ${compose_cmd[*]} -p $project down -v"
  compose down -v --remove-orphans >/dev/null 2>&1 || say "warning: down -v failed; run it by hand"
  echo
  echo "test-compose summary (${compose_cmd[*]}, project $project, port $HALLPASS_HTTP_PORT, subnet $HALLPASS_SUBNET):"
  printf '  %s\n' "${results[@]}"
  if [ "$rc" -eq 0 ]; then
    echo "test-compose: PASSED in $((SECONDS - started)) s"
  else
    echo "test-compose: FAILED after $((SECONDS - started)) s"
  fi
  exit "$rc"
}
trap summary EXIT
# Interrupted: exit, so the EXIT trap tears down.
trap 'exit 130' INT TERM

if [ "${HALLPASS_SKIP_IMAGES:-0}" != 1 ]; then
  say "building the stand-in images (deploy/images/build.sh)"
  bash deploy/images/build.sh
fi

say "using ${compose_cmd[*]}; images $HALLPASS_IMAGE $REDIS_IMAGE $HAPROXY_IMAGE $POSTGRES_IMAGE"
compose config -q || fail "docker-compose.yml does not validate"
pass "docker-compose.yml validates"

command -v go >/dev/null 2>&1 || fail "go is needed to build deploy/partitioncheck"
go build -o "$check_dir/partitioncheck" ./deploy/partitioncheck || fail "go build ./deploy/partitioncheck"

# The three replicas share one image: building app1's builds it.
say "building $HALLPASS_IMAGE from the Dockerfile on $HALLPASS_GO_IMAGE and $HALLPASS_RUNTIME_IMAGE (GOPROXY=${GOPROXY:-default})"
build_started=$SECONDS
build_log=$(mktemp)
if ! compose build app1 >"$build_log" 2>&1; then
  tail -n 40 "$build_log" >&2
  rm -f "$build_log"
  fail "${compose_cmd[*]} build app1 (the Dockerfile)"
fi
rm -f "$build_log"
pass "$HALLPASS_IMAGE built from the Dockerfile through compose's build: in $((SECONDS - build_started)) s"

image_user=$(docker image inspect -f '{{.Config.User}}' "$HALLPASS_IMAGE")
image_check=$(docker image inspect -f '{{if .Config.Healthcheck}}{{join .Config.Healthcheck.Test " "}}{{end}}' "$HALLPASS_IMAGE")
[ "$image_user" = 10001:10001 ] || fail "the image runs as '$image_user', want 10001:10001"
[[ $image_check == *"hallpass healthcheck"* ]] || fail "the image's health check is '$image_check', want hallpass healthcheck"
version_out=$(docker run --rm --read-only "$HALLPASS_IMAGE" version) || fail "docker run $HALLPASS_IMAGE version"
grep -qxF "hallpass $HALLPASS_VERSION" <<<"$version_out" && grep -qxF "commit   $HALLPASS_COMMIT" <<<"$version_out" ||
  fail "hallpass version printed '$version_out', want $HALLPASS_VERSION and $HALLPASS_COMMIT"
pass "the image runs as 10001:10001 with a hallpass healthcheck; version $HALLPASS_VERSION, commit ${HALLPASS_COMMIT:0:12}"

# A project left over by an interrupted run would otherwise be reused.
compose down -v --remove-orphans >/dev/null 2>&1 || true

say "starting project $project on $base (subnet $HALLPASS_SUBNET)"
up_started=$SECONDS
compose up -d || fail "up -d"

# up -d returns once every dependency was healthy and the last service
# started; wait for HAProxy's own health check too.
deadline=$((SECONDS + 180))
while :; do
  unhealthy=()
  for id in $(containers); do
    status=$(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$id")
    case $status in
      *" running healthy" | *" running none") ;;
      *) unhealthy+=("${status#/}") ;;
    esac
  done
  [ ${#unhealthy[@]} -eq 0 ] && break
  [ $SECONDS -lt $deadline ] || fail "not healthy within 180 s: ${unhealthy[*]}"
  sleep 1
done
pass "all $(containers | wc -l) containers running and healthy, $((SECONDS - up_started)) s after up"

app1=$(containers --filter label=com.docker.compose.service=app1 | head -n 1)
[ "$(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$app1")" = "true 10001:10001" ] ||
  fail "app1 is not read-only as 10001:10001: $(docker inspect -f '{{.HostConfig.ReadonlyRootfs}} {{.Config.User}}' "$app1")"
# The metrics listener is on the project network only; ask it from HAProxy's
# container (bash's /dev/tcp: no HTTP client needed).
build_info=$(in_service haproxy bash -c 'exec 3<>/dev/tcp/app1/9100 && printf "GET /metrics HTTP/1.0\r\n\r\n" >&3 && cat <&3' |
  tr -d '\r' | grep '^hallpass_build_info' || true)
[[ $build_info == *"commit=\"$HALLPASS_COMMIT\""*"version=\"$HALLPASS_VERSION\""*" 1" ]] ||
  fail "app1:9100/metrics hallpass_build_info is '$build_info'"
pass "replicas run read-only as 10001:10001; app1:9100/metrics: $build_info"

sentinel_master=$(in_service redis-sentinel1 redis-cli -p 26379 sentinel get-master-addr-by-name hallpass | tr -d '\r' | xargs)
[ "$sentinel_master" = "redis-primary 6379" ] || fail "Sentinel names the primary '$sentinel_master', want 'redis-primary 6379'"
in_service redis-sentinel2 redis-cli -p 26379 sentinel ckquorum hallpass | grep -q '^OK' ||
  fail "Sentinel quorum not reachable"
pass "Sentinels agree on the primary redis-primary:6379 and can reach quorum"

aof=$(in_service redis-primary redis-cli config get appendonly | tail -n 1 | tr -d '\r')
minrep=$(in_service redis-primary redis-cli config get min-replicas-to-write | tail -n 1 | tr -d '\r')
link=$(in_service redis-replica redis-cli info replication | tr -d '\r' | grep '^master_link_status:' || true)
[ "$aof" = yes ] && [ "$minrep" = 1 ] && [ "$link" = master_link_status:up ] ||
  fail "Redis: appendonly=$aof min-replicas-to-write=$minrep replica $link"
pass "Redis primary has AOF on and min-replicas-to-write 1; the replica follows it"

password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
say "creating the administrator: ${compose_cmd[*]} run --rm -T app1 user add admin --admin"
printf '%s\n' "$password" | compose run --rm -T app1 user add admin --admin || fail "user add admin"
pass "run --rm app1 user add admin --admin"

# curl helpers. The session cookie is Secure; like a browser talking to
# localhost, this client sends it over plain http (set by hand: curl's own jar
# does not for every version).
cookie=
request() { # METHOD PATH [curl args…]; prints the status
  local method=$1 path=$2
  shift 2
  curl -4 -sS -o "$body" -D "$headers" -w '%{http_code}' --max-time 10 -X "$method" \
    ${cookie:+-H "Cookie: $cookie"} "$@" "$base$path"
}
header() { tr -d '\r' <"$headers" | grep -i "^$1:" | head -n 1 | cut -d' ' -f2- || true; }
# session_set_cookie prints the Set-Cookie of the session cookie (sign-in also
# sets the device cookie, __Host-hallpass-device).
session_set_cookie() { tr -d '\r' <"$headers" | grep -i '^set-cookie: __Host-hallpass=' | head -n 1 | cut -d' ' -f2- || true; }

# HAProxy marks replicas up after two good checks; wait until all three serve.
deadline=$((SECONDS + 60))
seen=""
while :; do
  if [ "$(request GET /healthz)" = 200 ]; then
    served=$(header X-Served-By)
    [[ " $seen " == *" $served "* ]] || seen="$seen $served"
  fi
  [ "$(wc -w <<<"$seen")" -ge 3 ] && break
  [ $SECONDS -lt $deadline ] || fail "HAProxy did not reach all three replicas within 60 s (saw:$seen)"
  sleep 0.2
done
pass "HAProxy on $base reaches every replica:$seen"

status=$(request POST /login --data-urlencode username=admin --data-urlencode "password=$password")
set_cookie=$(session_set_cookie)
[ "$status" = 303 ] && [[ $set_cookie == __Host-hallpass=* ]] ||
  fail "POST /login answered $status, Set-Cookie '$set_cookie'; want 303 and __Host-hallpass"
[[ $set_cookie == *Secure* && $set_cookie == *HttpOnly* ]] || fail "session cookie not Secure HttpOnly: $set_cookie"
cookie=${set_cookie%%;*}
pass "POST /login -> 303 with a Secure HttpOnly __Host-hallpass cookie (served by $(header X-Served-By))"

declare -A per_replica=()
for i in $(seq 1 30); do
  status=$(request GET /)
  served=$(header X-Served-By)
  served=${served:-none}
  [ "$status" = 200 ] || fail "GET / #$i answered $status (served by $served); want 200 signed in"
  grep -q 'Hello, admin' "$body" || fail "GET / #$i (served by $served) does not show the signed-in user"
  per_replica[$served]=$((${per_replica[$served]:-0} + 1))
done
distribution=$(for r in "${!per_replica[@]}"; do printf '%s=%s ' "$r" "${per_replica[$r]}"; done | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
[ ${#per_replica[@]} -eq 3 ] || fail "30 GETs of / reached ${#per_replica[@]} replicas ($distribution); want 3"
pass "30 GETs of / signed in on all 3 replicas: $distribution"

# Failures, as the loopback cluster suite does them (bounded, on this
# project's own containers): a replica killed outright costs no request,
# because HAProxy retries a refused connection on another replica.
docker kill -s KILL "$(containers --filter label=com.docker.compose.service=app2 | head -n 1)" >/dev/null ||
  fail "kill app2"
for i in $(seq 1 30); do
  status=$(request GET /)
  [ "$status" = 200 ] && grep -q 'Hello, admin' "$body" ||
    fail "GET / #$i after app2 was killed answered $status (served by $(header X-Served-By)); want 200 signed in"
done
pass "app2 killed (SIGKILL): 30 GETs of / all signed in, no failure"
compose start app2 >/dev/null 2>&1 || fail "start app2 again"

# The Redis primary killed under load: Sentinel promotes the replica and the
# old primary, started again as soon as it has, rejoins as a replica.
# Meanwhile pages are 200 or 503, never a sign-out or a 500, the session
# survives, Sentinel promotes within HALLPASS_MAX_PROMOTION seconds (default
# 5) and sign-ins are refused (503) for at most HALLPASS_MAX_REFUSAL seconds
# after the kill (default 8: the promotion, `docker start` of the old
# server, and Redis's once-a-second replication cron twice, to connect and
# to acknowledge; docs/RELIABILITY.md, "Tuning").
# deploy/partitioncheck keeps people signing in, loading pages and signing
# out through HAProxy the whole time and checks the history afterwards.
start_load kill -max-refusal "${HALLPASS_MAX_REFUSAL:-8}s"
sentinel1_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(service_container redis-sentinel1)")
timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/26379"' "$sentinel1_ip" 2>/dev/null || sentinel1_ip=
old_primary=$(sentinel_primary)
[ "$old_primary" = redis-primary ] || fail "Sentinel names the primary '$old_primary' before the kill, want redis-primary"
mark kill "kill"
docker kill -s KILL "$(service_container redis-primary)" >/dev/null || fail "kill redis-primary"
killed_at=$SECONDS
deadline=$((SECONDS + 90))
declare -A during=()
restarted=
while :; do
  status=$(request GET /)
  during[$status]=$((${during[$status]:-0} + 1))
  case $status in
  200 | 503) ;;
  *) fail "GET / while the Redis primary was down answered $status (served by $(header X-Served-By)); want only 200 or 503" ;;
  esac
  if [ -z "$restarted" ]; then
    promoted=$(sentinel_primary)
    if [ -n "$promoted" ] && [ "$promoted" != redis-primary ]; then
      mark kill "promoted"
      promoted_after=$(awk '{t[NR]=$1} END {printf "%.1f", t[NR]-t[1]}' "$check_dir/kill.marks")
      # As the loopback suite does: the old server comes back as soon as
      # the failover is done (plain docker: compose's start is slower).
      docker start "$(service_container redis-primary)" >/dev/null || fail "start redis-primary again"
      mark kill "restarted"
      restarted=1
    fi
  fi
  [ -n "$restarted" ] && [ "$status" = 200 ] && break
  [ $SECONDS -lt $deadline ] || fail "no recovery within 90 s of killing the Redis primary (statuses: ${!during[*]})"
  sleep 0.1
done
grep -q 'Hello, admin' "$body" || fail "after the failover / does not show the signed-in user"
awk -v p="$promoted_after" -v max="${HALLPASS_MAX_PROMOTION:-5}" 'BEGIN {exit !(p <= max)}' ||
  fail "Sentinel promoted the replica $promoted_after s after the kill, over the ${HALLPASS_MAX_PROMOTION:-5} s bound"
pass "Redis primary killed: Sentinel promoted '$promoted' within $promoted_after s; statuses meanwhile $(for k in "${!during[@]}"; do printf '%s×%s ' "$k" "${during[$k]}"; done)— no sign-out, no 500"
wait_settled 60 || fail "the session store did not settle within 60 s of restarting the old primary: $settle_problem"
mark kill "settled"
sleep 2
stop_load kill || fail "history of the primary kill: see above (deploy/partitioncheck)"
pass "kill: old primary rejoined as a replica of $promoted; $(load_line kill)"

# Partition: the current Redis primary cut off from the project network
# (docker network disconnect) while people sign in, load pages and sign out
# through HAProxy. The servers' network has one segment, so the primary is
# alone on its side: no replica and no client can reach it, the Sentinels
# promote the replica, and once the cable is back (docker network connect,
# same address and name) the old primary must rejoin as a replica by itself.
# Every acknowledged sign-in and sign-out must hold throughout and after.
partition_for=${HALLPASS_PARTITION_SECONDS:-12}
cut=$(sentinel_primary)
case $cut in
  redis-primary | redis-replica) ;;
  *) fail "Sentinel names the primary '$cut'; want redis-primary or redis-replica" ;;
esac
cut_id=$(service_container "$cut")
network=$(docker inspect -f '{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}{{end}}' "$cut_id")
cut_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$cut_id")
[ -n "$network" ] && [ -n "$cut_ip" ] || fail "no network or address for $cut ($network, $cut_ip)"
start_load partition
mark partition "cut"
docker network disconnect "$network" "$cut_id" || fail "docker network disconnect $network $cut"
cut_at=$SECONDS
partitioned=1
deadline=$((SECONDS + 60))
while :; do
  promoted=$(sentinel_primary)
  [ -n "$promoted" ] && [ "$promoted" != "$cut" ] && break
  [ $SECONDS -lt $deadline ] || fail "no failover within 60 s of cutting $cut off"
  sleep 0.2
done
mark partition "promoted"
promoted_after=$((SECONDS - cut_at))
while [ $((SECONDS - cut_at)) -lt "$partition_for" ]; do sleep 0.5; done
docker network connect --ip "$cut_ip" --alias "$cut" "$network" "$cut_id" || fail "docker network connect $network $cut"
partitioned=
mark partition "heal"
healed_at=$SECONDS
wait_settled 90 || fail "after the partition healed, the session store did not settle within 90 s: $settle_problem"
mark partition "rejoined"
rejoined_after=$((SECONDS - healed_at))
role=$(in_service "$cut" redis-cli info replication | tr -d '\r' | grep -E '^(role|master_host):' | tr '\n' ' ')
[[ $role == *"role:slave"*"master_host:$promoted"* ]] || fail "$cut after the partition: $role; want a replica of $promoted"
sleep 2
stop_load partition || fail "history of the partition: see above (deploy/partitioncheck)"
pass "partition: $cut cut off for ${partition_for} s, Sentinel promoted $promoted within $promoted_after s; healed, $cut rejoined as its replica by itself within $rejoined_after s; $(load_line partition)"

status=$(request POST /logout)
set_cookie=$(session_set_cookie)
[ "$status" = 303 ] || fail "POST /logout answered $status; want 303"
[[ $set_cookie == *Max-Age=0* || $set_cookie == *"Expires=Thu, 01 Jan 1970"* ]] ||
  fail "POST /logout did not expire the cookie: '$set_cookie'"
pass "POST /logout -> 303, cookie expired (served by $(header X-Served-By))"

# The old cookie must be dead on every replica, not only the one that ended it.
declare -A after=()
for i in $(seq 1 6); do
  status=$(request GET /)
  served=$(header X-Served-By)
  served=${served:-none}
  [ "$status" = 303 ] || fail "GET / with the signed-out cookie answered $status on $served; want 303 to /login"
  after[$served]=1
done
pass "the signed-out cookie is refused by ${#after[@]} replicas (${!after[*]})"
