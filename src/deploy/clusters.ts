// The clusters deployed from this machine: every synth records its inventory in a registry of
// the user's (one file per inventory, so concurrent synths never write the same file), and
// `binkube clusters` lists them with their state backend, last deploy and host count, so an
// operator sees which cluster a command is about to touch. Also: one inventory per directory,
// since pki/ and .binkube/ (state, ledger, locks) live beside the inventory.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import type { Inventory } from "../inventory/types";
import { readFileOr, writeFileAtomic } from "../util/fs";
import { formatTable } from "../util/table";
import { lockHolder } from "./inventory-lock";
import { sha256 } from "../util/hash";

export interface ClusterRecord {
  inventory: string;
  cluster: string;
  stack: string;
  /** "local <state file>" or "pg schema <name>". */
  backend: string;
  /** The binkube checkout that synthesized it last. */
  checkout: string;
  hosts: number;
  lastSynth: string;
  /** ISO time of the last `cdktf deploy` that synthesized it (not `diff` or `synth`). */
  lastDeploy?: string;
}

export function registryDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_STATE_HOME || path.join(os.homedir(), ".local", "state");
  return path.join(base, "binkube", "clusters");
}

const recordFile = (inventory: string, env?: NodeJS.ProcessEnv) => path.join(registryDir(env), `${sha256(inventory).slice(0, 16)}.json`);

export function stateDir(baseDir: string): string {
  return path.join(baseDir, ".binkube");
}

/**
 * Refuses a second inventory in a directory that already holds another one's cluster: both
 * would share pki/ (one CA for two clusters) and .binkube/terraform.tfstate (a deploy of one
 * would plan to delete the other's resources). A recorded inventory that no longer exists
 * (renamed) hands the directory over.
 */
export function claimDirectory(inventory: string, baseDir: string): void {
  const file = path.join(stateDir(baseDir), "inventory");
  const recorded = readFileOr(file, "").trim();
  if (recorded === inventory) return;
  if (recorded && fs.existsSync(recorded)) {
    throw new BinkubeError(
      `${baseDir} already holds the cluster of ${recorded} (its pki/ and .binkube/ state are per directory): ` +
        `put ${path.basename(inventory)} in a directory of its own (mkdir clusters/NAME && mv ${path.basename(inventory)} clusters/NAME/)`,
    );
  }
  writeFileAtomic(file, inventory + "\n");
}

export function recordSynth(inv: Inventory, opts: { stack: string; checkout: string; deploying: boolean; now?: Date; env?: NodeJS.ProcessEnv }): void {
  const file = recordFile(inv.file, opts.env);
  let prev: Partial<ClusterRecord> = {};
  try {
    prev = JSON.parse(fs.readFileSync(file, "utf8")) as ClusterRecord;
  } catch {}
  const now = (opts.now ?? new Date()).toISOString();
  const rec: ClusterRecord = {
    inventory: inv.file,
    cluster: inv.clusterName,
    stack: opts.stack,
    backend: inv.state.backend === "pg" ? `pg schema ${inv.state.schema}` : `local ${path.join(stateDir(inv.baseDir), "terraform.tfstate")}`,
    checkout: opts.checkout,
    hosts: inv.hosts.length,
    lastSynth: now,
    lastDeploy: opts.deploying ? now : prev.lastDeploy,
  };
  writeFileAtomic(file, JSON.stringify(rec, null, 1) + "\n", 0o600);
}

export function readRegistry(env?: NodeJS.ProcessEnv): ClusterRecord[] {
  const dir = registryDir(env);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {}
  const out: ClusterRecord[] = [];
  for (const n of names) {
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(dir, n), "utf8")) as ClusterRecord);
    } catch {} // a torn record is skipped, not fatal to the listing
  }
  return out.sort((a, b) => (a.inventory < b.inventory ? -1 : 1));
}

function age(iso: string | undefined, now: Date): string {
  if (!iso) return "never";
  const s = Math.round((now.getTime() - Date.parse(iso)) / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  if (s < 172800) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** The table `binkube clusters` prints: one row per inventory, the ones deploying now marked. */
export function formatClusters(records: ClusterRecord[], now = new Date()): string {
  if (records.length === 0) return "no cluster deployed from this machine yet (a cdktf deploy records its inventory here)";
  const rows = records.map((r) => {
    const exists = fs.existsSync(r.inventory);
    const holder = exists ? lockHolder(stateDir(path.dirname(r.inventory))) : undefined;
    // a local state's mtime is when Terraform last wrote it: the end of the last apply
    let applied: string | undefined;
    if (r.backend.startsWith("local ")) {
      try {
        applied = fs.statSync(r.backend.slice(6)).mtime.toISOString();
      } catch {}
    }
    const status = !exists ? "inventory gone" : holder ? `deploying now (pid ${holder.pid}: ${holder.command})` : "";
    return [r.cluster, r.inventory, String(r.hosts), r.backend, applied ? `${age(applied, now)} (state written)` : r.lastDeploy ? `${age(r.lastDeploy, now)} (started)` : "never", status];
  });
  return formatTable(["CLUSTER", "INVENTORY", "HOSTS", "STATE", "LAST DEPLOY", "NOW"], rows);
}

/** Drops the records of inventories that no longer exist; returns what it dropped. */
export function pruneRegistry(env?: NodeJS.ProcessEnv): string[] {
  const gone = readRegistry(env).filter((r) => !fs.existsSync(r.inventory));
  for (const r of gone) fs.rmSync(recordFile(r.inventory, env), { force: true });
  return gone.map((r) => r.inventory);
}
