// runtime: docker from the static release (dockerd starts its own containerd), cgroup driver
// pinned to the kubelet's. The default runtime; another `runtime:` runs its own step instead
// (steps/runtime-contract.ts names each).
import { REQUIRED_DOCKER } from "../binaries/catalog";
import { kubeletHosts } from "../inventory/types";
import { groupBinaries, templated, unit } from "./files";
import { AFTER_PREPARE, CGROUP_DRIVER, IMAGES_DIR, loadPreloadedArchives, preloadedArchives, refuseOtherRuntime } from "./runtime-contract";
import { StepDef, RunContext } from "./types";
import { waitFor } from "../util/wait";
import { applyUnit, hasJoined, probeUnit } from "./actions";
import { PendingRestart, clearPending, cordonAndDrain, isCordoned, readPending, uncordonWhenReady, writePending } from "./drain";
import type { StepRemote } from "./types";

/**
 * docker restarts for a changed binary, daemon.json or unit; a new image archive is only loaded.
 * Its containers survive a restart of the same daemon (live-restore), not a new binary or
 * daemon.json (storage driver, runtimes): then a node that runs pods is drained first.
 */
function restartNeeds(changed: string[]): { restart: boolean; drain: boolean } {
  const relevant = changed.filter((p) => !p.startsWith(`${IMAGES_DIR}/`));
  return { restart: relevant.length > 0, drain: relevant.some((p) => p.startsWith(`${DOCKER_BIN}/`) || p === DAEMON_JSON) };
}

async function runRuntime(rc: RunContext): Promise<string> {
  await refuseOtherRuntime(rc);
  const sync = await rc.sync();
  const pending = await readPending(rc, "docker");
  // Files dockerd is older than count as changed ones (an earlier run stopped before its restart).
  const probe = await probeUnit(rc, "docker");
  const needs = restartNeeds([...sync.changed, ...probe.stale.map((s) => s.path)]);
  const restart = needs.restart || pending !== undefined;
  // The intent goes to the node before anything happens to it: a run that stops at the drain
  // leaves it there, and the next run drains, restarts and uncordons although no file changes then.
  let intent: PendingRestart | undefined = pending;
  let control: StepRemote | undefined;
  if (restart && !intent) {
    const drain = needs.drain && (await hasJoined(rc));
    control = drain ? await rc.controlPlane() : undefined;
    intent = { unit: "docker", drain, cordonedByBinkube: drain && !(await isCordoned(control!, rc.host.name)) };
    await writePending(rc, intent);
  }
  if (intent?.drain) {
    control ??= await rc.controlPlane();
    await cordonAndDrain(rc, control, "the docker restart");
  }
  // restart is applyUnit's own verdict too when dockerd is stale; it then says why
  const action = await applyUnit(rc, "docker", restartNeeds(sync.changed).restart || pending !== undefined, { probe });
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
  // Each archive whose content was not loaded yet (a marker holds the loaded sha256), so a load
  // that failed last time is retried even though the file itself is unchanged.
  const count = await loadPreloadedArchives(rc, "docker load -q -i");
  const loaded = count > 0 ? `, ${count} image archives loaded` : "";
  let drained = "";
  if (intent?.cordonedByBinkube) {
    await uncordonWhenReady(rc, control ?? (await rc.controlPlane()));
    drained = ", drained first and uncordoned when Ready";
  } else if (intent?.drain) drained = ", drained first (left cordoned: it was cordoned before)";
  await clearPending(rc, "docker");
  return `${sync.changed.length} files changed, ${action}${drained}, cgroup driver ${driver}${loaded}`;
}

const DOCKER_BIN = "/usr/bin";
const DAEMON_JSON = "/etc/docker/daemon.json";

export const runtime: StepDef = {
  name: "runtime",
  scope: "host",
  description: "docker: binaries, daemon.json, unit",
  hosts: (inv) => (inv.runtime === "docker" ? kubeletHosts(inv) : []),
  deps: [AFTER_PREPARE],
  run: runRuntime,
  units: ["docker"],
  binaries: REQUIRED_DOCKER,
  nodeRoll: true,
  files: ({ inv, binaries }) => [
    ...groupBinaries(DOCKER_BIN, REQUIRED_DOCKER, binaries.group("docker")),
    templated(DAEMON_JSON, "docker/daemon.json", { execOpt: `native.cgroupdriver=${CGROUP_DRIVER}` }),
    ...preloadedArchives(inv),
    unit("docker", "docker/docker.service"),
  ],
};
