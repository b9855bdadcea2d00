#!/usr/bin/env bash
# Debian packages binkube's tests need: openssl (PKI checks), OpenSSH (real sshd/ssh for the
# executor and the lab), systemd-nspawn + debootstrap + iproute2 (lab hosts), PostgreSQL (the
# shared-state e2e starts a server of its own; psql is how binkube reads a pg state). Idempotent.
set -euo pipefail
pkgs=(openssl openssh-client openssh-server sudo systemd-container debootstrap iproute2 ca-certificates postgresql)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then echo "install as root: apt-get install -y ${missing[*]}" >&2; exit 1; fi
  echo "== apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v terraform >/dev/null && ! command -v tofu >/dev/null; then
  echo "no terraform or tofu on PATH: scripts/engine.sh builds OpenTofu (.ci/run and npm run demo run it)" >&2
fi
