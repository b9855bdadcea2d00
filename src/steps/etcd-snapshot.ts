// Before a running etcd member is restarted, keep a copy of the keyspace: `etcdctl snapshot
// save` on the member, then the file is copied to the operator's machine beside the inventory
// (.binkube/etcd-snapshots/<host>/), so a lost host does not take its backups with it. Both
// places keep the newest SNAPSHOTS_KEPT. Snapshots hold every Secret: 0700 dirs, 0600 files.
import * as fs from "node:fs";
import * as path from "node:path";
import type { RunContext } from "./types";

export const SNAPSHOT_DIR = "/var/lib/etcd-snapshots";
export const SNAPSHOTS_KEPT = 3;

export function localSnapshotDir(baseDir: string, host: string): string {
  return path.join(baseDir, ".binkube", "etcd-snapshots", host);
}

/** Deletes all but the newest `keep` PREFIX-*.db files of a local directory (snapshot-: before restarts; scheduled-: etcd-backup). */
export function rotateLocal(dir: string, keep: number, prefix = "snapshot"): string[] {
  const snaps = fs.readdirSync(dir).filter((f) => f.startsWith(`${prefix}-`) && f.endsWith(".db")).sort();
  const gone = snaps.slice(0, Math.max(0, snaps.length - keep));
  for (const f of gone) fs.rmSync(path.join(dir, f));
  return gone;
}

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
  const dir = localSnapshotDir(rc.inv.baseDir, rc.host.name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const local = path.join(dir, name);
  const got = await rc.remote.fetchFile(remote, local, { timeoutMs: 600_000 });
  rotateLocal(dir, SNAPSHOTS_KEPT);
  return `snapshot ${path.relative(rc.inv.baseDir, local)} (${(got.bytes / 1e6).toFixed(1)} MB, also ${remote})`;
}
