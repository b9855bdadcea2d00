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
  /** The process that last brought the lab up (pid and /proc start time), if recorded. */
  owner?: { pid: number; start: number | null };
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
      const v = JSON.parse(fs.readFileSync(path.join(slotsDir(), n), "utf8")) as { dir?: unknown; owner?: { pid?: unknown; start?: unknown } };
      if (typeof v.dir !== "string") continue;
      const owner = typeof v.owner?.pid === "number" ? { pid: v.owner.pid, start: typeof v.owner.start === "number" ? v.owner.start : null } : undefined;
      out.push({ slot: Number(m[1]), dir: v.dir, owner });
    } catch {
      // unreadable entry: ignore (treated as free)
    }
  }
  return out;
}

/**
 * An entry is live while its lab dir still has a lab.json claiming that slot and something of it
 * still runs: one of its hosts, or the process that brought it up (a suite that has powered every
 * host off keeps its slot). A lab whose processes were all killed (a test run cut off by a
 * restart of this machine's session) leaves both files behind; its slot is free again, or the
 * next run would get other addresses than the ones the e2e suites expect.
 */
function entryLive(e: SlotEntry): boolean {
  let st: { slot?: unknown; hosts?: { pid?: unknown; pidStartTime?: unknown }[] };
  try {
    st = JSON.parse(fs.readFileSync(path.join(e.dir, "lab.json"), "utf8")) as typeof st;
  } catch {
    return false;
  }
  if (st.slot !== e.slot) return false;
  if (e.owner && processAlive(e.owner.pid, e.owner.start ?? undefined)) return true;
  return (st.hosts ?? []).some((h) => typeof h.pid === "number" && processAlive(h.pid, typeof h.pidStartTime === "number" ? h.pidStartTime : undefined));
}

function writeEntry(slot: number, dir: string): void {
  fs.mkdirSync(slotsDir(), { recursive: true });
  const owner = { pid: process.pid, start: procStartTime(process.pid) ?? null };
  fs.writeFileSync(path.join(slotsDir(), `${slot}.json`), JSON.stringify({ dir, owner }) + "\n");
}

/**
 * Returns DIR's slot, allocating one (call under the lock): PREFERRED if given and free (a lab
 * whose registry entry was lost keeps its addresses), else the lowest free slot.
 */
export function allocateSlot(dir: string, preferred?: number, log?: Logger): number {
  const entries = readEntries();
  const mine = entries.find((e) => e.dir === dir);
  if (mine) {
    writeEntry(mine.slot, dir); // this process owns it now
    return mine.slot;
  }
  const used = new Set<number>();
  for (const e of entries) {
    if (entryLive(e)) {
      used.add(e.slot);
      continue;
    }
    fs.rmSync(path.join(slotsDir(), `${e.slot}.json`), { force: true });
    log?.(`slot ${e.slot} freed: nothing of ${e.dir} runs any more (its lab.json stays; 'binkube lab down --dir ${e.dir}' removes it)`);
  }
  const order = [...(preferred !== undefined ? [preferred] : []), ...Array.from({ length: MAX_SLOTS }, (_v, i) => i)];
  for (const s of order) {
    if (!used.has(s)) {
      writeEntry(s, dir);
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
