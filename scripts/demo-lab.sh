#!/usr/bin/env bash
# The operator's day on this machine: 3 lab hosts, real binaries, `cdktf deploy`, kubectl.
# Needs root. Fixture binaries and images are built on first use (Kubernetes: ~15 min once).
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1
dir=${1:-$PWD/.lab}
bash scripts/install-deps.sh
for f in debian-binaries.sh k8s-binaries.sh flannel-cni.sh; do bash "test/fixtures/$f" "$dir/bin"; done
bash test/fixtures/images.sh "$dir/images"
node bin/binkube.cjs lab up --hosts 3 --dir "$dir"
# lab up keeps these on a re-run; add them once
grep -q '^images:' "$dir/cluster.yaml" || cat >> "$dir/cluster.yaml" <<YAML
images:
  preload: [images/pause.tar, images/busybox.tar, images/coredns.tar, images/flannel.tar]
kubeProxy:
  conntrackMaxPerCore: 0   # nf_conntrack_max is read-only inside lab containers
YAML
BINKUBE_CONFIG="$dir/cluster.yaml" npx cdktf deploy --auto-approve
"$dir/bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get nodes -o wide
echo "demo: cluster up; kubectl --kubeconfig $dir/admin.kubeconfig …; tear down with: npx binkube lab down --dir $dir"
