// Preconditions shared by the end-to-end suites: a reason to skip, or undefined to run.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { preflight } from "../../lab/preflight";

export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (systemd-nspawn lab hosts)";
  const pf = preflight();
  if (!pf.ok) return pf.message;
  try {
    execFileSync("terraform", ["version"], { stdio: "ignore" });
  } catch {
    return "terraform is not installed (cdktf deploy needs it)";
  }
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
