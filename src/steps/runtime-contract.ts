// What the kubelet and the container runtime must agree on, in one place that the kubelet step and
// each runtime's step read (none imports another's module).
import * as path from "node:path";
import { RUNTIMES, type Inventory } from "../inventory/types";
import { BinkubeError } from "../errors";
import { shq } from "../remote/shell";
import { SYSTEMD_DIR } from "./files";
import { limiter } from "../remote/async";
import type { PlannedFile, RunContext } from "./types";

/** The cgroup driver the runtime and the kubelet agree on (docker's daemon.json and containerd's config.toml say the same). */
export const CGROUP_DRIVER: "cgroupfs" | "systemd" = "cgroupfs";

/** Image archives (docker save) preloaded before kubelet starts: air-gapped nodes need no registry. */
export const IMAGES_DIR = "/opt/kubernetes/images";

/** Every runtime step's edge to prepare. */
export const AFTER_PREPARE = { step: "prepare", on: "same-host", why: "the host passed preflight (cgroups, iptables, disk) and has its modules and sysctls" } as const;

/** The preloaded image archives as a runtime step ships them: loaded with the runtime's own command, never read at its start. */
export function preloadedArchives(inv: Pick<Inventory, "images">): PlannedFile[] {
  return inv.images.preload.map((archive) => ({ path: `${IMAGES_DIR}/${path.basename(archive)}`, mode: 0o644, binary: archive, live: true }));
}

/** containerd's CRI socket: the kubelet's remote runtime endpoint, and crictl's. */
export const CONTAINERD_SOCKET = "/run/containerd/containerd.sock";

/**
 * Each runtime the inventory's `runtime:` names (inventory/types.ts RUNTIMES), as the kubelet and
 * the other runtimes see it. Adding a runtime is an entry here and its step (steps/index.ts).
 */
interface RuntimeEntry {
  /** The step that installs it (its instances exist only on hosts of this runtime). */
  step: string;
  /** Why the kubelet runs after that step (the kubelet's dep). */
  why: string;
  /** Its systemd unit: the kubelet's unit requires it. */
  unit: string;
  /**
   * Kubelet flags (name → value). dockershim (docker) takes the CNI flags and the pause image; a
   * remote runtime takes neither (containerd's config.toml names its CNI dirs and sandbox image).
   */
  kubeletFlags: Record<string, string>;
  /** The kubelet takes --pod-infra-container-image (dockershim only). */
  pauseImageFlag: boolean;
  /** What binkube's unit of it starts with (its template): a packaged unit does not. */
  shippedUnitMark: string;
}

const RUNTIME_TABLE: Record<Inventory["runtime"], RuntimeEntry> = {
  docker: {
    step: "runtime",
    why: "dockershim: kubelet v1.17 runs its pods through this host's docker",
    unit: "docker",
    kubeletFlags: { "network-plugin": "cni", "cni-bin-dir": "/opt/cni/bin", "cni-conf-dir": "/etc/cni/net.d" },
    pauseImageFlag: true,
    shippedUnitMark: "--config-file=/etc/docker/daemon.json",
  },
  containerd: {
    step: "containerd",
    why: "the kubelet runs its pods through containerd's CRI socket (remote runtime)",
    unit: "containerd",
    kubeletFlags: { "container-runtime": "remote", "container-runtime-endpoint": `unix://${CONTAINERD_SOCKET}` },
    pauseImageFlag: false,
    shippedUnitMark: "--config /etc/containerd/config.toml",
  },
};

/** The kubelet's edges to the runtime steps: one of them runs on a host, the others have no instance there. */
export const KUBELET_RUNTIME_DEPS = Object.values(RUNTIME_TABLE).map((r) => ({ step: r.step, on: "same-host", why: r.why }) as const);

/** How the kubelet reaches the inventory's runtime: its systemd unit and the flags that select it. */
export interface KubeletRuntime {
  unit: string;
  flags: Record<string, string>;
  /** --pod-infra-container-image, dockershim only. */
  pauseImage?: string;
}

export function kubeletRuntime(inv: { runtime: Inventory["runtime"]; images: { pause: string } }): KubeletRuntime {
  const r = RUNTIME_TABLE[inv.runtime];
  return { unit: r.unit, flags: r.kubeletFlags, ...(r.pauseImageFlag ? { pauseImage: inv.images.pause } : {}) };
}

/**
 * Refuses a host where binkube deployed another runtime (its unit, as binkube ships it): pods
 * would be left running there, and runtimes share /usr/bin (both docker and containerd ship a
 * containerd). Run before anything is uploaded. A runtime some package installed is not binkube's
 * and not looked at.
 */
export async function refuseOtherRuntime(rc: { host: { name: string }; inv: Pick<Inventory, "runtime">; sh: (c: string, o?: { allowFail?: boolean }) => Promise<{ stdout: string }> }): Promise<void> {
  const others = RUNTIMES.filter((n) => n !== rc.inv.runtime);
  const probes = others.map((o) => `if grep -qsF -- ${shq(RUNTIME_TABLE[o].shippedUnitMark)} ${SYSTEMD_DIR}/${RUNTIME_TABLE[o].unit}.service; then echo present ${o}; fi`);
  const r = await rc.sh(probes.join("; "));
  const other = others.find((o) => r.stdout.includes(`present ${o}`));
  if (!other) return;
  const unit = `${SYSTEMD_DIR}/${RUNTIME_TABLE[other].unit}.service`;
  throw new BinkubeError(
    `${rc.host.name} runs ${other} (${unit}), the inventory says runtime: ${rc.inv.runtime}; a node's runtime is not switched in place (its pods would keep running in ${other}), nothing was changed. Fix: set runtime back to ${other}; or remove ${rc.host.name} from the inventory, deploy, reset it (binkube reset --host ${rc.host.name} --yes) and add it back`,
  );
}

/**
 * Loads the step's preloaded archives into its runtime with LOAD (each archive's path appended),
 * a few at once: a load alternates between reading the archive and unpacking layers. Returns how
 * many were loaded (archives whose content was loaded before are skipped: loadArchiveCommand).
 */
export async function loadPreloadedArchives(rc: Pick<RunContext, "files" | "sh">, load: string): Promise<number> {
  const archives = rc.files.filter((f) => f.path.startsWith(`${IMAGES_DIR}/`)).map((f) => f.path);
  const slot = limiter(3);
  const results = await Promise.all(archives.map((a) => slot(() => rc.sh(loadArchiveCommand(a, load), { timeoutMs: 600_000 }))));
  return results.filter((r) => r.stdout.includes("loaded")).length;
}

/**
 * Loads one image archive with LOAD (the archive's path is appended) unless its marker says this
 * content was loaded already: a load that failed last time is retried although the file itself is
 * unchanged. Prints "loaded" when it loaded.
 */
export function loadArchiveCommand(archive: string, load: string): string {
  const a = shq(archive);
  const marker = shq(`${archive}.loaded`);
  return `s=$(sha256sum -- ${a} | cut -d' ' -f1); if [ "$(cat -- ${marker} 2>/dev/null)" != "$s" ]; then ${load} ${a} >/dev/null && echo "$s" > ${marker} && echo loaded; fi`;
}
