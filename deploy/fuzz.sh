#!/usr/bin/env bash
# Runs every Go fuzz target for a short, bounded number of executions
# (FUZZTIME, default 20000x each): the seed corpora in testdata/fuzz run in
# every `go test`; this adds fresh inputs on top. Exits non-zero on the first
# failure, which leaves the failing input in the package's testdata/fuzz
# folder.
#
# A count, not a duration: with a duration, Go 1.26's fuzzing coordinator can
# report a bare "context deadline exceeded" failure, with no failing input,
# when its deadline fires while a worker is busy (go.dev/issue/75804, fixed in
# Go 1.27) — seen here on a loaded 2-core machine. A count has no deadline to
# race. FUZZTIME=8s still works for a timed run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-20000x}"
targets=(
  "./internal/web FuzzSessionCookie"
  "./internal/web FuzzLoginForm"
  "./internal/web FuzzSafeNext"
  "./internal/config FuzzLoad"
  "./internal/config FuzzShownHidesTheURLPassword"
  "./internal/session FuzzCodecDecode"
  "./internal/password FuzzParsePHC"
  "./internal/device FuzzLabel"
  "./internal/devicetrust FuzzVerify"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz: $2 in $1, $fuzztime"
  go test -run '^$' -fuzz "^$2\$" -fuzztime "$fuzztime" "$1"
done
echo "fuzz: ${#targets[@]} targets passed"
