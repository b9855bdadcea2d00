// controller-manager and scheduler share a procedure: sync, (re)start, then wait until the
// apiserver reports the component healthy (componentstatuses reads its local healthz port).
import { waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion, kubectl } from "./actions";
import type { RunContext } from "./types";

export async function runComponent(rc: RunContext, unit: string, component: string): Promise<string> {
  const sync = await rc.sync();
  await checkReleaseVersion(rc, unit);
  const action = await applyUnit(rc, unit, sync.changed.length > 0);
  await activeAndHealthy(rc, unit, {}, () =>
    waitFor(
      `${component} healthy on ${rc.host.name}`,
      async () => {
        const out = await kubectl(rc.remote, `get --raw /api/v1/componentstatuses/${component}`, { allowFail: true });
        return /"type":"Healthy","status":"True"/.test(out) ? true : "not healthy yet";
      },
      { timeoutMs: 90_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u ${unit} on ${rc.host.name}` },
    ),
  );
  return `${sync.changed.length} files changed, ${action}, healthy`;
}
