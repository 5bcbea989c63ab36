#!/bin/bash
# Entrypoint of the hallpass-postgres stand-in image: the basics of the
# official postgres image's entrypoint, so docker-compose.yml runs either.
#
# On the first start with an empty $PGDATA (a named volume) it runs initdb with
# POSTGRES_USER (default postgres) as the superuser and POSTGRES_PASSWORD as
# its password, lets that user in over the network with scram-sha-256
# (POSTGRES_HOST_AUTH_METHOD overrides), listens on every address and creates
# POSTGRES_DB (default: the user's name). Then, and on every later start, it
# runs postgres as the postgres user. Unlike the official image it does not run
# /docker-entrypoint-initdb.d scripts.
set -Eeuo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# `docker run image -c setting=value` means postgres with those options.
if [ "${1:0:1}" = '-' ]; then
  set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
  # The volume may be new (owned by root): give it to postgres, then start
  # again as postgres.
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 2775 /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ "$1" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  user=${POSTGRES_USER:-postgres}
  db=${POSTGRES_DB:-$user}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
    echo "postgres entrypoint: the database is not initialised and POSTGRES_PASSWORD is not set;" >&2
    echo "postgres entrypoint: set it (or POSTGRES_HOST_AUTH_METHOD=trust, which allows anyone in)" >&2
    exit 1
  fi
  echo "postgres entrypoint: initialising $PGDATA (superuser $user, database $db)"
  pwargs=()
  if [ -n "${POSTGRES_PASSWORD:-}" ]; then
    pwfile=$(mktemp)
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    pwargs=(--pwfile="$pwfile")
  fi
  # shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of words, as in the official image.
  initdb --pgdata="$PGDATA" --username="$user" "${pwargs[@]}" --auth-local=trust --auth-host="$auth" \
    --encoding=UTF8 --locale=C.UTF-8 ${POSTGRES_INITDB_ARGS:-} >/dev/null
  rm -f "${pwfile:-}"
  printf '\n# Added by the entrypoint: password logins from the container network.\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  # The image leaves out LLVM, so there is no JIT to use.
  printf "\n# Added by the entrypoint.\nlisten_addresses = '*'\njit = off\n" >>"$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    # Single-user mode: no server listens while the database is made.
    printf 'CREATE DATABASE "%s";\n' "${db//\"/\"\"}" | postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "postgres entrypoint: initialised"
fi

exec "$@"
