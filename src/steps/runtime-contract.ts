// What the kubelet and the container runtime must agree on, in one place that the kubelet step and
// each runtime's step read (none imports another's module).
import * as path from "node:path";
import type { Inventory } from "../inventory/types";
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

/** How the kubelet reaches the inventory's runtime: its systemd unit and the flags that select it. */
export interface KubeletRuntime {
  unit: string;
  /**
   * Kubelet flags (name → value). dockershim (docker) takes the CNI flags and the pause image; a
   * remote runtime takes neither (containerd's config.toml names its CNI dirs and sandbox image).
   */
  flags: Record<string, string>;
  /** --pod-infra-container-image, dockershim only. */
  pauseImage?: string;
}

export function kubeletRuntime(inv: { runtime: Inventory["runtime"]; images: { pause: string } }): KubeletRuntime {
  if (inv.runtime === "containerd") {
    return { unit: "containerd", flags: { "container-runtime": "remote", "container-runtime-endpoint": `unix://${CONTAINERD_SOCKET}` } };
  }
  return {
    unit: "docker",
    flags: { "network-plugin": "cni", "cni-bin-dir": "/opt/cni/bin", "cni-conf-dir": "/etc/cni/net.d" },
    pauseImage: inv.images.pause,
  };
}

/** What binkube's unit of each runtime starts with (templates/{docker,containerd}/*.service.hbs): a packaged unit does not. */
const SHIPPED_UNIT_MARK = { docker: "--config-file=/etc/docker/daemon.json", containerd: "--config /etc/containerd/config.toml" } as const;

/**
 * Refuses a host where binkube deployed the other runtime (its unit, as binkube ships it): pods
 * would be left running there, and both put their containerd in /usr/bin. Run before anything is
 * uploaded. A runtime some package installed is not binkube's and not looked at.
 */
export async function refuseOtherRuntime(rc: { host: { name: string }; inv: Pick<Inventory, "runtime">; sh: (c: string, o?: { allowFail?: boolean }) => Promise<{ stdout: string }> }): Promise<void> {
  const other = rc.inv.runtime === "containerd" ? "docker" : "containerd";
  const r = await rc.sh(`grep -qsF -- ${shq(SHIPPED_UNIT_MARK[other])} ${SYSTEMD_DIR}/${other}.service && echo present || true`);
  if (!r.stdout.includes("present")) return;
  throw new BinkubeError(
    `${rc.host.name} runs ${other} (${SYSTEMD_DIR}/${other}.service), the inventory says runtime: ${rc.inv.runtime}; a node's runtime is not switched in place (its pods would keep running in ${other}), nothing was changed. Fix: set runtime back to ${other}; or remove ${rc.host.name} from the inventory, deploy, reset it (binkube reset --host ${rc.host.name} --yes) and add it back`,
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
