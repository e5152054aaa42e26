#!/bin/sh
# The renderers' libraries belong to reports/ alone (DESIGN.md, Layout): no
# other folder of the product includes their headers, and nothing but api/
# and cmd/ includes reports/.  Usage: check_layering.sh SOURCE_DIR
set -u
src=$1
bad=0
for dir in schema store ingest engine api cmd; do
    if grep -rnE '#include *[<"](cairo|pango|fontconfig|xlsxwriter|glib)' "$src/$dir" --include='*.[ch]'; then
        echo "FAIL: $dir/ includes a renderer's header (only reports/ may)" >&2
        bad=1
    fi
done
for dir in schema store ingest engine; do
    if grep -rnE '#include *"[./]*reports/' "$src/$dir" --include='*.[ch]'; then
        echo "FAIL: $dir/ includes reports/ (only api/ and cmd/ may)" >&2
        bad=1
    fi
done
if grep -rnE '#include *"[./]*(api|cmd)/' "$src/reports" --include='*.[ch]'; then
    echo "FAIL: reports/ includes api/ or cmd/" >&2
    bad=1
fi
[ $bad -eq 0 ] && echo "ok: cairo, pango, fontconfig and libxlsxwriter stay in reports/"
exit $bad
