// Before a running etcd member is restarted, keep a copy of the keyspace: `etcdctl snapshot
// save` on the member, then the file is copied to the operator's machine beside the inventory
// (.binkube/etcd-snapshots/<host>/), so a lost host does not take its backups with it. Both
// places keep the newest SNAPSHOTS_KEPT. Snapshots hold every Secret: 0700 dirs, 0600 files.
import * as path from "node:path";
import type { RunContext } from "./types";

export const SNAPSHOT_DIR = "/var/lib/etcd-snapshots";
export const SNAPSHOTS_KEPT = 3;

/**
 * Takes a snapshot of the member's keyspace through `etcdctl` (the step's ETCDCTL command with
 * its client certificate) and copies it home. Returns a summary, or throws with the reason.
 */
export async function snapshotMember(rc: RunContext, etcdctl: string): Promise<string> {
  const name = `snapshot-${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}.db`;
  const remote = `${SNAPSHOT_DIR}/${name}`;
  await rc.sh(
    `mkdir -p -m 0700 ${SNAPSHOT_DIR} && ${etcdctl} --endpoints=https://127.0.0.1:2379 snapshot save ${remote} >/dev/null && chmod 0600 ${remote} && ` +
      `ls -1 ${SNAPSHOT_DIR}/snapshot-*.db | sort | head -n -${SNAPSHOTS_KEPT} | xargs -r rm -f`,
    { timeoutMs: 300_000 },
  );
  const local = path.join(rc.operator.snapshotsHome(rc.host.name), name);
  const got = await rc.remote.fetchFile(remote, local, { timeoutMs: 600_000 });
  rc.operator.rotateSnapshots(rc.host.name, SNAPSHOTS_KEPT);
  return `snapshot ${path.relative(rc.inv.baseDir, local)} (${(got.bytes / 1e6).toFixed(1)} MB, also ${remote})`;
}
