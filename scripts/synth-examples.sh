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
  # the stack itself is synthesized beside the inventory; cdktf.out's manifest points there
  json=$(ls "$work"/.binkube/cdktf.out/stacks/*/cdk.tf.json)
  node -e 'const m=require(process.argv[1]);const s=Object.values(m.stacks);if(s.length!==1)process.exit(1);const p=require("path").resolve(process.argv[2],s[0].synthesizedStackPath);if(p!==process.argv[3]){console.error("manifest points at "+p);process.exit(1)}' "$out/manifest.json" "$out" "$json"
  n=$(node -e 'const j=require(process.argv[1]);const r=j.resource;let n=0;for(const t in r)n+=Object.keys(r[t]).length;console.log(n)' "$json")
  if grep -q "PRIVATE KEY" "$json"; then echo "private key material in synth output of $ex" >&2; exit 1; fi
  echo "synth $ex: $n resources"
  rm -rf "$work" "$out"
done
