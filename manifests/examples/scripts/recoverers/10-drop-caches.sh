#!/bin/sh
# Recoverer: frees the page cache (echo 1 > /proc/sys/vm/drop_caches), the least harmful thing to try
# when memory is low. It acts only on a diagnosis (status.identifiable on stdin), and with
# spec.context.dryRun: true it says what it would do and does nothing.
set -eu
abnormal=$(cat)
case "$abnormal" in
  *'"identifiable":true'*) ;;
  *) echo "no diagnosis: refusing to act" >&2; exit 1 ;;
esac
if [ "${NODEMEDIC_CONTEXT_DRYRUN:-false}" = true ]; then
  echo '{"recoverable": false, "message": "dry run: would write 1 to /proc/sys/vm/drop_caches"}'
  exit 0
fi
sync
echo 1 > /proc/sys/vm/drop_caches
echo '{"recoverable": true, "message": "dropped the page cache"}'
