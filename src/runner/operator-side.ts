// The operator's side of a deploy, as steps reach it through RunContext.operator (steps/types.ts):
// the files under pki/ and .binkube/ that steps read or write live behind this one interface.
import * as fs from "node:fs";
import * as path from "node:path";
import { forgetHost } from "../inventory/ledger";
import type { Inventory } from "../inventory/types";
import { readApplied, readEncryptionKeys, recordApplied } from "../pki/encryption";
import type { OperatorSide } from "../steps/types";
import { lockHolder } from "../deploy/inventory-lock";
import { stateDir } from "../deploy/clusters";
import { readStepsLog } from "./steps-log";

/** Where a host's etcd snapshots are kept beside the inventory (before restarts and scheduled backups). */
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

export function operatorSide(inv: Inventory): OperatorSide {
  return {
    encryptionKeys: () => readEncryptionKeys(inv.pkiDir),
    appliedEncryptionKeys: () => readApplied(inv.pkiDir),
    recordAppliedEncryptionKeys: (names) => recordApplied(inv.pkiDir, names),
    forgetHost: (name) => forgetHost(inv, name),
    snapshotsHome: (host) => {
      const dir = localSnapshotDir(inv.baseDir, host);
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      return dir;
    },
    rotateSnapshots: (host, keep) => rotateLocal(localSnapshotDir(inv.baseDir, host), keep),
    deployStartedAt: () => {
      const holder = lockHolder(stateDir(inv.baseDir));
      return holder ? Date.parse(holder.since) : undefined;
    },
    failedRunsSince: (since) => readStepsLog(inv.baseDir).filter((e) => e.outcome === "failed" && e.at >= since).map((e) => ({ step: e.step, host: e.host })),
  };
}
