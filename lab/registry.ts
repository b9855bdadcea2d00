// Machine-wide coordination: one lock, and which lab dir owns which address slot.
// Lives in runDir() (default /run/binkube/lab); survives nothing important: every entry is
// re-validated against the lab dir's own lab.json.
import * as fs from "node:fs";
import * as path from "node:path";
import { MAX_SLOTS, runDir } from "./config";
import { Logger, processAlive, procStartTime, readFileOr, sleep } from "./util";

const LOCK_WAIT_MS = 20 * 60 * 1000;

/** Runs FN while holding the machine-wide lab lock (a pid file; a dead holder's lock is taken over). */
export async function withLabLock<T>(log: Logger, fn: () => Promise<T>): Promise<T> {
  const dir = runDir();
  fs.mkdirSync(dir, { recursive: true });
  const lock = path.join(dir, "lock");
  const me = `${process.pid} ${procStartTime(process.pid) ?? 0}\n`;
  const started = Date.now();
  let told = false;
  for (;;) {
    try {
      fs.writeFileSync(lock, me, { flag: "wx", mode: 0o644 });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const [pidS, stS] = readFileOr(lock, "").trim().split(" ");
    const pid = Number(pidS);
    const st = Number(stS);
    if (!processAlive(pid, Number.isFinite(st) && st > 0 ? st : undefined)) {
      // Holder is gone (killed `lab up`): take the lock over. Rename first so that two waiters
      // cannot both delete-and-create.
      try {
        fs.renameSync(lock, `${lock}.stale-${process.pid}`);
        fs.rmSync(`${lock}.stale-${process.pid}`, { force: true });
      } catch {
        // someone else took it over first
      }
      continue;
    }
    if (!told) {
      log(`waiting for another binkube lab command (pid ${pid}) to finish`);
      told = true;
    }
    if (Date.now() - started > LOCK_WAIT_MS) {
      throw new Error(`timed out waiting for the lab lock ${lock} held by pid ${pid}`);
    }
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    if (readFileOr(lock, "") === me) fs.rmSync(lock, { force: true });
  }
}

interface SlotEntry {
  slot: number;
  dir: string;
}

function slotsDir(): string {
  return path.join(runDir(), "slots");
}

function readEntries(): SlotEntry[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(slotsDir());
  } catch {
    return [];
  }
  const out: SlotEntry[] = [];
  for (const n of names) {
    const m = /^(\d+)\.json$/.exec(n);
    if (!m) continue;
    try {
      const v = JSON.parse(fs.readFileSync(path.join(slotsDir(), n), "utf8")) as { dir?: unknown };
      if (typeof v.dir === "string") out.push({ slot: Number(m[1]), dir: v.dir });
    } catch {
      // unreadable entry: ignore (treated as free)
    }
  }
  return out;
}

/** An entry is live while its lab dir still has a lab.json claiming that slot. */
function entryLive(e: SlotEntry): boolean {
  try {
    const st = JSON.parse(fs.readFileSync(path.join(e.dir, "lab.json"), "utf8")) as { slot?: unknown };
    return st.slot === e.slot;
  } catch {
    return false;
  }
}

/** Slot already held by DIR, if any (call under the lock). */
export function slotOf(dir: string): number | undefined {
  return readEntries().find((e) => e.dir === dir)?.slot;
}

/**
 * Returns DIR's slot, allocating one (call under the lock): PREFERRED if given and free (a lab
 * whose registry entry was lost keeps its addresses), else the lowest free slot.
 */
export function allocateSlot(dir: string, preferred?: number): number {
  const entries = readEntries();
  const mine = entries.find((e) => e.dir === dir);
  if (mine) return mine.slot;
  const used = new Set<number>();
  for (const e of entries) {
    if (entryLive(e)) used.add(e.slot);
    else fs.rmSync(path.join(slotsDir(), `${e.slot}.json`), { force: true });
  }
  const order = [...(preferred !== undefined ? [preferred] : []), ...Array.from({ length: MAX_SLOTS }, (_v, i) => i)];
  for (const s of order) {
    if (!used.has(s)) {
      fs.mkdirSync(slotsDir(), { recursive: true });
      fs.writeFileSync(path.join(slotsDir(), `${s}.json`), JSON.stringify({ dir }) + "\n");
      return s;
    }
  }
  const others = entries.map((e) => e.dir).join(", ");
  throw new Error(`all ${MAX_SLOTS} lab slots are in use (${others}); run 'binkube lab down --dir DIR' on one`);
}

export function releaseSlot(dir: string): void {
  for (const e of readEntries()) {
    if (e.dir === dir) fs.rmSync(path.join(slotsDir(), `${e.slot}.json`), { force: true });
  }
}

/** Lab dirs other than EXCEPT that still hold a slot (the bridge stays while any exists). */
export function otherLiveLabs(except: string): string[] {
  return readEntries()
    .filter((e) => e.dir !== except && entryLive(e))
    .map((e) => e.dir);
}
