// Preconditions shared by the end-to-end suites: a reason to skip, or undefined to run.
import { execFileSync } from "node:child_process";
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
