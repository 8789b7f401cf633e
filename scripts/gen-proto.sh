#!/usr/bin/env bash
# Regenerates the code generated from proto/ (buf and ts-proto both install from npm):
#   buf.gen.yaml          proto/kmq/broker  -> protocol/gen
#   buf.gen.sidecar.yaml  proto/kmq/sidecar -> sidecar/gen
# Generates into a temp folder first, so a broken .proto leaves the old code in place.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gen() { # template, out folder
  local name
  name=$(basename "$1" .yaml)
  npx buf generate --template "$(sed "s#out: $2\$#out: $tmp/$name#" "$1")"
  rm -rf "$2"
  mv "$tmp/$name" "$2"
}
gen buf.gen.yaml protocol/gen
gen buf.gen.sidecar.yaml sidecar/gen
