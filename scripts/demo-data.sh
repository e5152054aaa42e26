#!/bin/sh
# Loads the demo data `make run` serves: a hospital tenant with a catalog, a
# surgery and its detections (fixtures/), and a brand-client tenant with a few
# hundred generated asset scores.  Idempotent: keys are deterministic, so a
# second run stores nothing new (each line says "0 changed").
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
