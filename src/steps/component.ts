// controller-manager and scheduler share a procedure: sync, (re)start, then wait until the
// component's own /healthz answers on its secure port. Their insecure ports are off (--port=0), so
// the apiserver's componentstatuses (`kubectl get cs`), which in v1.17 probes only the insecure
// ports (http://127.0.0.1:10251, :10252), reports them Unhealthy whatever their state (docs/cis.md).
import { GateError, waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion } from "./actions";
import type { RunContext } from "./types";

/** The secure ports of v1.17 (pkg/master/ports): the controller-manager's and the scheduler's. */
export const SECURE_PORT = { "kube-controller-manager": 10257, "kube-scheduler": 10259 } as const;

/**
 * GET /healthz on the component's secure port, on the host itself, anonymously: v1.17's delegated
 * authentication lets anonymous requests through and --authorization-always-allow-paths defaults
 * to /healthz for both components (every other path, /metrics included, is refused to anonymous).
 * The serving certificate is one each component makes self-signed at its start, so it is not
 * verified: a loopback liveness probe, no more. curl, not kubectl: kubectl with no credentials
 * prompts for a username instead of asking the server (seen in the lab: "Please enter Username").
 */
export const healthzCommand = (unit: keyof typeof SECURE_PORT): string =>
  `command -v curl >/dev/null || { echo no-curl; exit 0; }; curl -sk --max-time 5 https://127.0.0.1:${SECURE_PORT[unit]}/healthz`;

export async function runComponent(rc: RunContext, unit: keyof typeof SECURE_PORT, component: string): Promise<string> {
  const sync = await rc.sync();
  await checkReleaseVersion(rc, unit);
  const action = await applyUnit(rc, unit, sync.changed.length > 0);
  await activeAndHealthy(rc, unit, {}, () =>
    waitFor(
      `${component} healthy on ${rc.host.name} (https://127.0.0.1:${SECURE_PORT[unit]}/healthz)`,
      async () => {
        const out = (await rc.sh(healthzCommand(unit), { allowFail: true, timeoutMs: 15_000 })).stdout.trim();
        if (out === "no-curl") throw new GateError(`curl is not installed on ${rc.host.name}: ${component}'s health check needs it (its insecure port is off). Fix: install curl on the masters, then re-run`);
        return out === "ok" ? true : "not healthy yet";
      },
      { timeoutMs: 90_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u ${unit} on ${rc.host.name}` },
    ),
  );
  return `${sync.changed.length} files changed, ${action}, healthy`;
}
