// runtime: docker from the static release (dockerd starts its own containerd), cgroup driver
// pinned to the kubelet's.
import * as path from "node:path";
import { REQUIRED_DOCKER } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { binary, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { waitFor } from "../util/wait";
import { applyUnit } from "./actions";
import { shq } from "../remote/shell";

async function runRuntime(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  const action = await applyUnit(rc, "docker", sync.changed.length > 0);
  let driver = "";
  await waitFor(
    `docker on ${rc.host.name} to answer`,
    async () => {
      const r = await rc.sh("docker info --format '{{.CgroupDriver}}'", { allowFail: true });
      driver = r.stdout.trim();
      return r.code === 0 ? true : r.stderr.trim().split("\n").pop() ?? "no answer";
    },
    { timeoutMs: 60_000, log: rc.log, fix: `check journalctl -u docker on ${rc.host.name}` },
  );
  if (driver !== CGROUP_DRIVER) throw new Error(`docker reports cgroup driver "${driver}", the kubelet is configured for "${CGROUP_DRIVER}": check /etc/docker/daemon.json and any dockerd flags`);
  // Load each archive whose content was not loaded yet (a marker holds the loaded sha256), so
  // a load that failed last time is retried even though the file itself is unchanged.
  const archives = rc.files.filter((f) => f.path.startsWith(`${IMAGES_DIR}/`)).map((f) => f.path);
  let count = 0;
  for (const a of archives) {
    const r = await rc.sh(loadArchiveCommand(a), { timeoutMs: 600_000 });
    if (r.stdout.includes("loaded")) count++;
  }
  const loaded = count > 0 ? `, ${count} image archives loaded` : "";
  return `${sync.changed.length} files changed, ${action}, cgroup driver ${driver}${loaded}`;
}

/** `docker load` of one archive unless its marker says this content was loaded already. */
export function loadArchiveCommand(archive: string): string {
  const a = shq(archive);
  const marker = shq(`${archive}.loaded`);
  return `s=$(sha256sum -- ${a} | cut -d' ' -f1); if [ "$(cat -- ${marker} 2>/dev/null)" != "$s" ]; then docker load -q -i ${a} >/dev/null && echo "$s" > ${marker} && echo loaded; fi`;
}

export const CGROUP_DRIVER = "cgroupfs";
/** Image archives (docker save) preloaded before kubelet starts: air-gapped nodes need no registry. */
export const IMAGES_DIR = "/opt/kubernetes/images";

export const runtime: StepDef = {
  name: "runtime",
  scope: "host",
  description: "docker: binaries, daemon.json, unit",
  hosts: (inv) => hostsWithRole(inv, "node"),
  deps: [{ step: "prepare", on: "same-host" }],
  run: runRuntime,
  nodeRoll: true,
  files: ({ inv, binaries }) => {
    const names = [...new Set([...REQUIRED_DOCKER, ...binaries.group("docker")])].sort();
    return [
      ...names.map((n) => binary("/usr/bin", n)),
      templated("/etc/docker/daemon.json", "docker/daemon.json", { execOpt: `native.cgroupdriver=${CGROUP_DRIVER}` }),
      ...inv.images.preload.map((archive) => ({ path: `${IMAGES_DIR}/${path.basename(archive)}`, mode: 0o644, binary: archive })),
      unit("docker", "docker/docker.service"),
    ];
  },
};
