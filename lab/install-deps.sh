#!/usr/bin/env bash
# Installs what `binkube lab` needs on the machine that runs the lab hosts (Debian/Ubuntu, root).
# Idempotent: does nothing but report when everything is already there.
set -euo pipefail

pkgs=(systemd-container debootstrap iproute2 openssh-client)
need=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    need+=("$p")
  fi
done

if [ "${#need[@]}" -eq 0 ]; then
  echo "lab deps: already installed (${pkgs[*]})"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "lab deps: missing ${need[*]}; run as root: apt-get update && apt-get install -y ${pkgs[*]}" >&2
  exit 1
fi

echo "lab deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update
apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "${pkgs[@]}"
