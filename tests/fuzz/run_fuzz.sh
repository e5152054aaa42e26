#!/bin/sh
# run_fuzz.sh TARGET SECONDS SEED... -- runs a libFuzzer target for SECONDS on
# its own corpus directory, which every run reads and grows, and keeps what
# it finds.  The source tree is never written.
#
#   corpus     $SIGHTLINE_FUZZ_CORPUS/<target>   (default
#              ${XDG_CACHE_HOME:-~/.cache}/sightline-fuzz/<target>); made on
#              the first run.  The seeds (files from tests/fuzz/seeds and
#              fixtures/) are read on every run from a temporary copy, so a
#              seed added to the repo is picked up by corpora made before it.
#   artifacts  $SIGHTLINE_FUZZ_ARTIFACTS/<target>  (default
#              ${XDG_CACHE_HOME:-~/.cache}/sightline-fuzz/artifacts/<target>):
#              a crashing, leaking or slow input and the run's log are kept
#              there, and their paths printed with the command that replays
#              the input.
# Where the cache cannot be made (no HOME, read-only), a temporary corpus is
# used for this run and said so; artifacts then stay in the temporary
# directory, which is kept on failure.
# README.md ("Fuzzing") says how to promote an input to the committed seeds.
set -eu
target=$1
seconds=$2
shift 2
name=$(basename "$target")
cache=${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/sightline-fuzz
corpus_root=${SIGHTLINE_FUZZ_CORPUS:-$cache}
artifact_root=${SIGHTLINE_FUZZ_ARTIFACTS:-$cache/artifacts}

work=$(mktemp -d /tmp/sl-fuzz-XXXXXX)
keep_work=0
cleanup() { [ "$keep_work" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir "$work/seeds" "$work/tmp"
# What a target makes under $TMPDIR (fuzz_page_token: its store) goes with
# $work, also when a crash skipped the target's own cleanup.
export TMPDIR="$work/tmp"
for seed in "$@"; do
    cp "$seed" "$work/seeds/"
done

corpus=$corpus_root/$name
artifacts=$artifact_root/$name
if ! mkdir -p "$corpus" 2>/dev/null || [ ! -w "$corpus" ]; then
    echo "run_fuzz: cannot use the corpus directory $corpus; this run uses a temporary one" >&2
    corpus=$work/corpus
    mkdir "$corpus"
fi
if ! mkdir -p "$artifacts" 2>/dev/null || [ ! -w "$artifacts" ]; then
    echo "run_fuzz: cannot use the artifacts directory $artifacts; using $work/artifacts" >&2
    artifacts=$work/artifacts
    mkdir "$artifacts"
fi
before=$(find "$corpus" -type f | wc -l)
log=$work/log

# The first directory is the corpus libFuzzer adds new inputs to; the seeds
# are read from the second.
status=0
"$target" -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$corpus" "$work/seeds" \
    2>"$log" || status=$?
after=$(find "$corpus" -type f | wc -l)
if [ "$status" -ne 0 ]; then
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    kept_log=$artifacts/$name-$stamp.log
    cp "$log" "$kept_log" 2>/dev/null || kept_log=$log
    [ "$kept_log" = "$log" ] && keep_work=1
    tail -50 "$log" >&2
    echo "run_fuzz: $name failed (exit $status); its log: $kept_log" >&2
    # The inputs this run wrote (libFuzzer names them crash-, leak-, timeout-,
    # oom- or slow-unit- followed by their SHA-1) are the newer ones.
    find "$artifacts" -maxdepth 1 -type f ! -name '*.log' -newer "$work/seeds" \
        >"$work/found" 2>/dev/null || true
    while IFS= read -r a; do
        echo "run_fuzz: input kept: $a ($(wc -c <"$a") bytes); first bytes:" >&2
        od -c "$a" | head -20 >&2
        echo "run_fuzz: reproduce with: '$target' '$a'" >&2
    done <"$work/found"
    [ -s "$work/found" ] || echo "run_fuzz: no input was written (see the log)" >&2
    exit 1
fi
grep -E "^(Done|stat::)" "$log" || tail -12 "$log"
echo "run_fuzz: corpus $corpus: $after inputs ($((after - before)) new this run)"
