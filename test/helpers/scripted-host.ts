// A scripted cluster for step unit tests: every host answers commands by the first rule whose
// pattern matches, and refuses a command no rule matches (a step that sends something new must
// say so in its test). It records what ran where, what was uploaded and fetched, and the step's
// log lines; a step runs on a fake clock, so its gates poll and time out without wall time.
import { operatorSide } from "../../src/runner/operator-side";
import * as fs from "node:fs";
import * as path from "node:path";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import type { Host, Inventory } from "../../src/inventory/types";
import type { ExecOptions, ExecResult } from "../../src/remote";
import { RemoteError } from "../../src/remote/errors";
import { stepFailure } from "../../src/errors";
import { stepLines } from "../../src/log";
import type { PlannedFile, RunContext, StepDef, StepRemote } from "../../src/steps/types";
import { withClock } from "../../src/util/clock";
import { FakeClock } from "./fake-clock";
import { baseInventory, RawInventory, tempDir } from "./fixtures";

/** An answer, or a function of the command, how often this rule matched (1, 2, …) and the host asked. */
export type Answer = Partial<ExecResult> | ((command: string, n: number, host: string) => Partial<ExecResult>);
export type Rule = [RegExp, Answer];

export interface ScriptOptions {
  /** Rules every host answers with. */
  rules: Rule[];
  /** Rules of one host, tried before `rules` (the first master answers kubectl). */
  on?: Record<string, Rule[]>;
  /** The step's host (default: the inventory's first). */
  host?: string;
  inventory?: RawInventory;
  /** The instance's files (RunContext.files). */
  files?: PlannedFile[];
  /** The paths sync() reports changed (uploaded); the other files are unchanged. */
  changed?: string[];
  firstBringUp?: boolean;
  /** The step whose run() is driven piecemeal (its lines name it before run() does). */
  step?: string;
}

export interface Ran {
  host: string;
  command: string;
}

/** An inventory as a step sees it, beside a temp dir of its own (local files a step writes, e.g. snapshots). */
export function parsedInventory(raw: RawInventory = baseInventory()): Inventory {
  return parseInventory(stringify(raw), path.join(tempDir("binkube-scripted-"), "cluster.yaml")).inventory;
}

export function scriptedHost(opts: ScriptOptions) {
  const inv = parsedInventory(opts.inventory);
  const host = opts.host ? inv.hosts.find((h) => h.name === opts.host)! : inv.hosts[0]!;
  const files = opts.files ?? [];
  const ran: Ran[] = [];
  const uploaded: string[] = [];
  const fetched: string[] = [];
  const logs: string[] = [];
  const counts = new Map<Rule, number>();

  const answer = (on: Host, command: string): ExecResult => {
    const rule = [...(opts.on?.[on.name] ?? []), ...opts.rules].find(([re]) => re.test(command));
    if (!rule) throw new Error(`unscripted command on ${on.name}: ${command}`);
    const n = (counts.get(rule) ?? 0) + 1;
    counts.set(rule, n);
    return { code: 0, stdout: "", stderr: "", ...(typeof rule[1] === "function" ? rule[1](command, n, on.name) : rule[1]) };
  };
  // As the SSH executor: a non-zero exit throws a RemoteError unless allowFail.
  const remoteOf = (on: Host): StepRemote => ({
    exec: async (command: string, o: ExecOptions = {}) => {
      ran.push({ host: on.name, command });
      const r = answer(on, command);
      if (r.code !== 0 && !o.allowFail) throw new RemoteError(on.name, `command failed with exit code ${r.code}: ${command}`, { kind: "exec", command, exitCode: r.code, stderr: r.stderr });
      return r;
    },
    fetchFile: async (remotePath: string, localPath: string) => {
      fetched.push(remotePath);
      fs.writeFileSync(localPath, `fetched ${remotePath}`);
      return { bytes: 0, sha256: "0".repeat(64) };
    },
  });
  const remotes = new Map(inv.hosts.map((h) => [h.name, remoteOf(h)]));
  const remote = remotes.get(host.name)!;
  const firstMaster = inv.hosts.find((h) => h.roles.includes("master"))!;
  const changed = opts.changed ?? [];

  let current = opts.step ?? "?";
  const rc: RunContext = {
    inv,
    host,
    files,
    firstBringUp: opts.firstBringUp === true,
    remote,
    log: (line) => logs.push(line),
    // the step's name is known once run() is called
    note: (line) => stepLines(current, host.name, (l) => logs.push(l)).note(line),
    warn: (line) => stepLines(current, host.name, (l) => logs.push(l)).warn(line),
    sh: (command, o) => remote.exec(command, o),
    sync: async () => {
      uploaded.push(...changed);
      return { changed: [...changed], unchanged: files.map((f) => f.path).filter((p) => !changed.includes(p)), bytesSent: 0, peerBytes: 0, peerFallbacks: 0 };
    },
    controlPlane: async () => remotes.get(firstMaster.name)!,
    onHost: async (h) => remotes.get(h.name)!,
    operator: operatorSide(inv),
  };

  const clock = new FakeClock();
  const commands = () => ran.map((r) => r.command);
  return {
    rc,
    inv,
    ran,
    uploaded,
    fetched,
    logs,
    clock,
    /** Every command sent, on any host, in order. */
    get commands(): string[] {
      return commands();
    },
    /** Index of the first command matching `re` (-1: never sent). */
    index: (re: RegExp) => commands().findIndex((c) => re.test(c)),
    count: (re: RegExp) => commands().filter((c) => re.test(c)).length,
    /**
     * Runs the step on the fake clock. A failure reads as the runner reports it to the operator
     * (`step NAME on HOST failed: …`), so tests check the message the operator gets.
     */
    run: (step: StepDef): Promise<string> =>
      withClock(clock, () => ((current = step.name), step.run(rc))).catch((e: Error) => {
        throw stepFailure(step.name, host.name, e);
      }),
  };
}
