#!/usr/bin/env bash
# Regenerates protocol/gen from proto/ (buf and ts-proto both install from npm).
# Generates into a temp folder first, so a broken .proto leaves the old code in place.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx buf generate --template "$(sed "s#out: protocol/gen#out: $tmp/gen#" buf.gen.yaml)"
rm -rf protocol/gen
mv "$tmp/gen" protocol/gen
