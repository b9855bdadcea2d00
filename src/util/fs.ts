// Local files written whole or not at all, and facts about local processes (for lock files and
// the lab's pid files).
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

/** Writes a file atomically: a temp name in the same directory (0700 if created), then rename. */
export function writeFileAtomic(file: string, content: string | Buffer, mode = 0o644): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString("hex")}`;
  fs.writeFileSync(tmp, content, { mode });
  fs.chmodSync(tmp, mode); // umask may have narrowed it; make it exact
  fs.renameSync(tmp, file);
}

export function readFileOr(file: string, fallback: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

/** The start time (clock ticks since boot) of a process, from /proc/PID/stat, or undefined if gone. */
export function procStartTime(pid: number): number | undefined {
  const stat = readFileOr(`/proc/${pid}/stat`, "");
  if (!stat) return undefined;
  // comm may contain spaces/parens: fields start after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state); starttime is field 22.
  const v = Number(rest[22 - 3]);
  return Number.isFinite(v) ? v : undefined;
}

function procState(pid: number): string | undefined {
  const stat = readFileOr(`/proc/${pid}/stat`, "");
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
}

/**
 * True when PID is alive, not a zombie, and (when given) has the same start time as recorded,
 * so a recycled PID is never mistaken for ours.
 */
export function processAlive(pid: number | null | undefined, startTime?: number | null): boolean {
  if (!pid || pid <= 0) return false;
  const state = procState(pid);
  if (state === undefined || state === "Z" || state === "X") return false;
  if (startTime !== undefined && startTime !== null && procStartTime(pid) !== startTime) return false;
  return true;
}

/** The parent pid of a process, from /proc/PID/stat (field 4), or undefined if gone. */
export function procParent(pid: number): number | undefined {
  const stat = readFileOr(`/proc/${pid}/stat`, "");
  if (!stat) return undefined;
  const v = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  return Number.isFinite(v) ? v : undefined;
}

/** A process's command line as words (empty if gone or unreadable). */
export function procArgv(pid: number): string[] {
  return readFileOr(`/proc/${pid}/cmdline`, "").split("\0").filter((w) => w !== "");
}
