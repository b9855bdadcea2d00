/**
 * Running commands on a connected host: the sudo / host-side deadline wrapper, the client-side
 * timeout, exit-code checking, and the errors for a lost connection.
 */
import type { NodeSSH } from "node-ssh";
import type { Link } from "./connect";
import { RemoteError, errorMessage, lastLines, shortCommand } from "./errors";
import { deadlineWrap, sudoWrap } from "./shell";
import type { Ssh2Channel } from "./ssh2-types";
import type { ExecOptions, ExecResult, SshTarget } from "./types";

export const DEFAULT_EXEC_TIMEOUT_MS = 120_000;

/** One connected host as the command, fetch and sync helpers see it (RemoteHost owns it). */
export interface Session {
  readonly target: SshTarget;
  /** "host lab2 (10.0.0.5:22)" — the prefix of every error message */
  readonly label: string;
  readonly link: Link;
  readonly log: (line: string) => void;
  readonly verbose: boolean;
  /** the counters behind RemoteHost.commandsRun and bytesSent */
  readonly stats: { commands: number; bytesSent: number };
}

export interface RunOptions extends ExecOptions {
  /** wrap in sudo (default: target.sudo) */
  asRoot?: boolean;
}

/** The error for a connection that died before or while `doing` something. */
export function connectionLost(s: Session, doing: string, cause?: unknown): RemoteError {
  const why = s.link.state.lastError?.message ?? (cause ? errorMessage(cause) : "connection closed");
  return new RemoteError(s.target.host, `${s.label}: connection lost ${doing}: ${why}`, {
    kind: "connection",
    cause: cause ?? s.link.state.lastError,
    fix: "Check that the host is up and reachable, then re-run (files are replaced atomically, so a re-run converges)",
  });
}

/**
 * Run a command (through `sudo -n sh -c` when asRoot, default target.sudo) under a host-side
 * deadline 1 s past the client-side timeout. Throws RemoteError unless allowFail.
 */
export async function runCommand(s: Session, command: string, opts: RunOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const asRoot = opts.asRoot ?? s.target.sudo === true;
  // host-side backstop 1 s after the client-side timeout: the command cannot outlive it
  const guarded = deadlineWrap(command, timeoutMs / 1000 + 1);
  const wire = asRoot ? sudoWrap(guarded) : guarded;
  const short = shortCommand(command);
  if (s.link.state.closed) throw connectionLost(s, `before running: ${short}`);
  s.stats.commands++;
  if (s.verbose) s.log(`${s.target.host}${asRoot ? " (sudo)" : ""}$ ${command}`);

  let channel: Ssh2Channel | undefined;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const execOpts: Parameters<NodeSSH["execCommand"]>[1] = {
    noTrim: true,
    onChannel: (c: unknown) => {
      channel = c as Ssh2Channel;
      // a stream 'error' without a listener would crash the process; the exit status or
      // the connection's own error tells what happened
      channel.on("error", () => undefined);
    },
    onStdout: opts.onStdout ?? ((b: Buffer) => out.push(b)),
    onStderr: (b: Buffer) => err.push(b),
  };
  if (opts.stdin !== undefined) execOpts.stdin = opts.stdin;
  let res: Awaited<ReturnType<NodeSSH["execCommand"]>> | "timeout";
  try {
    const running = s.link.ssh.execCommand(wire, execOpts);
    res = await Promise.race([running, timedOut, s.link.state.dead]);
  } catch (e) {
    if (s.link.state.closed || /Not connected/.test(errorMessage(e))) throw connectionLost(s, `while running: ${short}`, e);
    throw new RemoteError(s.target.host, `${s.label}: cannot run ${short}: ${errorMessage(e)}`, {
      kind: "connection",
      cause: e,
      command,
    });
  } finally {
    clearTimeout(timer);
  }
  const stdout = Buffer.concat(out).toString("utf8");
  const stderr = Buffer.concat(err).toString("utf8");
  if (res === "timeout") {
    // No `signal` request: ssh2 drops it once EOF was sent (execCommand sends EOF at once).
    // The host-side `timeout -s KILL` deadline (deadlineWrap) ends the command 1 s later.
    try {
      channel?.close();
    } catch {
      /* ignore */
    }
    throw new RemoteError(s.target.host, `${s.label}: command timed out after ${timeoutMs / 1000} s: ${short}`, {
      kind: "timeout",
      command,
      stderr,
      fix:
        "The channel was closed and the command is killed on the host 1 s later. Check the host (load, hung service); " +
        "if the command legitimately takes longer, raise its timeoutMs",
    });
  }
  if (res.code === null && s.link.state.closed) throw connectionLost(s, `while running: ${short}`);
  const code = res.code ?? -1;
  if (code !== 0 && !opts.allowFail) {
    const tail = lastLines(stderr, 10) || lastLines(stdout, 5);
    const how = res.code === null ? `was killed${res.signal ? ` by signal ${res.signal}` : ""}` : `failed with exit code ${code}`;
    let fix: string | undefined;
    if (asRoot && /sudo: (a password is required|a terminal is required|.*not in the sudoers)/.test(stderr)) {
      fix = `Give ${s.target.user} passwordless sudo on ${s.target.host} (NOPASSWD in /etc/sudoers.d), or connect as root`;
    }
    const details: ConstructorParameters<typeof RemoteError>[2] = { kind: "exec", command, exitCode: code, stderr };
    if (fix) details.fix = fix;
    throw new RemoteError(
      s.target.host,
      `${s.label}: command ${how}: ${short}${tail ? `\n${tail.replace(/^/gm, "  | ")}` : ""}`,
      details,
    );
  }
  return { code, stdout, stderr };
}
