// Operator-side commands for etcd's scheduled backups (steps/etcd-backup.ts ships the timer):
// `binkube etcd backup` takes one now on a member and copies it home; `binkube etcd backups` lists
// what exists on every member and beside the inventory; a restore may name a member's file.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "./errors";
import { Host, Inventory, hostsWithRole } from "./inventory/types";
import { RemoteHost } from "./remote";
import { shq } from "./remote/shell";
import { sshTarget } from "./runner/target";
import { BACKUP_SCRIPT } from "./steps/etcd-backup";
import { localSnapshotDir, rotateLocal } from "./runner/operator-side";
import { SNAPSHOT_DIR } from "./steps/etcd-snapshot";
import { formatTable } from "./util/table";

function member(inv: Inventory, name: string | undefined): Host {
  const members = hostsWithRole(inv, "etcd");
  if (name === undefined) return members[0]!;
  const h = members.find((m) => m.name === name);
  if (!h) throw new BinkubeError(`${name} is not an etcd member (members: ${members.map((m) => m.name).join(", ")})`);
  return h;
}

/** Takes a snapshot now on a member (the shipped script, no stagger delay) and copies it home. */
export async function backupNow(inv: Inventory, hostName: string | undefined, log: (l: string) => void): Promise<string> {
  const h = member(inv, hostName);
  const remote = await RemoteHost.connect(sshTarget(h), { log });
  try {
    const r = await remote.exec(`DELAY_SECONDS=0 ${BACKUP_SCRIPT}`, { allowFail: true, timeoutMs: 600_000 });
    if (r.code !== 0) {
      const missing = /not found|No such file/.test(r.stderr) ? ` (${BACKUP_SCRIPT} is missing: run \`npx cdktf deploy\` first)` : "";
      throw new BinkubeError(`etcd backup on ${h.name} failed${missing}: ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`);
    }
    const m = /^etcd-backup: (\S+) \((.*)\)$/m.exec(r.stdout);
    if (!m) throw new BinkubeError(`etcd backup on ${h.name}: the script did not say which file it wrote: ${r.stdout.trim()}`);
    const dir = localSnapshotDir(inv.baseDir, h.name);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.chmodSync(dir, 0o700);
    const local = path.join(dir, path.basename(m[1]!));
    const got = await remote.fetchFile(m[1]!, local, { timeoutMs: 600_000 });
    fs.chmodSync(local, 0o600);
    rotateLocal(dir, inv.etcdBackup.keep, "scheduled");
    return `etcd backup: ${h.name}:${m[1]} → ${path.relative(process.cwd(), local) || local} (${(got.bytes / 1e6).toFixed(1)} MB; ${m[2]})`;
  } finally {
    await remote.close().catch(() => undefined);
  }
}

export interface BackupRow {
  where: string;
  file: string;
  bytes: number;
  /** Modification time, epoch seconds. */
  mtime: number;
}

/** `stat -c '%s %Y %n'` lines of a member's snapshot directory. */
export function parseListing(where: string, stdout: string): BackupRow[] {
  return stdout
    .split("\n")
    .map((l) => /^(\d+) (\d+) (\/\S+\.db)$/.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ where, file: m[3]!, bytes: Number(m[1]), mtime: Number(m[2]) }));
}

/** Every snapshot on every member (in parallel) and beside the inventory; unreachable members say so. */
export async function listBackups(inv: Inventory, now = Date.now()): Promise<string> {
  const members = hostsWithRole(inv, "etcd");
  const rows: string[][] = [];
  const found = await Promise.all(
    members.map(async (h) => {
      let remote: RemoteHost | undefined;
      try {
        remote = await RemoteHost.connect(sshTarget(h), { retries: 1 });
        const r = await remote.exec(`for f in ${SNAPSHOT_DIR}/*.db; do [ -e "$f" ] && stat -c '%s %Y %n' "$f"; done; true`, { timeoutMs: 60_000 });
        return { h, rows: parseListing(h.name, r.stdout) };
      } catch (e) {
        return { h, error: (e as Error).message.split("\n")[0]! };
      } finally {
        await remote?.close().catch(() => undefined);
      }
    }),
  );
  const age = (mtime: number) => {
    const s = Math.max(0, Math.round(now / 1000 - mtime));
    return s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${(s / 3600).toFixed(1)} h` : `${(s / 86400).toFixed(1)} d`;
  };
  const add = (r: BackupRow, restoreAs: string) => rows.push([r.where, path.basename(r.file), age(r.mtime), `${(r.bytes / 1e6).toFixed(1)} MB`, restoreAs]);
  for (const f of found) {
    if ("error" in f) rows.push([f.h.name, "(unreachable)", "", "", f.error ?? ""]);
    else for (const r of f.rows.sort((a, b) => b.mtime - a.mtime)) add(r, `${f.h.name}:${r.file}`);
  }
  for (const h of members) {
    const dir = localSnapshotDir(inv.baseDir, h.name);
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith(".db")) : [];
    const local = files.map((n) => {
      const st = fs.statSync(path.join(dir, n));
      return { where: `here (${h.name})`, file: path.join(dir, n), bytes: st.size, mtime: Math.round(st.mtimeMs / 1000) };
    });
    for (const r of local.sort((a, b) => b.mtime - a.mtime)) add(r, r.file);
  }
  if (rows.length === 0) return "no etcd snapshot on any member or beside the inventory yet (binkube etcd backup takes one now)";
  return formatTable(["WHERE", "FILE", "AGE", "SIZE", "RESTORE WITH --snapshot"], rows);
}

/** A restore's --snapshot: a local file, or MEMBER:/var/lib/etcd-snapshots/NAME.db (fetched home first). */
export function parseSnapshotRef(inv: Inventory, ref: string): { host: Host; remotePath: string } | undefined {
  const m = /^([^:/]+):(\/.+)$/.exec(ref);
  if (!m) return undefined;
  const host = hostsWithRole(inv, "etcd").find((h) => h.name === m[1]);
  if (!host) return undefined; // a local path with a colon in its first part
  if (!m[2]!.startsWith(`${SNAPSHOT_DIR}/`) || !/^[A-Za-z0-9._-]+\.db$/.test(path.basename(m[2]!)) || m[2]!.includes("/../")) {
    throw new BinkubeError(`--snapshot ${ref}: a member's snapshot is ${SNAPSHOT_DIR}/NAME.db (binkube etcd backups lists them)`);
  }
  return { host, remotePath: m[2]! };
}

/** Copies a member's snapshot home (beside the inventory) for the restore; returns the local path. */
export async function fetchSnapshot(inv: Inventory, ref: { host: Host; remotePath: string }, log: (l: string) => void): Promise<string> {
  const dir = localSnapshotDir(inv.baseDir, ref.host.name);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const local = path.join(dir, path.basename(ref.remotePath));
  if (fs.existsSync(local)) return local;
  const remote = await RemoteHost.connect(sshTarget(ref.host), { log });
  try {
    await remote.exec(`test -f ${shq(ref.remotePath)}`).catch(() => {
      throw new BinkubeError(`${ref.host.name}:${ref.remotePath} does not exist (binkube etcd backups lists what does)`);
    });
    await remote.fetchFile(ref.remotePath, local, { timeoutMs: 600_000 });
    fs.chmodSync(local, 0o600);
    return local;
  } finally {
    await remote.close().catch(() => undefined);
  }
}
