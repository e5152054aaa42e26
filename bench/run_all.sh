#!/bin/sh
# Runs every benchmark and prints its figures (what `make bench` calls after
# building the `benchmarks` target).  Benchmarks are never part of `make test`.
# Usage: bench/run_all.sh BUILD_DIR
set -u
build=${1:-build}
here=$(dirname "$0")
status=0

run() {
    echo "== $*"
    "$@" || { echo "bench: $1 failed" >&2; status=1; }
}

# The C benchmarks registered in bench/CMakeLists.txt (built into BUILD/bench).
# dashboard_bench loads 10,000,000 assets into a store under $TMPDIR (~9 GB
# while it runs, removed at the end; several minutes).
for b in "$build"/bench/*_bench; do
    [ -x "$b" ] && run "$b"
done
# Script benchmarks.
run "$here/http_bench.sh" "$build"
exit $status
