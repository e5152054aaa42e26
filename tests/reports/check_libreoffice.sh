#!/bin/sh
# LibreOffice opens every XLSX the tests wrote and converts it to PDF
# without error (a private profile directory, so no user's settings or
# lock files are involved; a time bound).  Usage: check_libreoffice.sh OUTDIR
set -u
out=$1
command -v libreoffice >/dev/null || { echo "FAIL: libreoffice is not installed (scripts/packages/test.txt)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/sl-lo-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
bad=0
n=0
for f in "$out"/*.xlsx; do
    [ -e "$f" ] || continue
    n=$((n + 1))
    name=$(basename "$f" .xlsx)
    if ! timeout 300 libreoffice --headless --norestore -env:UserInstallation=file://"$tmp"/profile \
        --convert-to pdf --outdir "$tmp" "$f" >"$tmp/$name.log" 2>&1; then
        echo "FAIL: libreoffice could not convert $f:" >&2
        cat "$tmp/$name.log" >&2
        bad=1
    elif [ ! -s "$tmp/$name.pdf" ] || ! qpdf --check "$tmp/$name.pdf" >/dev/null 2>&1; then
        echo "FAIL: libreoffice made no valid PDF of $f:" >&2
        cat "$tmp/$name.log" >&2
        bad=1
    else
        echo "ok: $f opens in LibreOffice ($(pdfinfo "$tmp/$name.pdf" | awk '/^Pages:/ {print $2}') pages as PDF)"
    fi
done
[ $n -ge 3 ] || { echo "FAIL: only $n XLSX files in $out" >&2; exit 1; }
exit $bad
