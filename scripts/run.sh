#!/bin/sh
# What `make run` calls: builds nothing.  Loads the demo data
# (scripts/demo-data.sh: a hospital tenant and a brand-client tenant), creates
# an admin key for each on first run (kept in <data dir>/<tenant>.key, mode
# 600, because a key is shown only once), prints the service URL and the demo
# keys, then becomes `sightline serve`.
# Usage: scripts/run.sh BINARY STORE_URI HOST:PORT
set -eu
bin=${1:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}
store=${2:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}
listen=${3:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}

[ -x "$bin" ] || { echo "run: $bin is not built (run 'make build')" >&2; exit 1; }

# The key file sits next to an SQLite store, else under ./data.
case "$store" in
    sqlite:*) path=${store#sqlite:}; datadir=$(dirname "$path") ;;
    *://*) datadir=data ;;
    *) datadir=$(dirname "$store") ;;
esac
mkdir -p "$datadir"
"$(dirname "$0")/demo-data.sh" "$bin" "$store" \
    || { echo "run: loading the demo data failed (see above)" >&2; exit 1; }

# An admin key per demo tenant.  A saved key is reused only while the store
# still knows it and it is live.
demo_key() { # TENANT -> prints the key
    keyfile="$datadir/$1.key"
    key=""
    if [ -s "$keyfile" ]; then
        key=$(cat "$keyfile")
        id=$(printf '%s' "$key" | cut -d_ -f2)
        if ! "$bin" keys list --tenant "$1" --store "$store" 2>/dev/null \
            | awk -v id="$id" '$1 == id && $4 == "-" { found = 1 } END { exit !found }'; then
            key=""
        fi
    fi
    if [ -z "$key" ]; then
        key=$("$bin" keys create --tenant "$1" --role admin --name demo-admin --store "$store")
        (umask 077 && printf '%s\n' "$key" > "$keyfile")
    fi
    printf '%s' "$key"
}
hkey=$(demo_key demo-hospital)
bkey=$(demo_key demo-brands)

case "$listen" in
    0.0.0.0:*) url="http://127.0.0.1:${listen#*:}" ;;
    *) url="http://$listen" ;;
esac
cat <<MSG
Sightline is starting on $url (store $store)
  hospital tenant demo-hospital, admin key: $hkey
      curl -H 'Authorization: Bearer $hkey' $url/v1/surgeries/demo-s1/frames
      curl -H 'Authorization: Bearer $hkey' $url/v1/surgeries/demo-s2/usage
      curl -H 'Authorization: Bearer $hkey' '$url/v1/hospitals/st-mary/recommendations?procedure=lap-chole&min_surgeries=1'
    tool-usage report of demo-s2, as PDF and as XLSX (docs/reports.md):
      curl -OJ -H 'Authorization: Bearer $hkey' $url/v1/surgeries/demo-s2/report.pdf
      curl -OJ -H 'Authorization: Bearer $hkey' $url/v1/surgeries/demo-s2/report.xlsx
  brand tenant demo-brands, admin key: $bkey
      curl -H 'Authorization: Bearer $bkey' '$url/v1/brands?sort=mean&order=desc'
    brand score report of sparkle, as PDF and as XLSX (docs/reports.md):
      curl -OJ -H 'Authorization: Bearer $bkey' $url/v1/brands/sparkle/report.pdf
      curl -OJ -H 'Authorization: Bearer $bkey' $url/v1/brands/sparkle/report.xlsx
  (keys also in $datadir/demo-hospital.key and $datadir/demo-brands.key)
  health: curl $url/healthz     metrics: curl $url/metrics
Stop with Ctrl-C.
MSG
exec "$bin" serve --store "$store" --listen "$listen"
