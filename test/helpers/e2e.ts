// Preconditions shared by the end-to-end suites: a reason to skip, or undefined to run.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { preflight } from "../../lab/preflight";

/**
 * The engine cdktf runs in the suites: TERRAFORM_BINARY_NAME when set (.ci/run sets it from
 * scripts/engine.sh on a machine without Terraform), else terraform, else a tofu on PATH (then
 * set in this process's env, which every cdktf the suites start inherits). Undefined: none.
 */
export function cdktfEngine(): string | undefined {
  const runs = (bin: string) => {
    try {
      execFileSync(bin, ["version"], { stdio: "ignore", env: { ...process.env, CHECKPOINT_DISABLE: "1" } });
      return true;
    } catch {
      return false;
    }
  };
  const named = process.env.TERRAFORM_BINARY_NAME;
  if (named) return runs(named) ? named : undefined;
  if (runs("terraform")) return "terraform";
  if (!runs("tofu")) return undefined;
  process.env.TERRAFORM_BINARY_NAME = "tofu";
  return "tofu";
}

export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (systemd-nspawn lab hosts)";
  const pf = preflight();
  if (!pf.ok) return pf.message;
  if (!cdktfEngine()) return "neither terraform nor tofu runs here (cdktf deploy needs one): bash scripts/engine.sh builds OpenTofu, then set TERRAFORM_BINARY_NAME to the path it prints";
  return undefined;
}

/**
 * Why a suite that deploys a whole Kubernetes cluster cannot run here: BINKUBE_E2E_CLUSTER=0,
 * the lab's own preconditions, or Kubernetes v1.17.17 not yet built into the fixture cache.
 */
export function clusterSkipReason(cache = process.env.BINKUBE_FIXTURE_CACHE ?? "/var/cache/binkube/fixtures"): string | undefined {
  if (process.env.BINKUBE_E2E_CLUSTER === "0") return "BINKUBE_E2E_CLUSTER=0";
  const lab = labSkipReason();
  if (lab) return lab;
  if (!fs.existsSync(path.join(cache, "k8s-v1.17.17", "bin", "kubelet"))) return `Kubernetes v1.17.17 binaries are not cached in ${cache} (.ci/run builds them: test/fixtures/k8s-binaries.sh)`;
  return undefined;
}

/**
 * Which e2e tests run: "full" (`npm run test:e2e`, the default: every test) or "ci" (`npm run
 * test:e2e:ci`, what .ci/run runs): the whole suite minus tests whose every feature another test
 * that CI runs also exercises on a real cluster. test/unit/e2e-selection.test.ts checks that each
 * left-out test names such a test.
 */
export const E2E_SELECTION = process.env.BINKUBE_E2E_SELECTION ?? "full";
if (E2E_SELECTION !== "full" && E2E_SELECTION !== "ci") throw new Error(`BINKUBE_E2E_SELECTION=${E2E_SELECTION}: expected full or ci`);

/**
 * Skip reason for a test or suite that the CI selection leaves out. FILE (in test/e2e) and TEST (a
 * part of a test's or describe's title, literally in that file) name what carries its features in
 * CI; WHY says how. Put it on the describe when a whole suite is left out: node:test runs
 * before()/after() even when every test inside is skipped.
 */
export function fullOnly(file: string, test: string, why: string): string | undefined {
  return E2E_SELECTION === "full" ? undefined : `full suite only (npm run test:e2e): in CI, ${file} › "${test}" exercises its features (${why})`;
}
