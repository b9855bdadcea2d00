#!/usr/bin/env bash
# The engine cdktf drives: Terraform >= 1.4 (terraform_data) or OpenTofu. Prints what cdktf should
# run, for TERRAFORM_BINARY_NAME: `terraform` when a new enough one is on PATH (nothing to set),
# else a tofu on PATH, else OpenTofu built from the Go module proxy (test/fixtures/tofu.sh: about
# 3-5 min on 2 cores the first time, seconds after, cached with the other fixtures) into
# ${BINKUBE_ENGINE_DIR:-/usr/local/bin}/tofu. No registry is contacted either way.
#   engine=$(bash scripts/engine.sh); [ "$engine" = terraform ] || export TERRAFORM_BINARY_NAME=$engine
set -euo pipefail
dir=${BINKUBE_ENGINE_DIR:-/usr/local/bin}
if command -v terraform >/dev/null 2>&1; then
  v=$(CHECKPOINT_DISABLE=1 terraform version 2>/dev/null | sed -n '1s/^Terraform v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  if [ -n "$v" ] && { [ "${v% *}" -gt 1 ] || [ "${v#* }" -ge 4 ]; }; then echo terraform; exit 0; fi
  echo "engine: $(command -v terraform) is older than Terraform 1.4 (no terraform_data); using OpenTofu instead" >&2
fi
if command -v tofu >/dev/null 2>&1; then command -v tofu; exit 0; fi
echo "engine: neither Terraform >= 1.4 nor OpenTofu on PATH: building OpenTofu into $dir (test/fixtures/tofu.sh)" >&2
bash "$(dirname "${BASH_SOURCE[0]}")/../test/fixtures/tofu.sh" "$dir" >&2
echo "$dir/tofu"
