#!/bin/sh
# Collector: the node's memory, from /proc/meminfo, into status.context.memory.
# nodemedic: timeout=5s
set -eu
available=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
total=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
printf '{"context": {"memory": {"availableKiB": %s, "totalKiB": %s}}}\n' "$available" "$total"
