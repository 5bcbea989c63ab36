#!/usr/bin/env bash
# Runs every Go fuzz target for a short, bounded time (FUZZTIME, default 8s
# each): the seed corpora in testdata/fuzz run in every `go test`; this adds
# fresh inputs on top. Exits non-zero on the first failure, which leaves the
# failing input in the package's testdata/fuzz folder.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-8s}"
targets=(
  "./internal/web FuzzSessionCookie"
  "./internal/web FuzzLoginForm"
  "./internal/web FuzzSafeNext"
  "./internal/config FuzzLoad"
  "./internal/session FuzzCodecDecode"
  "./internal/password FuzzParsePHC"
  "./internal/device FuzzLabel"
  "./internal/devicetrust FuzzVerify"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz: $2 in $1 for $fuzztime"
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1"
done
echo "fuzz: ${#targets[@]} targets passed"
