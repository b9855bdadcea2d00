// Child processes for end-to-end tests: bounded in time, output captured.
import { spawn } from "node:child_process";

export interface Res {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<Res> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: opts.env ?? process.env, cwd: opts.cwd });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    c.on("error", reject);
    c.on("close", (code) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr, ms: Date.now() - start });
    });
  });
}

/** Removes terminal colour codes (cdktf output). */
export function plain(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "");
}
