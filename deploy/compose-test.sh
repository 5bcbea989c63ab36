#!/usr/bin/env bash
# End-to-end check of docker-compose.yml and the Dockerfile (`make
# test-compose`): builds the stand-in images, builds the app through
# docker-compose.yml's `build:` (the Dockerfile, on the stand-in Go and runtime
# bases, modules through GOPROXY), checks the image (unprivileged, read-only
# root, its version), starts the whole cluster as project hallpass-ci (the
# session store: a Redis primary, two replicas, three Sentinels), creates an
# administrator with `run --rm`, and through HAProxy signs in, loads / thirty
# times (every replica must serve it, signed in), kills a replica and then
# the Redis primary under the signed-in client (no failure, no sign-out) and
# under load (deploy/partitioncheck: no acknowledged sign-in or sign-out
# lost, promotion within 5 s, sign-ins refused for at most 5 s with the old
# primary still down: the other replica follows the new primary), and signs
# out. Last, a partition under load with app replicas on both sides: the
# Redis primary and app1 cut off from the Sentinels, the other Redis servers,
# app2, app3 and HAProxy (blackhole routes inside the containers' network
# namespaces, through nsenter: run as root), the load going through HAProxy
# and straight to app1; no acknowledged sign-in or sign-out may be lost, no
# page served anywhere with a session after its sign-out was acknowledged,
# and once the routes are gone the cluster must heal by itself (the old
# primary a replica, every session right on all three replicas). The project
# is always torn down with its volumes, pass or fail.
#
#   HALLPASS_MAX_PROMOTION  bound on Sentinel's promotion after the primary is killed (default 5 s)
#   HALLPASS_MAX_REFUSAL  bound on refused sign-ins after the primary is killed (default 5 s)
#   HALLPASS_PARTITION_SECONDS  how long the partition lasts (default 12)
#   HALLPASS_KEEP_HISTORY  1: keep partitioncheck's histories and marks when the run passes too (always kept on failure)
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
export HALLPASS_REDIS_REPLICA2_ADDR=${HALLPASS_REDIS_REPLICA2_ADDR:-$net_prefix.13}
redis_servers=(redis-primary redis-replica redis-replica2)
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
# service_ip SERVICE prints its container's address on the project network
# (a restarted container may get another one).
service_ip() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(service_container "$1")"; }
# check_flags prints partitioncheck's -check flags: every app replica's own
# URL, so the final checks ask each one directly.
check_flags() { local a; for a in app1 app2 app3; do printf -- '-check http://%s:8080 ' "$(service_ip "$a")"; done; }
# redis_addr SERVER prints a Redis server's fixed address.
redis_addr() {
  case $1 in
    redis-primary) echo "$HALLPASS_REDIS_PRIMARY_ADDR" ;;
    redis-replica) echo "$HALLPASS_REDIS_REPLICA_ADDR" ;;
    redis-replica2) echo "$HALLPASS_REDIS_REPLICA2_ADDR" ;;
  esac
}
# replication_info SERVER prints its INFO replication: asked from this
# machine over the project network (Redis's inline protocol) when it can,
# through docker exec otherwise.
replication_info() {
  local out
  out=$(timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/6379" && printf "INFO replication\r\nQUIT\r\n" >&3 && cat <&3' \
    "$(redis_addr "$1")" 2>/dev/null | tr -d '\r' || true)
  [[ $out == *"role:"* ]] || out=$(in_service "$1" redis-cli info replication 2>/dev/null | tr -d '\r' || true)
  echo "$out"
}
# has_online_replica SERVER: it is a primary with a replica in sync.
has_online_replica() {
  local info
  info=$(replication_info "$1")
  [[ $info == *"role:master"* && $info == *"state=online"* ]]
}
# as_root runs a command as root (sudo -n when this script is not root).
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi; }
# The partition's blackhole routes, "<container pid> <address>" each.
routes=()
# blackhole SERVICE ADDRESS… drops everything SERVICE's container sends to
# each ADDRESS: routes in its network namespace, added from this machine in
# one `ip -batch`.
blackhole() {
  local service=$1 pid a
  shift
  pid=${part_pid[$service]}
  printf 'route add blackhole %s/32\n' "$@" | as_root nsenter -t "$pid" -n ip -batch - || return 1
  for a in "$@"; do routes+=("$pid $a"); done
}
# partition_facts SERVICE… looks up each container's process and address
# for cut_links, beforehand: a docker inspect takes up to a second on a busy
# machine, and the cut must be one moment.
declare -A part_pid=() part_ip=()
partition_facts() {
  local s facts
  for s in "$@"; do
    facts=$(docker inspect -f '{{.State.Pid}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(service_container "$s")") ||
      fail "docker inspect $s"
    part_pid[$s]=${facts% *} part_ip[$s]=${facts#* }
    [ "${part_pid[$s]}" -gt 0 ] && [ -n "${part_ip[$s]}" ] || fail "$s has no process or address: '$facts'"
  done
}
# cut_links N SERVICE… cuts every link between the first N services and the
# rest, both ways (their facts looked up by partition_facts): one ip -batch
# per container, all within a fraction of a second.
cut_links() {
  local n=$1 s ips_a=() ips_b=()
  shift
  local side_a=("${@:1:n}") side_b=("${@:n+1}")
  for s in "${side_a[@]}"; do ips_a+=("${part_ip[$s]}"); done
  for s in "${side_b[@]}"; do ips_b+=("${part_ip[$s]}"); done
  for s in "${side_a[@]}"; do
    blackhole "$s" "${ips_b[@]}" || fail "could not cut $s off (nsenter … ip route add blackhole: needs root)"
  done
  for s in "${side_b[@]}"; do
    blackhole "$s" "${ips_a[@]}" || fail "could not cut $s off (nsenter … ip route add blackhole: needs root)"
  done
}
# heal_links removes every route cut_links added.
heal_links() {
  local r pid rc=0
  declare -A lines=()
  for r in "${routes[@]}"; do
    lines[${r% *}]+="route del blackhole ${r#* }/32"$'\n'
  done
  for pid in "${!lines[@]}"; do
    printf '%s' "${lines[$pid]}" | as_root nsenter -t "$pid" -n ip -force -batch - || rc=1
  done
  routes=()
  return "$rc"
}
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
# again: every server up, the one every Sentinel names is primary with both
# replicas online, the two others follow it, the Sentinels can reach quorum.
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
    case " ${redis_servers[*]} " in
      *" $primary "*) ;;
      *) settle_problem="Sentinel names the primary '$primary'" ;;
    esac
    if [ -z "$settle_problem" ]; then
      info=$(replication_info "$primary")
      [[ $info == *"role:master"* && $info == *"connected_slaves:2"* && $(grep -c 'state=online' <<<"$info") -eq 2 ]] ||
        settle_problem="$primary: $(grep -E '^(role|connected_slaves|slave[0-9]+):' <<<"$info" | tr '\n' ' ')"
    fi
    for other in "${redis_servers[@]}"; do
      [ -z "$settle_problem" ] && [ "$other" != "$primary" ] || continue
      info=$(replication_info "$other")
      [[ $info == *"role:slave"* && $info == *"master_host:$primary"* && $info == *"master_link_status:up"* ]] ||
        settle_problem="$other: $(grep -E '^(role|master_host|master_link_status):' <<<"$info" | tr '\n' ' ')"
    done
    if [ -z "$settle_problem" ]; then
      in_service redis-sentinel1 redis-cli -p 26379 sentinel ckquorum hallpass 2>/dev/null | grep -q '^OK' ||
        settle_problem="no Sentinel quorum"
    fi
    [ -z "$settle_problem" ] && return 0
    [ $SECONDS -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
# watch_failover NAME OLD marks, in NAME's marks, "promoted" once the first
# Sentinel names a primary other than OLD (written to $check_dir/NAME.primary)
# and "followed" once that primary has a replica in sync. It runs in the
# background (watch_pid), asking every 0.1 s, so the marks are as exact as
# the asking and do not wait on the main loop's requests.
watch_pid=
watch_failover() {
  local name=$1 old=$2
  (
    deadline=$((SECONDS + 90))
    while :; do
      p=$(sentinel_primary) || p=
      [ -n "$p" ] && [ "$p" != "$old" ] && break
      [ $SECONDS -lt $deadline ] || exit 1
      sleep 0.1
    done
    mark "$name" promoted
    echo "$p" >"$check_dir/$name.primary"
    until has_online_replica "$p"; do
      [ $SECONDS -lt $deadline ] || exit 1
      sleep 0.1
    done
    mark "$name" followed
  ) &
  watch_pid=$!
}
# marked NAME LABEL: NAME's marks have LABEL.
marked() { grep -q " $2\$" "$check_dir/$1.marks" 2>/dev/null; }
# mark_at NAME LABEL prints when LABEL was marked, in seconds after NAME's
# first mark.
mark_at() { awk -v l="$2" 'NR == 1 {t = $1} $2 == l {printf "%.1f", $1 - t; exit}' "$check_dir/$1.marks"; }

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
# refused_until NAME prints when sign-ins were acknowledged again after the
# last refusal, from partitioncheck's summary ("none refused" if none was).
refused_until() {
  local line
  line=$(grep -m1 'sign-ins' "$check_dir/$1.out" || true)
  if [[ $line == *"first acknowledged again at "* ]]; then
    line=${line##*first acknowledged again at }
    echo "${line%%;*}"
  else
    echo "none refused"
  fi
}
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
  [ -z "$watch_pid" ] || kill "$watch_pid" 2>/dev/null || true
  # A partition left in place ends with its containers; heal it anyway.
  [ ${#routes[@]} -eq 0 ] || heal_links || true
  rm -f "$headers" "$body"
  if { [ "$rc" -ne 0 ] || [ "${HALLPASS_KEEP_HISTORY:-0}" = 1 ]; } && [ -d "$check_dir" ]; then
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

# curl, python3, and nsenter and ip for the partition (installed as root).
bash deploy/test-deps.sh --compose || fail "deploy/test-deps.sh --compose: see above"

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
link2=$(in_service redis-replica2 redis-cli info replication | tr -d '\r' | grep '^master_link_status:' || true)
[ "$aof" = yes ] && [ "$minrep" = 1 ] && [ "$link" = master_link_status:up ] && [ "$link2" = master_link_status:up ] ||
  fail "Redis: appendonly=$aof min-replicas-to-write=$minrep redis-replica $link redis-replica2 $link2"
pass "Redis primary has AOF on and min-replicas-to-write 1; both replicas follow it"

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

# The Redis primary killed under load: Sentinel promotes one replica and
# tells the other to follow it (a partial resync), so the new primary can
# confirm sign-ins again without the lost server. Meanwhile every signed-in
# page is served (200, read from a Redis replica; also every page view of
# the load: -serve-pages), the session survives, Sentinel promotes
# within HALLPASS_MAX_PROMOTION seconds (default 5) and sign-ins are refused
# (503) for at most HALLPASS_MAX_REFUSAL seconds after the kill (default 5:
# the promotion, then the other replica's reconfiguration and the first
# acknowledgement from it; docs/RELIABILITY.md, "Tuning"). The old primary
# stays down until the new one has a replica online and that bound has
# passed, so sign-ins cannot have needed it; then it is started again and
# must rejoin as a replica.
# deploy/partitioncheck keeps people signing in, loading pages and signing
# out through HAProxy the whole time and checks the history afterwards.
max_refusal=${HALLPASS_MAX_REFUSAL:-5}
start_load kill -max-refusal "${max_refusal}s" -serve-pages $(check_flags)
sentinel1_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(service_container redis-sentinel1)")
timeout 1 bash -c 'exec 3<>"/dev/tcp/$0/26379"' "$sentinel1_ip" 2>/dev/null || sentinel1_ip=
old_primary=$(sentinel_primary)
[ "$old_primary" = redis-primary ] || fail "Sentinel names the primary '$old_primary' before the kill, want redis-primary"
mark kill "kill"
docker kill -s KILL "$(service_container redis-primary)" >/dev/null || fail "kill redis-primary"
killed_at=$(date +%s.%N)
watch_failover kill redis-primary
deadline=$((SECONDS + 90))
declare -A during=()
restarted=
while :; do
  status=$(request GET /)
  during[$status]=$((${during[$status]:-0} + 1))
  [ "$status" = 200 ] ||
    fail "GET / while the Redis primary was down answered $status (served by $(header X-Served-By)); want 200: page views are read from a Redis replica"
  if [ -z "$restarted" ] && marked kill followed &&
    awk -v t="$killed_at" -v now="$(date +%s.%N)" -v max="$max_refusal" 'BEGIN {exit !(now >= t + max)}'; then
    # Plain docker: compose's start is slower.
    docker start "$(service_container redis-primary)" >/dev/null || fail "start redis-primary again"
    mark kill "restarted"
    restarted=1
  fi
  [ -n "$restarted" ] && [ "$status" = 200 ] && break
  [ $SECONDS -lt $deadline ] || fail "no recovery within 90 s of killing the Redis primary (marks: $(cut -d' ' -f2 "$check_dir/kill.marks" | tr '\n' ' '); statuses: ${!during[*]})"
  sleep 0.1
done
wait "$watch_pid" || true
watch_pid=
promoted=$(cat "$check_dir/kill.primary")
promoted_after=$(mark_at kill promoted)
grep -q 'Hello, admin' "$body" || fail "after the failover / does not show the signed-in user"
awk -v p="$promoted_after" -v max="${HALLPASS_MAX_PROMOTION:-5}" 'BEGIN {exit !(p <= max)}' ||
  fail "Sentinel promoted the replica $promoted_after s after the kill, over the ${HALLPASS_MAX_PROMOTION:-5} s bound"
pass "Redis primary killed: Sentinel promoted '$promoted' within $promoted_after s, the other replica followed it at $(mark_at kill followed) s, the old primary was started again at $(mark_at kill restarted) s; statuses meanwhile $(for k in "${!during[@]}"; do printf '%s×%s ' "$k" "${during[$k]}"; done)— every one served signed in"
wait_settled 60 || fail "the session store did not settle within 60 s of restarting the old primary: $settle_problem"
mark kill "settled"
sleep 2
stop_load kill || fail "history of the primary kill: see above (deploy/partitioncheck)"
pass "kill: sign-ins refused until $(refused_until kill) (bound ${max_refusal} s); old primary rejoined as a replica of $promoted; $(load_line kill)"

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

# Partition with app replicas on both sides. The project has one network,
# and `docker network disconnect` can only take a container off it whole, so
# the links between the two sides are cut where a real partition would cut
# them, in the containers' own network namespaces: a blackhole route to
# every peer on the other side, in both directions (nsenter from this
# machine; the containers keep their addresses and need no privilege).
#   minority: the current Redis primary and app1
#   majority: the three Sentinels, the two other Redis servers, app2, app3
#             and HAProxy
# PostgreSQL stays reachable from both sides: it holds the accounts, not the
# sessions, and a cut there would only make app1 refuse sign-ins for a
# reason that has nothing to do with the session store. This machine (the
# clients) reaches both sides: through HAProxy, which now reaches only app2
# and app3, and directly to app1 on its own address.
# Sentinel promotes a replica on the majority side; app1 can still reach the
# old primary and nothing else of the session store. While people sign in,
# load pages and sign out on both sides, deploy/partitioncheck checks that no
# acknowledged sign-in or sign-out is lost and that no page — through HAProxy
# or from app1 directly — is served with a session after its sign-out was
# acknowledged anywhere. After HALLPASS_PARTITION_SECONDS the routes go; the
# cluster must heal by itself: the old primary a replica of the new one, and
# every session right on all three replicas, asked directly.
partition_for=${HALLPASS_PARTITION_SECONDS:-12}
cut=$(sentinel_primary)
case " ${redis_servers[*]} " in
  *" $cut "*) ;;
  *) fail "Sentinel names the primary '$cut'; want one of ${redis_servers[*]}" ;;
esac
minority=("$cut" app1)
majority=(redis-sentinel1 redis-sentinel2 redis-sentinel3 haproxy app2 app3)
for s in "${redis_servers[@]}"; do [ "$s" = "$cut" ] || majority+=("$s"); done
partition_facts "${minority[@]}" "${majority[@]}"
app1_url=http://${part_ip[app1]}:8080
[ "$(curl -4 -sS -o /dev/null -w '%{http_code}' --max-time 5 "$app1_url/healthz")" = 200 ] ||
  fail "app1 does not answer on its own address $app1_url from this machine"
start_load partition -direct "$app1_url" $(check_flags)
mark partition "cut"
cut_links "${#minority[@]}" "${minority[@]}" "${majority[@]}"
mark partition "cut-done"
cut_at=$SECONDS
watch_failover partition "$cut"
say "partition: ${minority[*]} | ${majority[*]} (${#routes[@]} blackhole routes in $(mark_at partition cut-done) s; PostgreSQL on both sides)"
deadline=$((SECONDS + 60))
until marked partition promoted; do
  [ $SECONDS -lt $deadline ] || fail "no failover within 60 s of cutting $cut off"
  sleep 0.2
done
promoted=$(cat "$check_dir/partition.primary")
promoted_after=$(mark_at partition promoted)
while [ $((SECONDS - cut_at)) -lt "$partition_for" ]; do sleep 0.5; done
heal_links || fail "could not remove the partition's routes"
mark partition "heal"
kill "$watch_pid" 2>/dev/null || true
wait "$watch_pid" 2>/dev/null || true
watch_pid=
followed_at=$(mark_at partition followed)
followed_note="the other replica followed it at $followed_at s"
[ -n "$followed_at" ] || followed_note="no replica followed it before the heal"
healed_at=$SECONDS
wait_settled 90 || fail "after the partition healed, the session store did not settle within 90 s: $settle_problem"
mark partition "rejoined"
rejoined_after=$((SECONDS - healed_at))
role=$(in_service "$cut" redis-cli info replication | tr -d '\r' | grep -E '^(role|master_host):' | tr '\n' ' ')
[[ $role == *"role:slave"*"master_host:$promoted"* ]] || fail "$cut after the partition: $role; want a replica of $promoted"
sleep 2
stop_load partition || fail "history of the partition: see above (deploy/partitioncheck)"
pass "partition: ${minority[*]} cut off for ${partition_for} s, Sentinel promoted $promoted within $promoted_after s, $followed_note; healed, $cut rejoined as its replica by itself within $rejoined_after s; $(load_line partition)"
