// containerd: the container runtime with `runtime: containerd` (docker stays the default,
// steps/runtime.ts). The kubelet reaches it through its CRI socket (remote runtime, CRI v1alpha2 in
// v1.17); crictl is there for the operator. Images are preloaded into containerd's k8s.io namespace,
// the one its CRI plugin serves the kubelet from.
import { kubeletHosts } from "../inventory/types";
import { GateError, waitFor } from "../util/wait";
import { applyUnit, checkReleaseVersion, probeUnit } from "./actions";
import { groupBinaries, templated, unit } from "./files";
import { AFTER_PREPARE, CGROUP_DRIVER, CONTAINERD_SOCKET, IMAGES_DIR, loadPreloadedArchives, preloadedArchives, refuseOtherRuntime } from "./runtime-contract";
import { RunContext, StepDef } from "./types";

const GROUP = "containerd";
/** Required members of binaries containerd/ (the rest of the folder ships as found, e.g. containerd-shim-runc-v1). */
export const REQUIRED_CONTAINERD = ["containerd/containerd", "containerd/containerd-shim-runc-v2", "containerd/ctr", "containerd/runc", "containerd/crictl"];
/** Where they go: containerd finds its shim, and the shim runc, on the unit's PATH. */
const BIN = "/usr/bin";
const CONFIG = "/etc/containerd/config.toml";
const CRICTL_CONFIG = "/etc/crictl.yaml";
/**
 * The CRI APIs crictl may report: the kubelet v1.17 speaks v1alpha2 (containerd 1.3 to 1.7 serve
 * it, checked by containerd's version, binaries/release.ts); a crictl built for a later CRI asks for v1.
 */
const CRI_APIS = ["v1alpha2", "v1"];

/**
 * A restart is needed for a changed binary, config or unit; a new image archive is only imported.
 * Running pods survive a containerd restart (each container's shim outlives it), so no drain.
 */
const needsRestart = (changed: string[]): boolean => changed.some((p) => !p.startsWith(`${IMAGES_DIR}/`));

async function runContainerd(rc: RunContext): Promise<string> {
  await refuseOtherRuntime(rc);
  const sync = await rc.sync();
  const probe = await probeUnit(rc, "containerd");
  if (sync.changed.includes(`${BIN}/containerd`)) await checkReleaseVersion(rc, "containerd/containerd", `${BIN}/containerd`);
  const action = await applyUnit(rc, "containerd", needsRestart(sync.changed), { probe });
  // The gate: the CRI plugin answers on the socket, with the cgroup driver the kubelet is configured for.
  let answer = "";
  await waitFor(
    `containerd's CRI plugin on ${rc.host.name} to answer on ${CONTAINERD_SOCKET}`,
    async () => {
      const r = await rc.sh("crictl version && crictl info", { allowFail: true, timeoutMs: 20_000 });
      if (r.code !== 0) return r.stderr.trim().split("\n").pop() ?? "no answer";
      answer = r.stdout;
      return true;
    },
    { timeoutMs: 60_000, log: rc.log, fix: `check journalctl -u containerd on ${rc.host.name} (the CRI plugin logs why it did not load)` },
  );
  const info = readCriInfo(answer);
  const driver = info.systemdCgroup ? "systemd" : "cgroupfs";
  if (driver !== CGROUP_DRIVER) throw new GateError(`containerd on ${rc.host.name} runs containers with the ${driver} cgroup driver, the kubelet is configured for "${CGROUP_DRIVER}": check SystemdCgroup in ${CONFIG}`);
  // each import unpacks into the CRI plugin's snapshotter
  const count = await loadPreloadedArchives(rc, "ctr -n k8s.io images import --no-unpack=false");
  return `${sync.changed.length} files changed, ${action}, CRI answers (containerd ${info.version}), cgroup driver ${driver}${count > 0 ? `, ${count} image archives imported` : ""}`;
}

interface CriInfo {
  version: string;
  systemdCgroup: boolean;
}

/**
 * What `crictl version && crictl info` prints that the gate reads: the runtime's version, that it
 * is containerd answering a CRI API, and whether runc runs with the systemd cgroup driver
 * (containerd's default: no).
 */
export function readCriInfo(out: string): CriInfo {
  const name = /^RuntimeName:\s*(\S+)/m.exec(out)?.[1];
  const api = /^RuntimeApiVersion:\s*(\S+)/m.exec(out)?.[1];
  const version = /^RuntimeVersion:\s*(\S+)/m.exec(out)?.[1];
  if (name !== "containerd" || !version || !CRI_APIS.includes(api ?? "")) {
    throw new GateError(`${CRICTL_CONFIG}'s endpoint answers as ${name ?? "(no name)"} ${version ?? ""} with CRI ${api ?? "(none)"}, not containerd with CRI ${CRI_APIS.join(" or ")}: check ${CONFIG} and that nothing else listens on ${CONTAINERD_SOCKET}`);
  }
  return { version, systemdCgroup: /"SystemdCgroup":\s*true/.test(out) };
}

export const containerd: StepDef = {
  name: "containerd",
  scope: "host",
  description: "containerd: binaries, config.toml, crictl, unit, image preload",
  hosts: (inv) => (inv.runtime === "containerd" ? kubeletHosts(inv) : []),
  deps: [AFTER_PREPARE],
  run: runContainerd,
  units: ["containerd"],
  binaries: REQUIRED_CONTAINERD,
  nodeRoll: true,
  files: ({ inv, binaries }) => [
    ...groupBinaries(BIN, REQUIRED_CONTAINERD, binaries.group(GROUP)),
    templated(CONFIG, "containerd/config.toml", { socket: CONTAINERD_SOCKET, sandboxImage: inv.images.pause, systemdCgroup: CGROUP_DRIVER === "systemd" }),
    templated(CRICTL_CONFIG, "containerd/crictl.yaml", { endpoint: `unix://${CONTAINERD_SOCKET}` }),
    ...preloadedArchives(inv),
    unit("containerd", "containerd/containerd.service"),
  ],
};
