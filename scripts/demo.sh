#!/usr/bin/env bash
# The main job on this machine: 3 lab hosts (systemd-nspawn, root), real Kubernetes v1.17.17
# binaries and registry-free images, `cdktf deploy`, and a running cluster you can kubectl.
#   npm run demo [-- DIR]      (default DIR: ./.lab; tear down: npx binkube lab down --dir DIR)
# Fixtures are built once and cached in ${BINKUBE_FIXTURE_CACHE:-/var/cache/binkube/fixtures}.
set -euo pipefail
cd "$(dirname "$0")/.."
export CHECKPOINT_DISABLE=1
dir=${1:-$PWD/.lab}
cache=${BINKUBE_FIXTURE_CACHE:-/var/cache/binkube/fixtures}
start=$(date +%s)
step() { echo "== demo [$(( $(date +%s) - start )) s]: $*"; }
# What a fixture costs on 2 cores: seconds when cached, else the measured first build.
estimate() { if [ -d "$cache/$1" ]; then echo "cached: seconds"; else echo "not cached: first build, about $2 (later runs: seconds)"; fi; }

step "Debian packages (apt-get, once)"
bash scripts/install-deps.sh >/dev/null
step "the engine cdktf drives ($(command -v terraform >/dev/null || command -v tofu >/dev/null && echo "on PATH" || estimate opentofu-v1.10.10 '3-5 min'))"
engine=$(bash scripts/engine.sh)
if [ "$engine" != terraform ]; then export TERRAFORM_BINARY_NAME=$engine; fi
step "runtime, etcd and CNI binaries from Debian packages ($(estimate debs '1 min'))"
bash test/fixtures/debian-binaries.sh "$dir/bin" >/dev/null
step "Kubernetes v1.17.17 from the Go module proxy ($(estimate k8s-v1.17.17 '10-15 min'))"
bash test/fixtures/k8s-binaries.sh "$dir/bin" >/dev/null
step "flannel v0.12 and CNI plugins ($(estimate flannel-v0.12.0-cni-v0.8.6 '3 min'))"
bash test/fixtures/flannel-cni.sh "$dir/bin" >/dev/null
step "images: pause, flannel, CoreDNS, busybox, built without a registry ($(estimate images '3 min'))"
bash test/fixtures/images.sh "$dir/images" >/dev/null
step "metrics-server v0.4.4 image ($(estimate metrics-server-v0.4.4 '2 min'))"
bash test/fixtures/metrics-server.sh "$dir/images" >/dev/null
step "kube-router v1.3.2 image, the NetworkPolicy firewall ($(estimate kube-router-v1.3.2 '8 min'))"
bash test/fixtures/kube-router.sh "$dir/images" >/dev/null
step "lab hosts: 3 systemd-nspawn machines on a private bridge"
node bin/binkube.cjs lab up --hosts 3 --dir "$dir"
# lab up keeps these on a re-run; add them once
grep -q '^images:' "$dir/cluster.yaml" || cat >> "$dir/cluster.yaml" <<YAML
images:
  preload: [images/pause.tar, images/busybox.tar, images/coredns.tar, images/flannel.tar, images/metrics-server.tar, images/kube-router.tar]
kubeProxy:
  conntrackMaxPerCore: 0   # nf_conntrack_max is read-only inside lab containers
YAML
step "cdktf deploy (etcd, control plane, nodes, flannel, kube-router, CoreDNS, metrics-server; about 2 min)"
BINKUBE_CONFIG="$dir/cluster.yaml" npx cdktf deploy --auto-approve
k="$dir/bin/kubectl --kubeconfig $dir/admin.kubeconfig"
step "done"
$k get nodes -o wide
echo
$k version --short 2>/dev/null || true
echo
$k top nodes 2>/dev/null || true
cat <<EOF2

demo: a Kubernetes v1.17 cluster of 3 lab hosts is up ($(( $(date +%s) - start )) s).
  kubectl:    $k get pods -A
  inventory:  $dir/cluster.yaml (edit it and re-run: BINKUBE_CONFIG=$dir/cluster.yaml npx cdktf deploy)
  tear down:  npx binkube lab down --dir $dir
EOF2
