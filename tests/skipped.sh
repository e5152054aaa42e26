#!/bin/sh
# skipped.sh JUNIT -- the tests ctest reported skipped (exit 77, their own
# entries: no ../shared/realdata, no SIGHTLINE_TEST_MONGO_URI, too few
# descriptors, ...), by name with the reason each printed, from the JUnit
# file `ctest --output-junit` wrote.  The last lines of `make test`, so a
# skip is never lost above the fuzzing output.
set -eu
[ -r "$1" ] || { echo "skipped.sh: no $1 (run ctest with --output-junit)" >&2; exit 1; }
awk '
/<testcase name="/ { split($0, a, "\""); name = a[2]; skipped = 0; why = "" }
/<skipped/         { skipped = 1 }
/skipped: /        { if (why == "") { why = $0; sub(/.*skipped: /, "", why) } }
/<\/testcase>/     { if (skipped) { n++; line[n] = "  " name (why != "" ? ": " why : "") } }
END {
    if (n == 0) { print "ctest: no test skipped"; exit }
    print "ctest: " n " test" (n > 1 ? "s" : "") " skipped (reported as skipped, not passed):"
    for (i = 1; i <= n; i++) print line[i]
}' "$1"
