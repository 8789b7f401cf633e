#!/usr/bin/env bash
# Builds nats-server from the Go module proxy into ~/.cache/kmq/peers/nats-<version>/.
# Idempotent. NATS_VERSION overrides the pinned version.
set -euo pipefail
VERSION="${NATS_VERSION:-v2.15.3}"
ROOT="${KMQ_PEERS_DIR:-$HOME/.cache/kmq/peers}"
DEST="$ROOT/nats-$VERSION"
if [[ -x "$DEST/nats-server" ]]; then
  echo "install-nats: nats-server $VERSION already in $DEST"
  exit 0
fi
command -v go >/dev/null || { echo "install-nats: go not found (needed to build nats-server $VERSION)" >&2; exit 1; }
mkdir -p "$DEST"
echo "install-nats: go install github.com/nats-io/nats-server/v2@$VERSION into $DEST"
if ! GOBIN="$DEST" CGO_ENABLED=0 nice -n 10 go install -trimpath "github.com/nats-io/nats-server/v2@$VERSION" >"$DEST/build.log" 2>&1; then
  tail -20 "$DEST/build.log" >&2
  echo "install-nats: go install failed (log: $DEST/build.log)" >&2
  exit 1
fi
echo "install-nats: installed $("$DEST/nats-server" --version)"
