#!/usr/bin/env bash
# Without hosts: render + synth the guide's two-host plan in a scratch dir (npm run demo:render).
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1
work=${1:-$(mktemp -d)}
cp examples/guide-two-hosts.yaml "$work/cluster.yaml"
node bin/binkube.cjs render --config "$work/cluster.yaml" --out "$work/render-out"
node bin/binkube.cjs certs check --config "$work/cluster.yaml" || true
BINKUBE_CONFIG="$work/cluster.yaml" npx cdktf synth --output "$work/cdktf.out" | tail -1
echo "demo: inventory, pki/, render-out/ and cdktf.out/ are in $work"
