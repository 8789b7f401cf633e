#!/usr/bin/env bash
# Installs what `npm test` needs beyond npm packages: the Python example's grpcio
# packages, and grpcurl (built from the Go module proxy into ~/.cache/kmq/bin, once).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python3 $(python3 --version 2>&1), example requirements"
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r examples/python/requirements.txt

GRPCURL_VERSION=v1.9.4
GRPCURL_BIN="$HOME/.cache/kmq/bin"
if [ "$(cat "$GRPCURL_BIN/grpcurl.version" 2>/dev/null)" != "$GRPCURL_VERSION" ] || [ ! -x "$GRPCURL_BIN/grpcurl" ]; then
  echo "== go install grpcurl@$GRPCURL_VERSION"
  mkdir -p "$GRPCURL_BIN"
  GOBIN="$GRPCURL_BIN" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  echo "$GRPCURL_VERSION" > "$GRPCURL_BIN/grpcurl.version"
fi
