#!/usr/bin/env bash
# Regenerates crds/ from the CRD schemas in operator/api/v1alpha1.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.build.json
node dist/operator/api/crd-gen.js crds
