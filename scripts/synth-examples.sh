#!/usr/bin/env bash
# `npx cdktf synth` on each example inventory, in a scratch copy so no PKI lands in examples/.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1
for ex in examples/*.yaml; do
  work=$(mktemp -d)
  cp "$ex" "$work/cluster.yaml"
  out=$(mktemp -d)
  BINKUBE_CONFIG="$work/cluster.yaml" npx cdktf synth --output "$out" >"$work/synth.log" 2>&1 || { cat "$work/synth.log"; exit 1; }
  json=$(ls "$out"/stacks/*/cdk.tf.json)
  n=$(node -e 'const j=require(process.argv[1]);const r=j.resource;let n=0;for(const t in r)n+=Object.keys(r[t]).length;console.log(n)' "$json")
  if grep -q "PRIVATE KEY" "$json"; then echo "private key material in synth output of $ex" >&2; exit 1; fi
  echo "synth $ex: $n resources"
  rm -rf "$work" "$out"
done
