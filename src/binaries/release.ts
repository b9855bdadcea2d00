// The Kubernetes binaries a step ships are the release the inventory names (kubernetes.version).
// Checked here, on the operator's machine, before the step touches its host, when this machine
// can run them (Linux x86-64, as the binaries are); elsewhere the steps check on the host after
// the upload, before any restart (steps/actions.ts checkReleaseVersion).
import { execFileSync } from "node:child_process";
import { BinkubeError } from "../errors";
import type { BinaryIndex } from "./source";

/** Server binaries that print "Kubernetes vX.Y.Z" for --version (kubectl's flag differs). */
export const RELEASE_BINARIES = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"];

/** The release a `--version` line names ("Kubernetes v1.17.17" → "v1.17.17"). */
export const releaseIn = (text: string): string | undefined => /v\d+\.\d+\.\d+\S*/.exec(text)?.[0];

/** What to do when the binaries are another release than the inventory says. */
export const releaseFix = (version: string): string => `Fix: point binaries at the ${version} release, or set kubernetes.version to the release the binaries are, and re-run`;

export const canRunLocally = (): boolean => process.platform === "linux" && process.arch === "x64";

/** Throws naming the binary, its version and the fix when one of NAMES is not VERSION. */
export function checkReleaseLocally(binaries: BinaryIndex, names: string[], version: string, where: string): void {
  if (!canRunLocally()) return;
  for (const name of names.filter((n) => RELEASE_BINARIES.includes(n))) {
    const info = binaries.get(name);
    if (!info.present || !info.localPath) continue;
    let out: string;
    try {
      out = execFileSync(info.localPath, ["--version"], { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"] });
    } catch (e) {
      throw new BinkubeError(`${where}: ${info.localPath} does not run here (${(e as Error).message.split("\n")[0]}); nothing was changed. Fix: binaries must be the linux-amd64 ${version} release`);
    }
    const got = releaseIn(out);
    if (got !== version) {
      throw new BinkubeError(
        `${where}: ${name} (${info.localPath}) is ${got ?? `unreadable (${out.trim().slice(0, 80)})`}, but kubernetes.version says ${version}; nothing was changed. ${releaseFix(version)}`,
      );
    }
  }
}
