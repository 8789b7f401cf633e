#!/usr/bin/env bash
# Regenerates protocol/gen from proto/ (buf and ts-proto both install from npm).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf protocol/gen
npx buf generate
