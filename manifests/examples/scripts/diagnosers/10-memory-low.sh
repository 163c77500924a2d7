#!/bin/sh
# Diagnoser: identifies low memory — less than spec.context.minAvailableMiB (default 256) available.
set -eu
min_mib=${NODEMEDIC_CONTEXT_MINAVAILABLEMIB:-256}
available_kib=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
available_mib=$((available_kib / 1024))
if [ "$available_mib" -lt "$min_mib" ]; then
  printf '{"identifiable": true, "reason": "MemoryLow", "message": "%s MiB available, less than %s MiB"}\n' "$available_mib" "$min_mib"
else
  printf '{"identifiable": false, "message": "%s MiB available, at least %s MiB"}\n' "$available_mib" "$min_mib"
fi
