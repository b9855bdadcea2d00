// Small process/file helpers shared by the lab modules. No third-party dependencies.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { readFileOr } from "../src/util/fs";

export { processAlive, procStartTime, readFileOr, writeFileAtomic } from "../src/util/fs";
export { sleep } from "../src/util/sleep";

export type Logger = (line: string) => void;

/** Default progress logger: stderr, prefixed, so stdout stays clean for `lab status`. */
export const stderrLogger: Logger = (line) => {
  process.stderr.write(`[lab] ${line}\n`);
};

interface RunResult {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called for every complete line the command prints (stdout and stderr). */
  onLine?: (line: string) => void;
}

/** Runs a command without a shell; never rejects because of a non-zero exit (check `code`). */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...args], {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
    });
    let stdout = "";
    let stderr = "";
    const partial: Record<"out" | "err", string> = { out: "", err: "" };
    const feed = (which: "out" | "err", chunk: string): void => {
      if (!opts.onLine) return;
      partial[which] += chunk;
      let idx: number;
      while ((idx = partial[which].indexOf("\n")) >= 0) {
        opts.onLine(partial[which].slice(0, idx));
        partial[which] = partial[which].slice(idx + 1);
      }
    };
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (c: string) => {
      stdout += c;
      feed("out", c);
    });
    child.stderr.on("data", (c: string) => {
      stderr += c;
      feed("err", c);
    });
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs !== undefined) {
      timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
    }
    child.on("error", (err) => {
      if (timer) clearTimeout(timer);
      reject(new Error(`cannot run ${cmd}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      if (timer) clearTimeout(timer);
      if (opts.onLine) {
        if (partial.out) opts.onLine(partial.out);
        if (partial.err) opts.onLine(partial.err);
      }
      resolve({ code: code ?? -1, signal, stdout, stderr });
    });
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/** Runs a command and throws (with its stderr) unless it exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) {
    const why = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
    const err = (r.stderr || r.stdout).trim().split("\n").slice(-5).join("\n");
    throw new Error(`${cmd} ${args.join(" ")}: ${why}${err ? `\n${err}` : ""}`);
  }
  return r.stdout;
}

/** Looks a program up in PATH (plus the sbin dirs, which a non-login root shell may lack). */
export function which(prog: string): string | undefined {
  const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, prog);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export function procCmdline(pid: number): string[] {
  const raw = readFileOr(`/proc/${pid}/cmdline`, "");
  return raw.split("\0").filter((s) => s.length > 0);
}

/** True when DIR is a mount point (per /proc/self/mountinfo). */
export function isMountPoint(dir: string): boolean {
  const abs = path.resolve(dir);
  const info = readFileOr("/proc/self/mountinfo", "");
  for (const line of info.split("\n")) {
    const f = line.split(" ");
    if (f.length > 4 && unescapeMountPath(f[4]) === abs) return true;
  }
  return false;
}

export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function elapsed(since: bigint): string {
  const ms = Number(process.hrtime.bigint() - since) / 1e6;
  return ms < 10000 ? `${(ms / 1000).toFixed(2)} s` : `${(ms / 1000).toFixed(1)} s`;
}

export function now(): bigint {
  return process.hrtime.bigint();
}

export function tailFile(file: string, lines: number): string {
  const txt = readFileOr(file, "");
  return txt.split("\n").slice(-lines - 1).join("\n").trimEnd();
}
