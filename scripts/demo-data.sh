#!/bin/sh
# Loads the demo data `make run` serves: a hospital tenant with a catalog, an
# open surgery and its detections (fixtures/), a closed and analyzed surgery
# (the hand-checkable scenario fixtures/scenarios/basic.json, simulated: its
# usage answer is there at once), and a brand-client tenant with a few
# hundred generated asset scores.  Idempotent: keys are deterministic, so a
# second run stores nothing new (each line says "0 changed"), and the
# analyzed surgery is analyzed again without a change.
# Usage: scripts/demo-data.sh BINARY STORE_URI
set -eu
bin=${1:?usage: scripts/demo-data.sh BINARY STORE_URI}
store=${2:?usage: scripts/demo-data.sh BINARY STORE_URI}
here=$(cd "$(dirname "$0")/.." && pwd)
fx="$here/fixtures"
hospital=demo-hospital
brands=demo-brands

ensure_tenant() { # NAME KIND
    "$bin" tenants show "$1" --store "$store" >/dev/null 2>&1 \
        || "$bin" tenants create "$1" --kind "$2" --store "$store" >/dev/null
}
ensure_tenant "$hospital" hospital
ensure_tenant "$brands" brand-client

for sku in scalpel forceps sponge; do
    "$bin" ingest --tenant "$hospital" --sku "$(echo "$sku" | tr a-z A-Z)" --format catalog \
        --store "$store" "$fx/catalog/$sku.json" >/dev/null
done
"$bin" ingest --tenant "$hospital" --surgery demo-s1 --format surgery --store "$store" \
    "$fx/surgery/surgery.json" >/dev/null
"$bin" ingest --tenant "$hospital" --surgery demo-s1 --format darknet --store "$store" \
    "$fx/darknet/result.json" >/dev/null

# demo-s2: closed and analyzed.  The syringe is the scenario catalog's entry
# (the others' labels are the demo catalog's); it lies unused, so the answer
# has a waste.  Already analyzed (a second run): analyzed again, no change.
"$bin" ingest --tenant "$hospital" --sku SYRINGE-10ML --format catalog --store "$store" \
    "$fx/scenarios/catalog/SYRINGE-10ML.json" >/dev/null
if ! "$bin" analyze --tenant "$hospital" --store "$store" demo-s2 >/dev/null 2>&1; then
    sim=$(mktemp -d "${TMPDIR:-/tmp}/sightline-demo-XXXXXX")
    "$bin" simulate "$fx/scenarios/basic.json" -o "$sim/frames.ndjson" --format ndjson \
        --surgery "$sim/surgery.json" >/dev/null
    "$bin" ingest --tenant "$hospital" --surgery demo-s2 --format surgery --store "$store" \
        "$sim/surgery.json" >/dev/null
    "$bin" ingest --tenant "$hospital" --surgery demo-s2 --format ndjson --store "$store" \
        "$sim/frames.ndjson" >/dev/null
    rm -rf "$sim"
    "$bin" analyze --tenant "$hospital" --store "$store" --close demo-s2 >/dev/null
fi

# 400 assets over 4 brands, 3 campaigns each and 2 sectors, scores from a
# fixed-seed generator so every run writes the same documents.
assets=$(mktemp "${TMPDIR:-/tmp}/sightline-demo-XXXXXX")
trap 'rm -f "$assets"' EXIT
awk 'BEGIN {
    srand(20261126);
    split("sparkle,Glow & Co,northwind,Fjord Outdoor", brand, ",");
    split("beverages,cosmetics,beverages,apparel", sector, ",");
    split("launch,summer-2026,holiday", campaign, ",");
    for (i = 1; i <= 400; i++) {
        b = (i % 4) + 1; c = (int(i / 4) % 3) + 1;
        mem = 0.35 + 0.5 * rand(); logo = rand(); product = rand();
        printf "{\"asset\": \"demo-%04d\", \"client\": \"demo-media\", \"brand\": \"%s\", ", i, brand[b];
        printf "\"sector\": \"%s\", \"campaign\": \"%s\", \"media_type\": \"%s\", ", sector[b], campaign[c], (i % 5 ? "image" : "video");
        printf "\"memorability\": %.6f, \"saliency\": {\"logo\": %.6f, \"product\": %.6f}, ", mem, logo, product;
        printf "\"model_version\": \"mem-2.3\"}\n";
    }
}' > "$assets"
"$bin" ingest --tenant "$brands" --format assets --store "$store" "$assets" >/dev/null
