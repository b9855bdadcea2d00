// The binaries a step ships are the releases the inventory names: the Kubernetes servers are
// kubernetes.version, etcd and etcdctl are etcd.version, dockerd is a docker kubelet v1.17 can
// drive. Checked here, on the operator's machine, before the step touches its host, when this
// machine can run them (Linux x86-64, as the binaries are); elsewhere the steps check on the host
// after the upload, before any restart (steps/actions.ts checkReleaseVersion).
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import type { Inventory } from "../inventory/types";
import type { BinaryIndex } from "./source";

interface Versioned {
  /** The arguments that make it print its version. */
  args: string[];
  /** The version in its output, or undefined. */
  read: (out: string) => string | undefined;
  /** What is wrong with `got` for this inventory, or undefined when it fits. */
  problem: (got: string, inv: Pick<Inventory, "kubernetesVersion" | "etcdVersion">) => string | undefined;
  /** The fix, for this inventory. */
  fix: (inv: Pick<Inventory, "kubernetesVersion" | "etcdVersion">) => string;
  /**
   * Dynamically linked against libraries binkube ships beside it (the binary source's folder of
   * it): run here with that folder on the loader's path, and not judged here when this machine's
   * own libraries cannot load it (an older glibc): the step checks it on the host instead.
   */
  sharedLibraries?: true;
}

/** The release a `--version` line names ("Kubernetes v1.17.17" → "v1.17.17"). */
export const releaseIn = (text: string): string | undefined => /v\d+\.\d+\.\d+\S*/.exec(text)?.[0];

/** What to do when the binaries are another release than the inventory says. */
export const releaseFix = (version: string): string => `Fix: point binaries at the ${version} release, or set kubernetes.version to the release the binaries are, and re-run`;

const kubernetes: Versioned = {
  args: ["--version"],
  read: releaseIn,
  problem: (got, inv) => (got === inv.kubernetesVersion ? undefined : `but kubernetes.version says ${inv.kubernetesVersion}`),
  fix: (inv) => releaseFix(inv.kubernetesVersion),
};
const etcd = (args: string[], pattern: RegExp): Versioned => ({
  args,
  read: (out) => {
    const m = pattern.exec(out);
    return m ? `v${m[1]}` : undefined;
  },
  problem: (got, inv) => (got === inv.etcdVersion ? undefined : `but etcd.version says ${inv.etcdVersion}`),
  fix: (inv) => `Fix: point binaries at the etcd ${inv.etcdVersion} release, or set etcd.version to the release the binaries are (v3.4.x), and re-run`,
});
/** dockershim in kubelet v1.17 needs the docker API 1.26, docker 1.13.1 (pkg/kubelet/dockershim/libdocker). */
const MIN_DOCKER = [1, 13, 1];
/** a < b, for dotted versions as numbers. */
const older = (a: number[], b: number[]): boolean => {
  const i = b.findIndex((n, k) => (a[k] ?? 0) !== n);
  return i >= 0 && (a[i] ?? 0) < b[i]!;
};
const dockerd: Versioned = {
  args: ["--version"],
  read: (out) => /Docker version (\d+\.\d+\.\d+)/.exec(out)?.[1],
  problem: (got) => (older(got.split(".").map(Number), MIN_DOCKER) ? `but kubelet v1.17 needs docker ${MIN_DOCKER.join(".")} or later (docker API 1.26)` : undefined),
  fix: () => "Fix: put docker 1.13.1 or later (Kubernetes v1.17 validated up to 19.03) in binaries docker/, and re-run",
};

/**
 * containerd serves the CRI v1alpha2 the kubelet v1.17 speaks from 1.3 (its config version 2,
 * which templates/containerd/config.toml is) to 1.7; 2.0 removed v1alpha2.
 */
const containerd: Versioned = {
  args: ["--version"],
  read: (out) => /^containerd \S+ v?(\d+\.\d+\.\d+)/m.exec(out)?.[1],
  problem: (got) => {
    const v = got.split(".").map(Number);
    return older(v, [1, 3]) || !older(v, [2, 0]) ? "but kubelet v1.17 needs containerd 1.3 to 1.7 (CRI v1alpha2, config version 2)" : undefined;
  },
  fix: () => "Fix: put containerd 1.3 to 1.7 (Debian bookworm's is 1.6) with its shim, runc, ctr and crictl in binaries containerd/, and re-run",
};

/**
 * The haproxy release line binkube renders haproxy.cfg for and tests: 2.6, the long-term
 * supported branch Debian bookworm ships (fixes until 2027). Another line may read the same file
 * differently, so it is refused like a Kubernetes binary of another release.
 */
export const HAPROXY_SERIES = "2.6";
const haproxy: Versioned = {
  args: ["-v"],
  read: (out) => /HAProxy version (\d+\.\d+\.\d+\S*)/.exec(out)?.[1],
  problem: (got) => (got.startsWith(`${HAPROXY_SERIES}.`) ? undefined : `but binkube's apiserver proxy configuration is written for haproxy ${HAPROXY_SERIES}.x`),
  fix: () => `Fix: put haproxy ${HAPROXY_SERIES}.x (Debian bookworm's package) and the libraries it needs in binaries haproxy/ (test/fixtures/debian-binaries.sh shows how), and re-run`,
  sharedLibraries: true,
};

/** Every binary whose version is checked, by its name in the binary source. */
export const VERSIONED: Readonly<Record<string, Versioned>> = {
  "kube-apiserver": kubernetes,
  "kube-controller-manager": kubernetes,
  "kube-scheduler": kubernetes,
  kubelet: kubernetes,
  "kube-proxy": kubernetes,
  etcd: etcd(["--version"], /etcd Version: (\d+\.\d+\.\d+)/),
  // etcdctl v3 has no --version flag ("unknown flag"): its version is a subcommand
  etcdctl: etcd(["version"], /etcdctl version: (\d+\.\d+\.\d+)/),
  "docker/dockerd": dockerd,
  "containerd/containerd": containerd,
  "haproxy/haproxy": haproxy,
};

/** The error for `name` at `path` that printed `out`, or undefined when it is the release the inventory names. */
export function versionProblem(name: string, path: string, out: string, inv: Pick<Inventory, "kubernetesVersion" | "etcdVersion">): string | undefined {
  const v = VERSIONED[name];
  if (!v) return undefined;
  const got = v.read(out);
  const problem = got === undefined ? "and binkube cannot tell which release it is" : v.problem(got, inv);
  return problem ? `${name} (${path}) is ${got ?? `unreadable (${out.trim().slice(0, 80)})`}, ${problem}; nothing was changed. ${v.fix(inv)}` : undefined;
}

/** What the dynamic loader says when it cannot load a program (a library or a glibc symbol version missing here). */
export const LOADER_FAILURE = /error while loading shared libraries|version `GLIBC\S* not found|cannot open shared object file/;

/** The folders of the binary's group (its own and every member's), for LD_LIBRARY_PATH. */
function libraryPath(binaries: BinaryIndex, name: string): string {
  const group = name.split("/")[0]!;
  const dirs = [name, ...binaries.group(group)].map((n) => binaries.get(n).localPath).filter((p): p is string => p !== undefined).map((p) => path.dirname(p));
  return [...new Set(dirs)].join(":");
}

export const canRunLocally = (): boolean => process.platform === "linux" && process.arch === "x64";

/** Throws naming the binary, its version and the fix when one of NAMES is not the release the inventory names. */
export function checkReleaseLocally(binaries: BinaryIndex, names: string[], inv: Pick<Inventory, "kubernetesVersion" | "etcdVersion">, where: string): void {
  if (!canRunLocally()) return;
  for (const name of names.filter((n) => VERSIONED[n])) {
    const info = binaries.get(name);
    if (!info.present || !info.localPath) continue;
    const v = VERSIONED[name]!;
    let out: string;
    try {
      const env = v.sharedLibraries ? { ...process.env, LD_LIBRARY_PATH: libraryPath(binaries, name) } : undefined;
      out = execFileSync(info.localPath, v.args, { encoding: "utf8", timeout: 20_000, stdio: ["ignore", "pipe", "pipe"], env });
    } catch (e) {
      // this machine's own libraries cannot load it: the step checks it on the host, after the upload
      if (v.sharedLibraries && LOADER_FAILURE.test(`${(e as { stderr?: string }).stderr ?? ""} ${(e as Error).message}`)) continue;
      throw new BinkubeError(`${where}: ${info.localPath} does not run here (${(e as Error).message.split("\n")[0]}); nothing was changed. Fix: binaries must be linux-amd64 builds of the releases the inventory names`);
    }
    const problem = versionProblem(name, info.localPath, out, inv);
    if (problem) throw new BinkubeError(`${where}: ${problem}`);
  }
}
