// Scripted answers (scripted-host.ts rules) for the commands every restarting step sends through
// steps/actions.ts: the unit probe, systemctl (re)start, the crash-loop watch, the release check.
import type { Rule } from "./scripted-host";

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** systemd's start time of every probed unit: 2026-12-04 22:00:00 UTC. */
export const STARTED = "Fri 2026-12-04 22:00:00 UTC";
/** Epoch seconds `minutes` after STARTED (a file's mtime in a probe). */
export const at = (minutes: number): number => Date.UTC(2026, 11, 4, 22, minutes, 0) / 1000;

/**
 * The unit probe (steps/unit-probe.ts) of `unit`: its state, and files (path, mtime in epoch
 * seconds) newer than its start. A unit that is not "active" reports no start time.
 */
export function probe(unit: string, state = "active", newer: [string, number][] = []): Rule {
  const started = state === "active" ? STARTED : "";
  return [new RegExp(`^printf 'U %s A %s\\\\n' ${esc(unit)} `), { stdout: [`U ${unit} A ${state}`, `U ${unit} E enabled`, `U ${unit} T ${started}`, ...newer.map(([p, t]) => `F ${t} ${p}`)].join("\n") }];
}

/** applyUnit's daemon-reload, enable and start or restart (either: tests tell them apart by the command sent). */
export const systemctlStart = (unit: string): Rule => [new RegExp(`^systemctl daemon-reload && systemctl enable --quiet ${esc(unit)} && systemctl (re)?start (--no-block )?${esc(unit)}$`), {}];

/** waitActive's poll: the unit active, never restarted by systemd. */
export const staysActive = (unit: string): Rule => [new RegExp(`^systemctl show -p ActiveState -p NRestarts ${esc(unit)}$`), { stdout: "ActiveState=active\nNRestarts=0\n" }];

/** The journal tail a failed gate quotes. */
export const journal = (unit: string, lines = "the last journal line"): Rule => [new RegExp(`^journalctl -u ${esc(unit)} `), { stdout: `${lines}\n` }];

/** checkReleaseVersion's `--version` of a shipped binary (any path, any loader prefix), answering `output`. */
export const version = (binary: string, output: string): Rule => [new RegExp(`${esc(binary)}'? (--version|-v) 2>&1 \\| head -n3$`), { stdout: `${output}\n` }];

/** Index of the command that restarts `unit` (-1: it was never restarted). */
export const restartOf = (unit: string): RegExp => new RegExp(`systemctl restart (--no-block )?${esc(unit)}$`);

/** The runtime steps' look for another runtime's unit as binkube ships it: `present` names the runtime found there. */
export const otherRuntime = (present?: "docker" | "containerd"): Rule => [/^if grep -qsF -- ('--config [^']*'|--config-file=\S+) \/usr\/lib\/systemd\/system\/(docker|containerd)\.service; then echo present (docker|containerd); fi$/, { stdout: present ? `present ${present}\n` : "" }];
