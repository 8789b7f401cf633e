#!/usr/bin/env bash
# Installs redis-server from Debian's packages. Idempotent.
set -euo pipefail
if command -v redis-server >/dev/null; then
  echo "install-redis: $(redis-server --version) already installed"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "install-redis: needs root for apt-get" >&2; exit 1; }
echo "install-redis: apt-get install redis-server"
export DEBIAN_FRONTEND=noninteractive
# The package's service is not wanted: the benchmark starts its own server.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends redis-server >/tmp/kmq-install-redis.log 2>&1 \
  || { tail -20 /tmp/kmq-install-redis.log >&2; echo "install-redis: apt-get failed (log: /tmp/kmq-install-redis.log)" >&2; exit 1; }
echo "install-redis: installed $(redis-server --version)"
