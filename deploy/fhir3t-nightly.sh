#!/bin/sh
# The nightly screen: the server, credentials and concept maps come from the config file
# (/etc/fhir3t/config.toml, see fhir3t.toml.example); extra arguments go to `fhir3t screen`
# (e.g. a folder of exported files instead of the server).
#
# Writes the worklist page, the CSV and the JSON results into OUT/YYYY-MM-DD/ and points OUT/latest at
# it only when the run produced results; a failed run never replaces yesterday's worklist. YYYY-MM-DD is
# today in the site's time zone ([site] timezone in the config file, else the system's: `fhir3t today`),
# the date the run screens as of: a run at 02:30 in Hangzhou is filed under the Hangzhou date, not UTC's.
# Exit codes are fhir3t's (src/fhir3t/errors.py):
#   0  ok: published
#   3  some input was skipped: published; the skipped files/entries are in the log (a warning, not a failure)
#   5  server error: retried FHIR3T_RETRIES times, FHIR3T_RETRY_WAIT seconds apart, then a failure
#   2, 4, 6, 7, other: failure at once (usage / configuration, no usable input, authentication, push)
set -u

OUT=${FHIR3T_OUT:-/var/lib/fhir3t}
RETRIES=${FHIR3T_RETRIES:-2}
WAIT=${FHIR3T_RETRY_WAIT:-600}
FHIR3T=${FHIR3T_BIN:-fhir3t}
day=$("$FHIR3T" today 2>/dev/null) || day=$(date -u +%Y-%m-%d)
work="$OUT/.run-$day-$$"

mkdir -p "$work" || exit 4
trap 'rm -rf "$work"' EXIT

attempt=0
while :; do
  "$FHIR3T" screen --no-progress "$@" \
    --html "$work/worklist.html" --csv "$work/worklist.csv" --format json --out "$work/screening.json"
  rc=$?
  if [ "$rc" -eq 5 ] && [ "$attempt" -lt "$RETRIES" ]; then
    attempt=$((attempt + 1))
    echo "fhir3t-nightly: server error (exit 5); retry $attempt of $RETRIES in $WAIT s" >&2
    sleep "$WAIT"
    continue
  fi
  break
done

case "$rc" in
  0|3)
    rm -rf "$OUT/$day"
    mv "$work" "$OUT/$day" || exit 4
    ln -sfn "$day" "$OUT/latest.tmp" && mv -T "$OUT/latest.tmp" "$OUT/latest"
    [ "$rc" -eq 3 ] && echo "fhir3t-nightly: published $OUT/$day; some input was skipped (see the log above)" >&2
    exit "$rc"
    ;;
  *)
    echo "fhir3t-nightly: fhir3t screen failed with exit $rc; nothing published, $OUT/latest unchanged" >&2
    exit "$rc"
    ;;
esac
