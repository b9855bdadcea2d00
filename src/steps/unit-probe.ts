// What systemd and the file system say about units binkube manages: active, enabled, when the
// main process started, and which of the files it reads at start changed after that. One shell
// round trip for any number of units (a step's own unit; every unit of a host for `binkube check`).
//
// Why compare times instead of recording an intent: a process is stale whenever a file it read
// at start was replaced after it started, whatever did it (a run interrupted between upload and
// restart, a hand copy, a restore from backup). The host's own clock stamps both sides, so the
// comparison needs no clock agreement with the operator's machine. systemd prints the start time
// to the second: a file replaced within the very second its process started, after it, is missed
// (an upload is always followed by the restart, not the other way round).
import { shq } from "../remote/shell";
import type { PlannedFile } from "./types";

export interface UnitProbe {
  unit: string;
  /** `systemctl is-active`: active, inactive, failed, activating… */
  active: string;
  /** `systemctl is-enabled`: enabled, disabled, not-found… */
  enabled: string;
  /** The main process's start, in epoch seconds; undefined when it never started. */
  startedAt?: number;
  /** Files (read at start) modified after the main process started, newest first. */
  stale: { path: string; mtime: number }[];
}

/** The files a unit reads at start: the instance's files but `live` ones. */
export function readAtStart(files: PlannedFile[]): string[] {
  return files.filter((f) => f.live !== true).map((f) => f.path);
}

/**
 * Output lines: `U <unit> A <state>`, `U <unit> E <enabled>`, `U <unit> T <ExecMainStartTimestamp>`
 * (printed in UTC) and `F <mtime> <path>` for each listed file that exists.
 */
export function unitProbeScript(units: { unit: string; paths: string[] }[]): string {
  const lines: string[] = [];
  for (const { unit } of units) {
    const u = shq(unit);
    lines.push(
      `printf 'U %s A %s\\n' ${u} "$(systemctl is-active ${u} 2>/dev/null)"`,
      `printf 'U %s E %s\\n' ${u} "$(systemctl is-enabled ${u} 2>/dev/null)"`,
      `printf 'U %s T %s\\n' ${u} "$(TZ=UTC0 systemctl show -p ExecMainStartTimestamp ${u} 2>/dev/null | cut -d= -f2-)"`,
    );
  }
  const paths = [...new Set(units.flatMap((u) => u.paths))];
  if (paths.length > 0) lines.push(`for f in ${paths.map(shq).join(" ")}; do [ -e "$f" ] && stat -L -c 'F %Y %n' -- "$f"; done`);
  lines.push("true");
  return lines.join("\n");
}

/** systemd's "Fri 2026-12-04 22:00:00 UTC" (TZ=UTC0) as epoch seconds; undefined for "" / "n/a". */
export function parseSystemdTime(text: string): number | undefined {
  const m = /(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)/.exec(text);
  if (!m) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
}

export function parseUnitProbe(stdout: string, units: { unit: string; paths: string[] }[]): Map<string, UnitProbe> {
  const mtimes = new Map<string, number>();
  const raw = new Map<string, { A?: string; E?: string; T?: string }>();
  for (const line of stdout.split("\n")) {
    let m = /^U (\S+) ([AET]) ?(.*)$/.exec(line);
    if (m) {
      const r = raw.get(m[1]!) ?? {};
      r[m[2] as "A" | "E" | "T"] = m[3]!.trim();
      raw.set(m[1]!, r);
      continue;
    }
    m = /^F (\d+) (.+)$/.exec(line);
    if (m) mtimes.set(m[2]!, Number(m[1]));
  }
  const out = new Map<string, UnitProbe>();
  for (const { unit, paths } of units) {
    const r = raw.get(unit) ?? {};
    const startedAt = parseSystemdTime(r.T ?? "");
    const stale =
      startedAt === undefined
        ? []
        : paths
            .flatMap((p) => (mtimes.has(p) && mtimes.get(p)! > startedAt ? [{ path: p, mtime: mtimes.get(p)! }] : []))
            .sort((a, b) => b.mtime - a.mtime);
    out.set(unit, { unit, active: r.A || "unknown", enabled: r.E || "unknown", startedAt, stale });
  }
  return out;
}

/** "kubelet.conf (changed 22:03:04 UTC, process started 22:01:02)" for messages. */
export function describeStale(p: UnitProbe): string {
  const t = (s: number) => new Date(s * 1000).toISOString().slice(11, 19);
  const first = p.stale[0];
  if (!first || p.startedAt === undefined) return "";
  const more = p.stale.length > 1 ? ` and ${p.stale.length - 1} more` : "";
  return `${first.path} changed at ${t(first.mtime)} UTC${more}, after the process started at ${t(p.startedAt)}`;
}
