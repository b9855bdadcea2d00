// controller-manager and scheduler share a procedure: sync, (re)start, then wait until the
// component's own /healthz answers on its secure port. Their insecure ports are off (--port=0), so
// the apiserver's componentstatuses (`kubectl get cs`), which in v1.17 probes only the insecure
// ports (http://127.0.0.1:10251, :10252), reports them Unhealthy whatever their state (docs/cis.md).
import { waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion } from "./actions";
import { K8S } from "./files";
import type { RunContext } from "./types";

/** The secure ports of v1.17 (pkg/master/ports): the controller-manager's and the scheduler's. */
export const SECURE_PORT = { "kube-controller-manager": 10257, "kube-scheduler": 10259 } as const;

/**
 * GET /healthz on the component's secure port, on the host itself: anonymous (v1.17 authenticates
 * delegated requests with anonymous allowed, and --authorization-always-allow-paths defaults to
 * /healthz for both components), and without verifying the serving certificate, which each
 * component generates self-signed in memory at its start: a loopback liveness probe, no more.
 */
export const healthzCommand = (unit: keyof typeof SECURE_PORT): string =>
  `${K8S.bin}/kubectl --kubeconfig=/dev/null --server=https://127.0.0.1:${SECURE_PORT[unit]} --insecure-skip-tls-verify=true --request-timeout=5s get --raw /healthz`;

export async function runComponent(rc: RunContext, unit: keyof typeof SECURE_PORT, component: string): Promise<string> {
  const sync = await rc.sync();
  await checkReleaseVersion(rc, unit);
  const action = await applyUnit(rc, unit, sync.changed.length > 0);
  await activeAndHealthy(rc, unit, {}, () =>
    waitFor(
      `${component} healthy on ${rc.host.name} (https://127.0.0.1:${SECURE_PORT[unit]}/healthz)`,
      async () => ((await rc.sh(healthzCommand(unit), { allowFail: true, timeoutMs: 15_000 })).stdout.trim() === "ok" ? true : "not healthy yet"),
      { timeoutMs: 90_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u ${unit} on ${rc.host.name}` },
    ),
  );
  return `${sync.changed.length} files changed, ${action}, healthy`;
}
