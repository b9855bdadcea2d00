// A lock file that names its holder (pid + start time): a holder that is gone, however it went,
// leaves a stale record the next claimant takes over. Used for the per-inventory deploy lock and
// for cdktf.out's shared manifest.
import * as fs from "node:fs";
import { processAlive, writeFileAtomic } from "../util/fs";

export interface Holder {
  pid: number;
  start: number;
}

export function readHolder<T extends Holder>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8")) as T;
  } catch {
    return undefined; // absent, or torn by a crash mid-write (stale)
  }
}

export const alive = (h: Holder | undefined): h is Holder => !!h && processAlive(h.pid, h.start);

/**
 * Claims `file` for `mine`. Returns undefined when the lock is now `mine`'s (also when it already
 * was: same pid and start), or the live holder's record.
 */
export function claim<T extends Holder>(file: string, mine: T): T | undefined {
  for (;;) {
    try {
      fs.writeFileSync(file, JSON.stringify(mine) + "\n", { flag: "wx", mode: 0o600 });
      return undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const held = readHolder<T>(file);
    if (held && held.pid === mine.pid && held.start === mine.start) return undefined;
    if (alive(held)) return held;
    // Stale. An exclusive marker makes sure two claimants do not both replace the stale record
    // (the second would overwrite the first's fresh one).
    const marker = `${file}.takeover`;
    try {
      fs.writeFileSync(marker, String(process.pid), { flag: "wx" });
    } catch {
      try {
        if (Date.now() - fs.statSync(marker).mtimeMs > 10_000) fs.rmSync(marker, { force: true }); // its writer died
      } catch {}
      continue;
    }
    try {
      const again = readHolder<T>(file);
      if (alive(again)) return again;
      writeFileAtomic(file, JSON.stringify(mine) + "\n", 0o600);
      return undefined;
    } finally {
      fs.rmSync(marker, { force: true });
    }
  }
}

/** Removes the lock if `mine` still holds it. */
export function release(file: string, mine: Holder): void {
  const held = readHolder(file);
  if (held && held.pid === mine.pid && held.start === mine.start) fs.rmSync(file, { force: true });
}
