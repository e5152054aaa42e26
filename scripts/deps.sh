#!/bin/sh
# Installs the Debian packages a make target needs, only those missing.
# Usage: scripts/deps.sh GROUP...   (groups: build, test, bench; see scripts/packages/)
# Runs apt-get through sudo when not root. Exits non-zero with a clear line on failure.
set -eu
here=$(dirname "$0")
missing=""
for group in "$@"; do
    list="$here/packages/$group.txt"
    [ -f "$list" ] || { echo "deps: no package list $list" >&2; exit 2; }
    for pkg in $(grep -v '^#' "$list"); do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            missing="$missing $pkg"
        fi
    done
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing" >&2
if [ "$(id -u)" -eq 0 ]; then sudo=""; else
    command -v sudo >/dev/null || { echo "deps: need root or sudo to install:$missing" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || { echo "deps: apt-get update failed" >&2; exit 1; }
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null \
    || { echo "deps: apt-get install failed for:$missing" >&2; exit 1; }
