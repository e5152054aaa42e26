#!/bin/sh
# run_fuzz.sh TARGET SECONDS SEED... -- runs a libFuzzer target on a corpus
# seeded from the given fixture files, in a temporary directory that is
# removed afterwards (the source tree is never written).
set -eu
target=$1
seconds=$2
shift 2
work=$(mktemp -d /tmp/sl-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus" "$work/artifacts"
for seed in "$@"; do
    cp "$seed" "$work/corpus/"
done
"$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" "$work/corpus" 2>"$work/log" || {
    tail -50 "$work/log" >&2
    for a in "$work"/artifacts/*; do
        [ -f "$a" ] && { echo "crashing input ($a):" >&2; od -c "$a" | head -20 >&2; }
    done
    exit 1
}
tail -12 "$work/log"
