// etcd-backup: scheduled snapshots on every etcd member, so a cluster that runs for months
// without a binkube change still has a recent backup for `binkube etcd restore`. A systemd timer
// (inventory etcd.backup.schedule) starts a oneshot service that runs a shipped script: snapshot
// from the local member, verified, renamed into place, the newest etcd.backup.keep kept.
import { Host, Inventory, hostsWithRole } from "../inventory/types";
import { ETCD, SYSTEMD_DIR, templated, unit } from "./files";
import { SNAPSHOT_DIR } from "./etcd-snapshot";
import { applyUnit } from "./actions";
import { StepDef, RunContext } from "./types";
import { GateError } from "../util/wait";

export const BACKUP_SCRIPT = `${ETCD.bin}/etcd-backup`;
export const BACKUP_TIMER = "etcd-backup.timer";
export const BACKUP_SERVICE = "etcd-backup.service";

/**
 * Seconds a member's scheduled run waits before its snapshot: 60 s per member in inventory order,
 * so the members of one cluster never snapshot at once (a snapshot streams the whole keyspace and
 * writes it to disk). systemd's RandomizedDelaySec would be random and could still coincide.
 */
export function backupDelay(inv: Inventory, host: Host): number {
  return 60 * Math.max(0, hostsWithRole(inv, "etcd").findIndex((h) => h.name === host.name));
}

async function runBackup(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  const action = await applyUnit(rc, BACKUP_TIMER, sync.changed.length > 0);
  const next = (await rc.sh(`systemctl is-active ${BACKUP_TIMER}; TZ=UTC0 systemctl show -p NextElapseUSecRealtime --value ${BACKUP_TIMER}`, { allowFail: true })).stdout.trim().split("\n");
  if (next[0] !== "active") throw new GateError(`${BACKUP_TIMER} is ${next[0] ?? "unknown"} on ${rc.host.name} after start. Fix: systemctl status ${BACKUP_TIMER} on ${rc.host.name}`);
  return `${sync.changed.length} files changed, ${action}, next snapshot ${next[1] || "(not scheduled yet)"} (schedule "${rc.inv.etcdBackup.schedule}", ${rc.inv.etcdBackup.keep} kept)`;
}

export const etcdBackup: StepDef = {
  name: "etcd-backup",
  scope: "host",
  description: "scheduled etcd snapshots: script, service, timer",
  hosts: (inv) => hostsWithRole(inv, "etcd"),
  deps: [
    { step: "etcd", on: "same-host", why: "the snapshot is taken from the member on the same host, with the client certificate the etcd step ships there" },
  ],
  units: [BACKUP_TIMER],
  jobs: [BACKUP_SERVICE],
  run: runBackup,
  files: ({ inv }, host) => [
    templated(
      BACKUP_SCRIPT,
      "etcd/etcd-backup.sh",
      {
        snapshotDir: SNAPSHOT_DIR,
        keep: inv.etcdBackup.keep,
        etcdctl: `${ETCD.bin}/etcdctl`,
        cacert: `${ETCD.ssl}/ca.pem`,
        cert: `${ETCD.ssl}/healthcheck-client.pem`,
        key: `${ETCD.ssl}/healthcheck-client-key.pem`,
      },
      0o755,
    ),
    unit("etcd-backup", "etcd/etcd-backup.service", { delaySeconds: backupDelay(inv, host), script: BACKUP_SCRIPT }),
    templated(`${SYSTEMD_DIR}/${BACKUP_TIMER}`, "etcd/etcd-backup.timer", { schedule: inv.etcdBackup.schedule }),
  ],
};
