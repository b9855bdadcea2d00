// The host ledger (.binkube/hosts.json beside the inventory): every host binkube has deployed
// to, with what is needed to reach it (no secrets). A host that leaves the inventory stays in
// the ledger until `binkube remove` has drained it; that is how removal knows what to undo.
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "../util/fs";
import { Host, Inventory } from "./types";

export type Ledger = Record<string, Host>;

export function ledgerPath(inv: Inventory): string {
  return path.join(inv.baseDir, ".binkube", "hosts.json");
}

export function readLedger(inv: Inventory): Ledger {
  try {
    return JSON.parse(fs.readFileSync(ledgerPath(inv), "utf8")) as Ledger;
  } catch {
    return {};
  }
}

/** Records the inventory's hosts; returns the hosts that left it and still await removal. */
export function updateLedger(inv: Inventory): Host[] {
  const ledger = readLedger(inv);
  const current = new Set(inv.hosts.map((h) => h.name));
  const removed = Object.values(ledger).filter((h) => !current.has(h.name));
  for (const h of inv.hosts) ledger[h.name] = h;
  writeFileAtomic(ledgerPath(inv), JSON.stringify(ledger, null, 2) + "\n", 0o644);
  return removed;
}

/**
 * Removes one host. Under a lock: Terraform runs the teardowns (and removals) of several hosts at
 * once, each its own process, and two read-modify-writes would lose one of the deletions.
 */
export function forgetHost(inv: Inventory, name: string): void {
  withLedgerLock(inv, () => {
    const ledger = readLedger(inv);
    delete ledger[name];
    writeFileAtomic(ledgerPath(inv), JSON.stringify(ledger, null, 2) + "\n", 0o644);
  });
}

/**
 * A directory as the lock (mkdir is atomic; a lock file's holder record can be read half
 * written). It is held for one small write: one older than 10 s was left by a process that died.
 */
function withLedgerLock(inv: Inventory, f: () => void): void {
  const lock = `${ledgerPath(inv)}.lock`;
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (const t0 = Date.now(); ; Atomics.wait(pause, 0, 0, 10)) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    try {
      if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmdirSync(lock);
    } catch {
      // released meanwhile
    }
    if (Date.now() - t0 > 30_000) throw new Error(`host ledger: ${lock} held for 30 s; remove it if no binkube process runs, then re-run`);
  }
  try {
    f();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** etcd quorum after removing one member: the healthy remaining members must be a majority. */
export function removalKeepsQuorum(members: number, healthyRemaining: number): boolean {
  const remaining = members - 1;
  return remaining >= 1 && healthyRemaining >= Math.floor(remaining / 2) + 1;
}
