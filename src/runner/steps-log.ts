// steps.log beside the inventory (.binkube/steps.log): one line per step run and per host staged
// ahead, appended by the runner, read by operators, bench:deploy and the cluster e2e (where the
// time went, what crossed which link). Names, sizes and times only: never a secret.
import * as fs from "node:fs";
import * as path from "node:path";

export const stepsLogPath = (baseDir: string): string => path.join(baseDir, ".binkube", "steps.log");

/** Appends one line, stamped with the time it is written (the end of what it records). */
export function record(baseDir: string, line: string): void {
  fs.mkdirSync(path.dirname(stepsLogPath(baseDir)), { recursive: true });
  fs.appendFileSync(stepsLogPath(baseDir), `${new Date().toISOString()} ${line}\n`);
}

/**
 * One line: `TIME STEP HOST ok SECSs BYTESB start=… plan=… connect=… upload=… work=… gate=… [peer=… fallbacks=…]`
 * for a step run, `TIME STEP HOST skipped`, `TIME STEP HOST failed SECSs` for a run that ended in
 * an error, `TIME stage HOST staged SECSs BYTESB peer=… files=…` for a host's binaries sent ahead.
 */
export interface StepsLogEntry {
  /** when the line was written, epoch ms */
  at: number;
  /** the step's name, "stage" for staging */
  step: string;
  host: string;
  outcome: "ok" | "skipped" | "staged" | "failed";
  secs: number;
  /** bytes over the operator's link */
  bytes: number;
  /** the key=value fields: the phases' seconds, peer (bytes copied from other hosts), fallbacks, files */
  fields: Record<string, number>;
}

const OUTCOMES: readonly string[] = ["ok", "skipped", "staged", "failed"] satisfies StepsLogEntry["outcome"][];

export function parseStepsLogLine(line: string): StepsLogEntry | undefined {
  const [at, step, host, outcome, secs, bytes] = line.trim().split(" ");
  if (!at || !step || !host || !OUTCOMES.includes(outcome as StepsLogEntry["outcome"])) return undefined;
  const fields = Object.fromEntries([...line.matchAll(/ (\w+)=([\d.]+)/g)].map((m) => [m[1]!, Number(m[2])]));
  return { at: Date.parse(at), step, host, outcome: outcome as StepsLogEntry["outcome"], secs: Number(secs?.replace(/s$/, "") ?? 0) || 0, bytes: Number(bytes?.replace(/B$/, "") ?? 0) || 0, fields };
}

/** The entries written after byte `from` of the inventory's steps.log (none when there is no log). */
export function readStepsLog(baseDir: string, from = 0): StepsLogEntry[] {
  const file = stepsLogPath(baseDir);
  if (!fs.existsSync(file)) return [];
  return fs.readFileSync(file).subarray(from).toString("utf8").split("\n").flatMap((l) => parseStepsLogLine(l) ?? []);
}

/** The log's size now: the `from` of a later readStepsLog that sees only what came after. */
export const stepsLogSize = (baseDir: string): number => (fs.existsSync(stepsLogPath(baseDir)) ? fs.statSync(stepsLogPath(baseDir)).size : 0);
