#!/usr/bin/env bash
# Installs rabbitmq-server (and Erlang) from Debian's packages. Idempotent.
set -euo pipefail
if [[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] || command -v rabbitmq-server >/dev/null; then
  echo "install-rabbitmq: rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?') already installed"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "install-rabbitmq: needs root for apt-get" >&2; exit 1; }
echo "install-rabbitmq: apt-get install rabbitmq-server"
export DEBIAN_FRONTEND=noninteractive
# The package's service is not wanted: the benchmark starts its own node.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -q --no-install-recommends rabbitmq-server >/tmp/kmq-install-rabbitmq.log 2>&1 \
  || { tail -20 /tmp/kmq-install-rabbitmq.log >&2; echo "install-rabbitmq: apt-get failed (log: /tmp/kmq-install-rabbitmq.log)" >&2; exit 1; }
echo "install-rabbitmq: installed rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server)"
