/**
 * A real OpenSSH server for tests and benchmarks: `/usr/sbin/sshd -D -f CONFIG -e` on 127.0.0.1
 * and a free high port, with a generated ed25519 host key and an authorized_keys for a
 * generated client key, everything in a temp dir. No mocks.
 *
 * CI installs the server with `apt-get install -y openssh-server`; when it is missing,
 * `sshdMissingReason()` says so and the tests t.skip with that reason.
 */
import { spawn, execFileSync, type ChildProcess } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export const SSHD_PATH = "/usr/sbin/sshd";

export interface TestSshd {
  /** temp dir holding config, keys, known_hosts, and a scratch area `dir/files` */
  readonly dir: string;
  readonly address: "127.0.0.1";
  readonly port: number;
  readonly user: string;
  readonly clientKeyPath: string;
  /** plain known_hosts with a `[127.0.0.1]:port` entry for this server's host key */
  readonly knownHostsPath: string;
  /** the host key's fingerprint as `ssh-keygen -lf` prints it: "SHA256:…" */
  readonly hostFingerprint: string;
  /** the public host key line ("ssh-ed25519 AAAA…") */
  readonly hostPublicKey: string;
  readonly pid: number;
  /** SIGKILL every per-connection sshd process (simulates a dropped link); the listener stays. */
  killConnections(): number;
  /** everything sshd wrote to stderr so far (for assertion messages) */
  output(): string;
  stop(): Promise<void>;
}

/** Why sshd-based tests cannot run here, or undefined when they can. */
export function sshdMissingReason(): string | undefined {
  if (!fs.existsSync(SSHD_PATH)) {
    return `${SSHD_PATH} not found: install it with \`apt-get install -y openssh-server\``;
  }
  try {
    execFileSync("ssh-keygen", ["-?"], { stdio: "ignore" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "ssh-keygen not found (package openssh-client)";
  }
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function keygen(file: string, comment: string): void {
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", file], { stdio: "ignore" });
}

/** `ssh-keygen -lf FILE` → "SHA256:…" */
export function fingerprintOf(pubKeyFile: string): string {
  const out = execFileSync("ssh-keygen", ["-lf", pubKeyFile], { encoding: "utf8" });
  const fp = out.split(/\s+/)[1];
  if (!fp || !fp.startsWith("SHA256:")) throw new Error(`unexpected ssh-keygen -lf output: ${out}`);
  return fp;
}

/** Generate a fresh ed25519 key pair at FILE / FILE.pub. */
export function generateKey(file: string, comment = "binkube-test"): void {
  keygen(file, comment);
}

async function waitForBanner(port: number, child: ChildProcess, deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error("sshd exited during start-up");
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port });
      const done = (v: boolean) => {
        s.destroy();
        resolve(v);
      };
      s.setTimeout(1000, () => done(false));
      s.once("error", () => done(false));
      s.once("data", (d) => done(d.toString("latin1").startsWith("SSH-")));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`sshd did not answer on 127.0.0.1:${port} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const ent of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(ent)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${ent}/stat`, "utf8");
    } catch {
      continue;
    }
    // pid (comm) state ppid …  — comm may contain spaces/parens: parse after the last ')'
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (Number(rest[1]) === pid) out.push(Number(ent));
  }
  return out;
}

function isSshd(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sshd";
  } catch {
    return false; // gone
  }
}

function descendantsOf(pid: number): number[] {
  const all: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const c of childrenOf(p)) {
      all.push(c);
      queue.push(c);
    }
  }
  return all;
}

export interface StartSshdOptions {
  /** extra sshd_config lines (they take precedence over the defaults) */
  extraConfig?: string[];
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<TestSshd> {
  const missing = sshdMissingReason();
  if (missing) throw new Error(missing);
  // privilege separation directory: sshd started as root refuses to run without it
  if (process.getuid?.() === 0) fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "binkube-sshd-"));
  fs.mkdirSync(path.join(dir, "files"));
  const hostKey = path.join(dir, "ssh_host_ed25519_key");
  const clientKey = path.join(dir, "client_ed25519");
  keygen(hostKey, "binkube-test-host");
  keygen(clientKey, "binkube-test-client");
  const authorizedKeys = path.join(dir, "authorized_keys");
  fs.copyFileSync(`${clientKey}.pub`, authorizedKeys);
  fs.chmodSync(authorizedKeys, 0o600);
  const hostPublicKey = fs.readFileSync(`${hostKey}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
  const user = os.userInfo().username;

  let lastErr: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const config = path.join(dir, "sshd_config");
    fs.writeFileSync(
      config,
      [
        // sshd_config: the first value of a keyword wins, so extra lines go first
        ...(opts.extraConfig ?? []),
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${authorizedKeys}`,
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "StrictModes no",
        "UsePAM no",
        "AllowTcpForwarding yes",
        "MaxStartups 100:30:200",
        "MaxSessions 20",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        "",
      ].join("\n"),
    );
    const knownHostsPath = path.join(dir, "known_hosts");
    fs.writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${hostPublicKey}\n`);

    const child = spawn(SSHD_PATH, ["-D", "-f", config, "-e"], { stdio: ["ignore", "ignore", "pipe"] });
    let output = "";
    child.stderr?.on("data", (d: Buffer) => {
      output += d.toString();
      if (output.length > 100_000) output = output.slice(-50_000);
    });
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    try {
      await waitForBanner(port, child, 5000);
    } catch (err) {
      lastErr = new Error(`${(err as Error).message}; sshd said: ${output.trim() || "(nothing)"}`);
      child.kill("SIGKILL");
      await exited;
      continue; // most likely a port race: try another port
    }
    const pid = child.pid as number;
    const kill = (pids: number[]): number => {
      for (const p of pids) {
        try {
          process.kill(p, "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      return pids.length;
    };
    // Only the per-connection sshd processes: that cuts every connection, while the commands
    // they ran end on their own (SIGKILLing a login shell mid-startup can leave its rc files'
    // lock files behind, e.g. pyenv's rehash lock, which then stalls every later session 60 s).
    const killConnections = (): number => kill(descendantsOf(pid).filter(isSshd));
    return {
      dir,
      address: "127.0.0.1",
      port,
      user,
      clientKeyPath: clientKey,
      knownHostsPath,
      hostFingerprint: fingerprintOf(`${hostKey}.pub`),
      hostPublicKey,
      pid,
      killConnections,
      output: () => output,
      stop: async () => {
        kill(descendantsOf(pid));
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM");
          const t = setTimeout(() => child.kill("SIGKILL"), 3000);
          await exited;
          clearTimeout(t);
        }
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}
