// What the lab needs on this machine, and a clear message when something is missing.
import { which } from "./util";

export const INSTALL_COMMAND =
  "apt-get update && apt-get install -y systemd-container debootstrap iproute2 openssh-client";

interface Need {
  prog: string;
  pkg: string;
}

const NEEDS: readonly Need[] = [
  { prog: "systemd-nspawn", pkg: "systemd-container" },
  { prog: "debootstrap", pkg: "debootstrap" },
  { prog: "ip", pkg: "iproute2" },
  { prog: "ssh", pkg: "openssh-client" },
  { prog: "ssh-keygen", pkg: "openssh-client" },
  { prog: "mount", pkg: "mount" },
];

export interface PreflightResult {
  ok: boolean;
  /** One line per problem, e.g. "systemd-nspawn not found (Debian package systemd-container)". */
  problems: string[];
  /** Full human message (empty when ok). */
  message: string;
}

export function preflight(opts: { needBuildTools?: boolean } = {}): PreflightResult {
  const problems: string[] = [];
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) problems.push("not running as root (the lab mounts, makes bridges and cgroups, runs systemd-nspawn)");
  if (process.platform !== "linux") problems.push(`not Linux (${process.platform})`);
  const missingPkgs = new Set<string>();
  for (const n of NEEDS) {
    if (n.prog === "debootstrap" && opts.needBuildTools === false) continue;
    if (!which(n.prog)) {
      problems.push(`${n.prog} not found (Debian package ${n.pkg})`);
      missingPkgs.add(n.pkg);
    }
  }
  let message = "";
  if (problems.length > 0) {
    message = "binkube lab cannot run here:\n" + problems.map((p) => `  - ${p}`).join("\n");
    if (missingPkgs.size > 0) {
      message += `\nInstall the missing tools (as root):\n  ${INSTALL_COMMAND}\n(or run lab/install-deps.sh)`;
    }
  }
  return { ok: problems.length === 0, problems, message };
}
