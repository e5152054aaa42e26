#!/bin/sh
# What `make run` calls: builds nothing.  On first run creates the demo tenant
# and an admin key (kept in <data dir>/demo-admin.key, mode 600, because a key
# is shown only once), prints the service URL and the demo key, then becomes
# `sightline serve`.  Later capabilities load their demo data here.
# Usage: scripts/run.sh BINARY STORE_URI HOST:PORT
set -eu
bin=${1:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}
store=${2:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}
listen=${3:?usage: scripts/run.sh BINARY STORE_URI HOST:PORT}
tenant=demo

[ -x "$bin" ] || { echo "run: $bin is not built (run 'make build')" >&2; exit 1; }

# The key file sits next to an SQLite store, else under ./data.
case "$store" in
    sqlite:*) path=${store#sqlite:}; datadir=$(dirname "$path") ;;
    *://*) datadir=data ;;
    *) datadir=$(dirname "$store") ;;
esac
mkdir -p "$datadir"
keyfile="$datadir/demo-admin.key"

# A saved key is reused only while the store still knows it and it is live.
key=""
if [ -s "$keyfile" ]; then
    key=$(cat "$keyfile")
    id=$(printf '%s' "$key" | cut -d_ -f2)
    if ! "$bin" keys list --tenant "$tenant" --store "$store" 2>/dev/null \
        | awk -v id="$id" '$1 == id && $4 == "-" { found = 1 } END { exit !found }'; then
        key=""
    fi
fi
if [ -z "$key" ]; then
    "$bin" tenants show "$tenant" --store "$store" >/dev/null 2>&1 \
        || "$bin" tenants create "$tenant" --kind hospital --store "$store"
    key=$("$bin" keys create --tenant "$tenant" --role admin --name demo-admin --store "$store")
    (umask 077 && printf '%s\n' "$key" > "$keyfile")
fi

case "$listen" in
    0.0.0.0:*) url="http://127.0.0.1:${listen#*:}" ;;
    *) url="http://$listen" ;;
esac
cat <<MSG
Sightline is starting on $url (store $store)
  demo tenant:  $tenant
  demo API key: $key   (admin; also in $keyfile)
  try:          curl -H 'Authorization: Bearer $key' $url/v1/tenant
  health:       curl $url/healthz
Stop with Ctrl-C.
MSG
exec "$bin" serve --store "$store" --listen "$listen"
