#!/bin/sh
# The fhir3t image's entrypoint (also run outside Docker by the tests: nothing here assumes a container).
#
#   docker run IMAGE serve [serve options]     the CDS Hooks service (binds 0.0.0.0:8088 unless --host is given)
#   docker run IMAGE watch [watch options]     screen patients when data arrives on [server] url
#   docker run IMAGE nightly [screen options]  the nightly screen (deploy/fhir3t-nightly.sh) into $FHIR3T_OUT
#   docker run IMAGE smoke                     screen the bundled samples: exit 0 when the image works
#   docker run IMAGE COMMAND ...               any other fhir3t command (screen, explain, codes, ...)
#
# Secrets: every file in $FHIR3T_SECRETS (default /run/secrets, where Docker and Kubernetes mount them) must
# be readable by the user the image runs as (uid 10001, gid 10001): owned by 10001 with mode 0400, or group
# 10001 with mode 0440. They are checked before anything runs, and an unreadable one stops the container
# with a sentence naming its owner and mode (exit 4) instead of a "Permission denied" in the middle of a run.
set -eu

FHIR3T=${FHIR3T_BIN:-fhir3t}
PYTHON=${FHIR3T_PYTHON:-python3}
NIGHTLY=${FHIR3T_NIGHTLY:-/usr/local/bin/fhir3t-nightly.sh}
SAMPLES=${FHIR3T_SAMPLES:-/opt/fhir3t/samples}
SECRETS=${FHIR3T_SECRETS:-/run/secrets}

if [ -d "$SECRETS" ]; then
  "$PYTHON" -m fhir3t.secretfiles "$SECRETS" || exit $?
fi

cmd=${1:---help}
[ $# -gt 0 ] && shift

case "$cmd" in
  serve)
    # inside a container 127.0.0.1 is reachable from nowhere: bind every interface unless told otherwise
    case " $* " in
      *" --host "*|*" --host="*|*" --feedback "*|*" --feedback-rows "*) exec "$FHIR3T" serve "$@" ;;
      *) exec "$FHIR3T" serve --host "${FHIR3T_HOST:-0.0.0.0}" "$@" ;;
    esac
    ;;
  nightly)
    exec "$NIGHTLY" "$@"
    ;;
  smoke)
    # the samples with their ConceptMap and the as-of date their Bundles carry: 25 patients, exit 0
    exec "$FHIR3T" screen "$SAMPLES/screening" --concept-map "$SAMPLES/conceptmaps/hospital-local.json" \
      --format csv --no-progress --no-config "$@"
    ;;
  *)
    exec "$FHIR3T" "$cmd" "$@"
    ;;
esac
