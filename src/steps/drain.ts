// Cordon and drain a node before its containers would die (a docker upgrade), uncordon it once it
// is Ready again. The intent survives a failed run in a marker on the node, so a re-run after a
// blocked drain drains again and restarts what the first run did not, instead of seeing no
// changed file and leaving the old daemon running.
import { shq } from "../remote/shell";
import { GateError, waitFor } from "../util/wait";
import { KUBECTL, kubectl, nodeReadyStatus } from "./actions";
import type { RunContext, StepRemote } from "./types";

const PENDING_DIR = "/var/lib/binkube";

/** What a pending restart of UNIT still owes: the restart itself, and the uncordon if binkube cordoned. */
export interface PendingRestart {
  unit: string;
  /** The node is drained before the restart. */
  drain: boolean;
  /** binkube cordons the node for it, and uncordons it after (an operator's cordon is left alone). */
  cordonedByBinkube: boolean;
}

const markerPath = (unit: string) => `${PENDING_DIR}/${unit}.restart-pending`;

export async function readPending(rc: RunContext, unit: string): Promise<PendingRestart | undefined> {
  const r = await rc.sh(`cat ${shq(markerPath(unit))} 2>/dev/null || true`);
  const text = r.stdout.trim();
  if (!text) return undefined;
  return { unit, drain: /\bdrain\b/.test(text), cordonedByBinkube: text.includes("cordoned-by-binkube") };
}

export async function writePending(rc: RunContext, p: PendingRestart): Promise<void> {
  const words = ["restart", ...(p.drain ? ["drain"] : []), ...(p.cordonedByBinkube ? ["cordoned-by-binkube"] : [])].join(" ");
  await rc.sh(`mkdir -p -m 0700 ${PENDING_DIR} && echo ${shq(words)} > ${shq(markerPath(p.unit))}`);
}

export async function clearPending(rc: RunContext, unit: string): Promise<void> {
  await rc.sh(`rm -f ${shq(markerPath(unit))}`);
}

export async function isCordoned(control: StepRemote, node: string): Promise<boolean> {
  return (await kubectl(control, `get node ${shq(node)} -o jsonpath={.spec.unschedulable}`)).trim() === "true";
}

/**
 * Cordons the node and evicts its pods (DaemonSets stay; emptyDir data goes, as with any drain).
 * A drain that cannot finish (a PodDisruptionBudget, a pod without a controller) fails with
 * kubectl's reason and leaves the node cordoned: the roll stops here.
 */
export async function cordonAndDrain(rc: RunContext, control: StepRemote, why: string): Promise<void> {
  const node = shq(rc.host.name);
  await control.exec(`${KUBECTL} cordon ${node}`);
  const timeout = rc.inv.rolling.drainTimeoutSeconds;
  rc.note(`draining before ${why} (up to ${timeout} s)`);
  const r = await control.exec(`${KUBECTL} drain ${node} --ignore-daemonsets --delete-local-data --timeout=${timeout}s 2>&1`, { allowFail: true, timeoutMs: (timeout + 60) * 1000 });
  if (r.code !== 0) {
    const lines = r.stdout.trim().split("\n");
    // what blocked the evictions (once each, pod names folded), then kubectl's verdict
    const blocked = [...new Set(lines.filter((l) => /cannot evict|disruption budget|cannot delete/i.test(l)).map((l) => l.replace(/pods?\/?"[^"]*"(?: -n "[^"]*")?/g, "a pod").trim()))].slice(0, 2);
    const verdict = lines.filter((l) => /^error:/.test(l.trim())).slice(-1);
    const reason = [...blocked, ...verdict].join("\n    ") || lines.slice(-3).join("\n    ");
    throw new GateError(
      `drain of ${rc.host.name} did not finish within ${timeout} s, so ${why} did not happen; ${rc.host.name} stays cordoned and the roll stops here. kubectl drain said:\n    ${reason}\n` +
        `Fix what blocks the eviction (a PodDisruptionBudget that allows no disruption, a pod without a controller), then re-run cdktf deploy: it drains again and carries on`,
    );
  }
}

/** Waits until the node is Ready again, then uncordons it. */
export async function uncordonWhenReady(rc: RunContext, control: StepRemote): Promise<void> {
  const node = shq(rc.host.name);
  await waitFor(
    `node ${rc.host.name} Ready again`,
    async () => ((await nodeReadyStatus(control, rc.host.name)) === "True" ? true : "not Ready"),
    { timeoutMs: 180_000, intervalMs: 2000, log: rc.log, fix: `check journalctl -u kubelet -u docker on ${rc.host.name}; it stays cordoned until it is Ready (kubectl uncordon ${rc.host.name} by hand)` },
  );
  await control.exec(`${KUBECTL} uncordon ${node}`);
}
