#!/bin/sh
# GET /v1/tenant (a key check and a small JSON answer) driven by wrk at 1, 64
# and 1024 keep-alive connections against `sightline serve` on a temporary
# SQLite store; prints requests/s and p50/p99 latency per level.  Builds
# nothing: pass the build directory (RelWithDebInfo for figures that mean
# something).  Target: 50,000 req/s at 64 connections, p99 < 5 ms.
# Usage: bench/http_bench.sh BUILD_DIR [SECONDS_PER_LEVEL]
set -eu
build=${1:-build}
secs=${2:-10}
bin="$build/sightline"
[ -x "$bin" ] || { echo "http_bench: $bin is not built" >&2; exit 1; }
command -v wrk >/dev/null || { echo "http_bench: wrk is missing (apt-get install wrk)" >&2; exit 1; }

tmp=$(mktemp -d /tmp/sl-http-bench-XXXXXX)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

store="sqlite:$tmp/bench.db"
"$bin" tenants create bench --kind hospital --store "$store" 2>/dev/null
key=$("$bin" keys create --tenant bench --role viewer --name bench --store "$store")
# 1024 connections need descriptors on both sides, and all come from one
# address (over the default --max-connections-per-ip).
ulimit -n 8192 2>/dev/null || true
"$bin" serve --store "$store" --listen 127.0.0.1:0 --access-log "$tmp/access.log" \
    --max-connections-per-ip 0 2>"$tmp/serve.err" &
pid=$!
url=""
for _ in $(seq 1 100); do
    url=$(sed -n 's/.*listening on \([^ ]*\).*/\1/p' "$tmp/serve.err")
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "http_bench: the server did not start:" >&2; cat "$tmp/serve.err" >&2; exit 1; }

echo "http_bench: GET /v1/tenant, ${secs}s per level, $(nproc) cores shared by wrk and the server"
for conns in 1 64 1024; do
    threads=2
    [ "$conns" -eq 1 ] && threads=1
    out=$(wrk -t"$threads" -c"$conns" -d"${secs}s" --latency \
        -H "Authorization: Bearer $key" "$url/v1/tenant")
    rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ { print $2 }')
    p50=$(printf '%s\n' "$out" | awk '$1 == "50%" { print $2 }')
    p99=$(printf '%s\n' "$out" | awk '$1 == "99%" { print $2 }')
    bad=$(printf '%s\n' "$out" | awk '/Non-2xx/ { print $5 } /Socket errors/ { print "socket-errors" }')
    printf 'http_bench GET /v1/tenant connections=%-4s requests/s=%-10s p50=%-8s p99=%-8s%s\n' \
        "$conns" "$rps" "$p50" "$p99" "${bad:+ errors: $bad}"
done
