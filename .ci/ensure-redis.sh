#!/usr/bin/env bash
# Tests start throwaway redis-server processes themselves; they only need the binary.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "redis-server is not installed; install it (e.g. sudo apt-get install -y redis-server) and retry" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq redis-server >/dev/null
# Debian's package may start a system instance; the tests never use it
service redis-server stop >/dev/null 2>&1 || true
command -v redis-server >/dev/null
