#!/bin/sh
# Builds the whole tree (binary, tests, benchmarks) once per compiler and
# build type, each in its own folder build-check-<cc>-<type>, with every
# warning an error (-Werror, the project's flags), and reports which failed.
# `make check-builds` runs it; .ci/run calls that.  A warning one compiler or
# one optimisation level finds and the others do not (gcc's -O2 and -O3 flow
# analysis: format-truncation, maybe-uninitialized, stringop-*) fails here,
# not on a user's machine.
#
# Usage: scripts/check-builds.sh [-j JOBS] [CC...] [-- TYPE...]
#   CC    compilers (default: gcc clang)
#   TYPE  CMake build types (default: Release RelWithDebInfo Debug)
# Each build keeps going past an error (make -k) so that its log lists every
# warning; the failing lines are printed, the whole log stays in
# build-check-<cc>-<type>/build.log.  Exit 0 when every build passed, 1 when
# any failed, 2 on bad usage.
set -eu

jobs=$(nproc 2>/dev/null || echo 2)
if [ "${1:-}" = "-j" ]; then
    [ $# -ge 2 ] || { echo "check-builds: -j needs a number" >&2; exit 2; }
    jobs=$2
    shift 2
fi
ccs=""
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    ccs="$ccs $1"
    shift
done
[ "${1:-}" = "--" ] && shift
types="$*"
[ -n "$ccs" ] || ccs="gcc clang"
[ -n "$types" ] || types="Release RelWithDebInfo Debug"

src=$(cd "$(dirname "$0")/.." && pwd)
failed=""
summary=""
t_all=$(date +%s)
for cc in $ccs; do
    command -v "$cc" >/dev/null || { echo "check-builds: no compiler $cc" >&2; exit 2; }
    for type in $types; do
        case $type in
            Release | RelWithDebInfo | Debug | MinSizeRel) ;;
            *) echo "check-builds: unknown build type $type" >&2; exit 2 ;;
        esac
        dir=$src/build-check-$cc-$type
        log=$dir/build.log
        t0=$(date +%s)
        mkdir -p "$dir"
        # Every option that decides what is compiled and how, explicitly: the
        # folder's cache never decides it.  The compiler is fixed when the
        # folder is first configured, and the folder is named after it.
        status=ok
        if ! CC=$cc cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DSIGHTLINE_WERROR=ON \
            -DSIGHTLINE_SANITIZE=OFF -DSIGHTLINE_FUZZ=OFF -DSIGHTLINE_TESTS=ON \
            -DSIGHTLINE_BENCH=ON >"$log" 2>&1; then
            status=FAILED
        else
            keep=-k # make; ninja's is -k 0
            grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt" && keep="-k 0"
            # shellcheck disable=SC2086
            cmake --build "$dir" -j "$jobs" -- $keep >>"$log" 2>&1 || status=FAILED
        fi
        s=$(($(date +%s) - t0))
        line=$(printf '%-6s %-15s %-7s %4s s  %s' "$cc" "$type" "$status" "$s" "$dir")
        summary="$summary$line
"
        echo "check-builds: $line"
        if [ "$status" != ok ]; then
            failed="$failed $cc-$type"
            # The compiler's and cmake's own error lines, each once.
            grep -E ': (fatal )?(error|warning): |CMake Error' "$log" | sort -u | head -40 >&2 || true
        fi
    done
done
echo "check-builds: summary ($(($(date +%s) - t_all)) s, -j $jobs):"
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "check-builds: FAILED:$failed (logs: build-check-<cc>-<type>/build.log)" >&2
    exit 1
fi
echo "check-builds: every build compiled clean"
