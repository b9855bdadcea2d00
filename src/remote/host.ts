/**
 * RemoteHost: one verified SSH connection (optionally through a bastion) on node-ssh, with
 * exit-code-checked, time-limited commands and an idempotent, atomic file sync.
 */
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import { NodeSSH } from "node-ssh";
import { RemoteError, errorCode, errorMessage, lastLines, shortCommand } from "./errors";
import { checkHostKey, hostLabel, loadHostKeyPolicy, preferredHostKeyAlgorithms } from "./hostkeys";
import { deadlineWrap, octal, shq, sudoWrap } from "./shell";
import type { Ssh2Channel, Ssh2Client, Ssh2ConnectConfig, Ssh2Sftp } from "./ssh2-types";
import { isNoSuchFile, isUnsupportedExtension, putFile, sftpChmod, sftpChown, sftpPosixRename, sftpStatSize, sftpUnlink } from "./sftp";
import {
  buildCheckScript,
  buildFinalizeScript,
  buildStageScript,
  digestSource,
  ownerMatches,
  parseCheckOutput,
  prepareFiles,
  tempPathFor,
  type CheckOutput,
  type FinalizeItem,
  type OwnerIds,
  type PreparedFile,
} from "./sync";
import type { ConnectOptions, ExecOptions, ExecResult, FetchResult, FileToShip, SshTarget, SyncOptions, SyncResult } from "./types";

export const DEFAULT_EXEC_TIMEOUT_MS = 120_000;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRIES = 3;
const BACKOFF_BASE_MS = 500;
/** files uploaded in parallel over the one SFTP session */
const PARALLEL_UPLOADS = 4;

/** Failures worth another connection attempt: the network or sshd not (yet) answering. */
const RETRYABLE_CODES = new Set([
  "ECONNREFUSED",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "EAI_AGAIN",
]);
/** ssh2 CHANNEL_OPEN_FAILURE reason for a forwardOut the bastion could not connect */
const OPEN_CONNECT_FAILED = 2;
const OPEN_ADMINISTRATIVELY_PROHIBITED = 1;

type LinkTarget = Omit<SshTarget, "bastion" | "sudo">;

interface LinkState {
  closed: boolean;
  lastError?: Error;
  /** rejects once the connection is gone; always has a catch attached */
  dead: Promise<never>;
  markDead: (reason: Error) => void;
}

interface Link {
  target: LinkTarget;
  label: string;
  ssh: NodeSSH;
  client: Ssh2Client;
  state: LinkState;
  hostKeyVia: string;
}

function newLinkState(): LinkState {
  let markDead: (reason: Error) => void = () => undefined;
  const dead = new Promise<never>((_, reject) => {
    markDead = reject;
  });
  dead.catch(() => undefined); // observed by races only
  const state: LinkState = { closed: false, dead, markDead };
  return state;
}

function errorLevel(err: unknown): string | undefined {
  if (err && typeof err === "object" && "level" in err) {
    const l = (err as { level: unknown }).level;
    if (typeof l === "string") return l;
  }
  return undefined;
}

function openFailureReason(err: unknown): number | undefined {
  if (err && typeof err === "object" && "reason" in err) {
    const r = (err as { reason: unknown }).reason;
    if (typeof r === "number") return r;
  }
  return undefined;
}

function isRetryable(err: unknown): boolean {
  if (err instanceof RemoteError) return false;
  const code = errorCode(err);
  if (code && RETRYABLE_CODES.has(code)) return true; // includes node-ssh's "No response from server" (ETIMEDOUT)
  if (errorLevel(err) === "client-timeout") return true; // handshake did not finish in readyTimeout
  const msg = errorMessage(err);
  if (msg === "Connection lost before handshake") return true;
  if (openFailureReason(err) === OPEN_CONNECT_FAILED) return true; // bastion could not reach the target (yet)
  return false;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `p`, or `fallback` after `ms` — without a timer that outlives the race or keeps node alive */
async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
    timer.unref();
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** run at most `n` of the given tasks at a time */
function limiter(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve)); // the slot is handed over
    else active++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

function randomSuffix(): string {
  return randomBytes(6).toString("hex");
}

function readPrivateKey(t: LinkTarget, label: string): string {
  try {
    return fs.readFileSync(t.privateKeyPath, "utf8");
  } catch (err) {
    throw new RemoteError(t.host, `${label}: cannot read private key ${t.privateKeyPath}: ${errorMessage(err)}`, {
      kind: "config",
      cause: err,
      fix: "Check privateKeyPath in the inventory and that the deploying user can read it",
    });
  }
}

function validateTarget(t: LinkTarget, label: string): void {
  const bad = (what: string): RemoteError =>
    new RemoteError(t.host || "(unnamed)", `${label}: ${what}`, { kind: "config", fix: "Fix this host in the inventory" });
  if (!t.host) throw bad("host name is empty");
  if (!t.address) throw bad("address is empty");
  if (!Number.isInteger(t.port) || t.port < 1 || t.port > 65535) throw bad(`port ${String(t.port)} is not 1..65535`);
  if (!t.user) throw bad("user is empty");
  if (!t.privateKeyPath) throw bad("privateKeyPath is empty");
}

interface OpenParams {
  connectTimeoutMs: number;
  log: (line: string) => void;
  verbose: boolean;
  /** opens the transport through a bastion, or undefined for a direct TCP connection */
  getSock?: () => Promise<Ssh2Channel>;
}

async function openLinkOnce(t: LinkTarget, label: string, privateKey: string, p: OpenParams): Promise<Link> {
  const policy = loadHostKeyPolicy(t, label);
  let refusal: { message: string; fix: string } | undefined;
  let via = "";
  const hostVerifier = (key: Buffer): boolean => {
    const verdict = checkHostKey(policy, key);
    if (verdict.ok) {
      via = verdict.via;
      return true;
    }
    refusal = verdict;
    return false;
  };
  const sock = p.getSock ? await p.getSock() : undefined;
  const config: Ssh2ConnectConfig = {
    host: t.address,
    port: t.port,
    username: t.user,
    privateKey,
    hostVerifier,
    readyTimeout: p.connectTimeoutMs,
    keepaliveInterval: 15_000,
    keepaliveCountMax: 4,
  };
  if (sock) config.sock = sock;
  const algos = preferredHostKeyAlgorithms(policy);
  // remove then prepend = move the key types known_hosts lists to the front
  if (algos) config.algorithms = { serverHostKey: { remove: algos, prepend: algos } };

  const state = newLinkState();
  const ssh = new NodeSSH();
  const attach = (client: Ssh2Client): void => {
    // ssh2 emits async errors (keepalive timeout, socket resets); node-ssh drops its own
    // listener once connected, and an unhandled 'error' would crash the process.
    client.on("error", (err: Error) => {
      state.lastError = err;
      if (p.verbose) p.log(`${label}: ssh: ${err.message}`);
    });
    client.on("close", () => {
      if (state.closed) return;
      state.closed = true;
      state.markDead(state.lastError ?? new Error("connection closed"));
    });
  };
  // With privateKey given (not privateKeyPath) node-ssh creates the ssh2 Client synchronously,
  // so the listener is in place before the first socket event.
  const pending = ssh.connect(config as unknown as Parameters<NodeSSH["connect"]>[0]);
  let client = ssh.connection as Ssh2Client | null;
  if (client) attach(client);
  try {
    await pending;
  } catch (err) {
    try {
      (client ?? (ssh.connection as Ssh2Client | null))?.end();
    } catch {
      /* ignore */
    }
    sock?.destroy();
    if (refusal) throw new RemoteError(t.host, refusal.message, { kind: "hostkey", fix: refusal.fix, cause: err });
    throw err;
  }
  if (!client) {
    client = ssh.connection as Ssh2Client | null;
    if (!client) throw new RemoteError(t.host, `${label}: connection closed right after login`, { kind: "connection" });
    attach(client);
  }
  return { target: t, label, ssh, client, state, hostKeyVia: via };
}

function classifyConnectError(t: LinkTarget, label: string, err: unknown, attempts: number, ms: number, viaBastion?: LinkTarget): RemoteError {
  if (err instanceof RemoteError) return err;
  const msg = errorMessage(err);
  const level = errorLevel(err);
  if (level === "client-authentication") {
    return new RemoteError(t.host, `${label}: authentication as ${t.user} with key ${t.privateKeyPath} was refused (${msg})`, {
      kind: "auth",
      cause: err,
      fix:
        `Put the public key (${t.privateKeyPath}.pub) into ~${t.user}/.ssh/authorized_keys on the host, ` +
        "or correct user / privateKeyPath in the inventory",
    });
  }
  if (/privateKey|passphrase|private key/i.test(msg)) {
    return new RemoteError(t.host, `${label}: cannot use private key ${t.privateKeyPath}: ${msg}`, {
      kind: "config",
      cause: err,
      fix: "Use an unencrypted OpenSSH or PEM private key (binkube does not prompt for passphrases)",
    });
  }
  const reason = openFailureReason(err);
  if (viaBastion && reason === OPEN_ADMINISTRATIVELY_PROHIBITED) {
    return new RemoteError(t.host, `${label}: bastion ${viaBastion.host} refused to forward to ${t.address}:${t.port} (${msg})`, {
      kind: "config",
      cause: err,
      fix: `Allow TCP forwarding for ${viaBastion.user} on ${viaBastion.host} (sshd_config: AllowTcpForwarding yes)`,
    });
  }
  if (errorCode(err) === "ENOTFOUND") {
    return new RemoteError(t.host, `${label}: cannot resolve address ${t.address} (${msg})`, {
      kind: "config",
      cause: err,
      fix: "Fix the address in the inventory (an IP address avoids DNS altogether)",
    });
  }
  if (isRetryable(err)) {
    const from = viaBastion ? ` from bastion ${viaBastion.host}` : "";
    return new RemoteError(
      t.host,
      `${label}: cannot connect${viaBastion ? ` via bastion ${viaBastion.host}` : ""}: ${msg} ` +
        `(${attempts} attempt${attempts === 1 ? "" : "s"} in ${(ms / 1000).toFixed(1)} s)`,
      {
        kind: "unreachable",
        cause: err,
        fix:
          `Check the address and port in the inventory, that sshd runs on the host and listens on port ${t.port}, ` +
          `and that no firewall blocks it (try \`ssh -p ${t.port} ${t.user}@${t.address}\`${from})`,
      },
    );
  }
  return new RemoteError(t.host, `${label}: SSH connection failed: ${msg}`, {
    kind: "connection",
    cause: err,
    fix: "Check that the host runs a standard OpenSSH server; run with --verbose for details",
  });
}

async function openLink(t: LinkTarget, label: string, opts: ConnectOptions, getSock?: () => Promise<Ssh2Channel>, viaBastion?: LinkTarget): Promise<Link> {
  validateTarget(t, label);
  const privateKey = readPrivateKey(t, label);
  const retries = Math.max(0, opts.retries ?? DEFAULT_RETRIES);
  const log = opts.log ?? (() => undefined);
  const params: OpenParams = {
    connectTimeoutMs: opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    log,
    verbose: opts.verbose === true,
  };
  if (getSock) params.getSock = getSock;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      const link = await openLinkOnce(t, label, privateKey, params);
      if (opts.verbose) log(`${label}: connected as ${t.user}, host key verified by ${link.hostKeyVia}`);
      return link;
    } catch (err) {
      if (!isRetryable(err) || attempt >= retries) {
        throw classifyConnectError(t, label, err, attempt + 1, Date.now() - started, viaBastion);
      }
      const wait = BACKOFF_BASE_MS * 2 ** attempt;
      log(`${label}: connect failed (${errorMessage(err)}); retry ${attempt + 1}/${retries} in ${wait / 1000} s`);
      await sleep(wait);
    }
  }
}

async function closeLink(link: Link): Promise<void> {
  if (link.state.closed) return;
  const closed = new Promise<void>((resolve) => link.client.once("close", () => resolve()));
  try {
    link.client.end();
  } catch {
    /* ignore */
  }
  if ((await within(closed, 3000, "timeout")) === "timeout") {
    try {
      link.client.destroy();
    } catch {
      /* ignore */
    }
    await within(closed, 2000, undefined);
  }
}

interface RunOptions extends ExecOptions {
  /** wrap in sudo (default: target.sudo) */
  asRoot?: boolean;
}

export class RemoteHost {
  readonly target: SshTarget;
  /** "host lab2 (10.0.0.5:22)" — the prefix of every error message */
  readonly label: string;
  private readonly link: Link;
  private readonly bastionLink?: Link;
  private readonly log: (line: string) => void;
  private readonly verbose: boolean;
  private sent = 0;
  private commands = 0;
  private sftpSession?: Promise<Ssh2Sftp>;
  private closing?: Promise<void>;

  private constructor(target: SshTarget, link: Link, bastionLink: Link | undefined, opts: ConnectOptions) {
    this.target = target;
    this.label = link.label;
    this.link = link;
    if (bastionLink) this.bastionLink = bastionLink;
    this.log = opts.log ?? (() => undefined);
    this.verbose = opts.verbose === true;
  }

  /** payload bytes uploaded over this connection (for benchmarks) */
  get bytesSent(): number {
    return this.sent;
  }

  /** remote commands run over this connection (sync's check is one) */
  get commandsRun(): number {
    return this.commands;
  }

  /** false once the connection (or the bastion's) is gone */
  get connected(): boolean {
    return !this.link.state.closed;
  }

  static async connect(target: SshTarget, opts: ConnectOptions = {}): Promise<RemoteHost> {
    const label = target.bastion ? `${hostLabel(target)} via bastion ${target.bastion.host}` : hostLabel(target);
    let bastionLink: Link | undefined;
    let getSock: (() => Promise<Ssh2Channel>) | undefined;
    const { bastion } = target;
    if (bastion) {
      const b: LinkTarget = { ...bastion };
      if (!b.knownHostsPath && !(b.hostKeyFingerprints && b.hostKeyFingerprints.length > 0) && target.knownHostsPath) {
        b.knownHostsPath = target.knownHostsPath;
      }
      validateTarget(target, label);
      const bl = await openLink(b, `bastion ${hostLabel(b)} for host ${target.host}`, opts);
      bastionLink = bl;
      getSock = async () => {
        if (bl.state.closed) throw bl.state.lastError ?? new Error("bastion connection closed");
        return (await bl.ssh.forwardOut("127.0.0.1", 0, target.address, target.port)) as Ssh2Channel;
      };
    }
    try {
      const link = await openLink(target, label, opts, getSock, bastion);
      if (bastionLink) {
        // losing the bastion loses the target
        bastionLink.state.dead.catch((err: Error) => {
          try {
            link.client.end();
          } catch {
            /* ignore */
          }
          link.state.lastError ??= err;
        });
      }
      return new RemoteHost(target, link, bastionLink, opts);
    } catch (err) {
      if (bastionLink) await closeLink(bastionLink);
      throw err;
    }
  }

  /**
   * Run a command (through `sudo -n sh -c` when target.sudo). Throws RemoteError naming the
   * host, the command, the exit code and the last stderr lines unless allowFail; throws on
   * timeout (default 120 s) after closing the channel (the host kills the command 1 s later).
   */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.run(command, opts);
  }

  /**
   * Copy a remote file to `localPath` (created 0600). Streamed through `cat` on an exec channel,
   * so sudo applies as for any command; written under a temp name, checked against the host's
   * sha256sum and renamed, so a cut connection or a short read leaves no file behind.
   */
  async fetchFile(remotePath: string, localPath: string, opts: { timeoutMs?: number } = {}): Promise<FetchResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const expected = (await this.run(`sha256sum -- ${shq(remotePath)}`, { timeoutMs })).stdout.trim().split(/\s+/)[0];
    const tmp = `${localPath}.binkube-tmp-${randomBytes(4).toString("hex")}`;
    const fd = fs.openSync(tmp, "wx", 0o600);
    const hash = createHash("sha256");
    let bytes = 0;
    let open = true;
    try {
      const write = (b: Buffer): void => {
        for (let off = 0; off < b.length; ) off += fs.writeSync(fd, b, off);
        hash.update(b);
        bytes += b.length;
      };
      await this.run(`cat -- ${shq(remotePath)}`, { timeoutMs, onStdout: write });
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      open = false;
      const got = hash.digest("hex");
      if (got !== expected) {
        throw new RemoteError(this.target.host, `${this.label}: ${remotePath} arrived with sha256 ${got} (${bytes} bytes), the host has ${expected}`, {
          kind: "exec",
          fix: "Re-run; if it repeats, check the host's disk and the file",
        });
      }
      fs.renameSync(tmp, localPath);
      return { bytes, sha256: got };
    } catch (err) {
      if (open) fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  private connectionLost(doing: string, cause?: unknown): RemoteError {
    const why = this.link.state.lastError?.message ?? (cause ? errorMessage(cause) : "connection closed");
    return new RemoteError(this.target.host, `${this.label}: connection lost ${doing}: ${why}`, {
      kind: "connection",
      cause: cause ?? this.link.state.lastError,
      fix: "Check that the host is up and reachable, then re-run (files are replaced atomically, so a re-run converges)",
    });
  }

  private async run(command: string, opts: RunOptions = {}): Promise<ExecResult> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const asRoot = opts.asRoot ?? this.target.sudo === true;
    // host-side backstop 1 s after the client-side timeout: the command cannot outlive it
    const guarded = deadlineWrap(command, timeoutMs / 1000 + 1);
    const wire = asRoot ? sudoWrap(guarded) : guarded;
    const short = shortCommand(command);
    if (this.link.state.closed) throw this.connectionLost(`before running: ${short}`);
    this.commands++;
    if (this.verbose) this.log(`${this.target.host}${asRoot ? " (sudo)" : ""}$ ${command}`);

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
      const running = this.link.ssh.execCommand(wire, execOpts);
      res = await Promise.race([running, timedOut, this.link.state.dead]);
    } catch (e) {
      if (this.link.state.closed || /Not connected/.test(errorMessage(e))) throw this.connectionLost(`while running: ${short}`, e);
      throw new RemoteError(this.target.host, `${this.label}: cannot run ${short}: ${errorMessage(e)}`, {
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
      throw new RemoteError(this.target.host, `${this.label}: command timed out after ${timeoutMs / 1000} s: ${short}`, {
        kind: "timeout",
        command,
        stderr,
        fix:
          "The channel was closed and the command is killed on the host 1 s later. Check the host (load, hung service); " +
          "if the command legitimately takes longer, raise its timeoutMs",
      });
    }
    if (res.code === null && this.link.state.closed) throw this.connectionLost(`while running: ${short}`);
    const code = res.code ?? -1;
    if (code !== 0 && !opts.allowFail) {
      const tail = lastLines(stderr, 10) || lastLines(stdout, 5);
      const how = res.code === null ? `was killed${res.signal ? ` by signal ${res.signal}` : ""}` : `failed with exit code ${code}`;
      let fix: string | undefined;
      if (asRoot && /sudo: (a password is required|a terminal is required|.*not in the sudoers)/.test(stderr)) {
        fix = `Give ${this.target.user} passwordless sudo on ${this.target.host} (NOPASSWD in /etc/sudoers.d), or connect as root`;
      }
      const details: ConstructorParameters<typeof RemoteError>[2] = { kind: "exec", command, exitCode: code, stderr };
      if (fix) details.fix = fix;
      throw new RemoteError(
        this.target.host,
        `${this.label}: command ${how}: ${short}${tail ? `\n${tail.replace(/^/gm, "  | ")}` : ""}`,
        details,
      );
    }
    return { code, stdout, stderr };
  }

  private getSftp(): Promise<Ssh2Sftp> {
    if (!this.sftpSession) {
      const p = (this.link.ssh.requestSFTP() as Promise<unknown>).then((s) => {
        const sftp = s as Ssh2Sftp;
        const reset = (): void => {
          if (this.sftpSession === p) this.sftpSession = undefined;
        };
        sftp.on("close", reset);
        sftp.on("error", reset);
        return sftp;
      });
      p.catch(() => {
        if (this.sftpSession === p) this.sftpSession = undefined;
      });
      this.sftpSession = p;
    }
    return this.sftpSession;
  }

  /**
   * Make the host's files equal to `files`. One round trip (an exec) reads sha256, mode and
   * owner of every target, creates parent dirs and removes stale temp files; unchanged files
   * are skipped, mode/owner-only differences fixed in place, the rest written over SFTP to
   * `.NAME.binkube-tmp-RANDOM` beside the target (created 0600), fsync'ed, chown'ed, chmod'ed
   * and renamed over the target (rename(2): posix-rename@openssh.com, or `mv -fT`).
   * Targets that SFTP stat shows missing or of another size start uploading while the check
   * runs (they differ whatever their hash). With sudo, uploads go to a private staging dir
   * and a `sudo` script copies them beside the targets and renames them.
   */
  async sync(files: FileToShip[], opts: SyncOptions = {}): Promise<SyncResult> {
    const host = this.target.host;
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const fsync = opts.fsync !== false;
    const sudo = this.target.sudo === true;
    const prepared = prepareFiles(host, this.label, files);
    if (prepared.length === 0) return { changed: [], unchanged: [], bytesSent: 0 };
    if (opts.owner !== undefined && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(opts.owner)) {
      throw new RemoteError(host, `${this.label}: sync: owner ${JSON.stringify(opts.owner)} is not user or user:group`, {
        kind: "config",
        fix: "Give the owner as user, user:group or uid:gid",
      });
    }
    await Promise.all(prepared.map((f) => digestSource(host, this.label, f)));

    const result: SyncResult = { changed: [], unchanged: [], bytesSent: 0 };
    const temps = new Map<PreparedFile, string>(prepared.map((f) => [f, tempPathFor(f, randomSuffix())]));
    const addBytes = (n: number): void => {
      this.sent += n;
      result.bytesSent += n;
    };

    // the SFTP session (cached per connection) opens while the check runs
    const sftpP = this.getSftp();
    sftpP.catch(() => undefined);
    const checkP = this.run(buildCheckScript(prepared, { owner: opts.owner, keep: [...temps.values()] }), { timeoutMs }).then((r) =>
      parseCheckOutput(r.stdout),
    );
    checkP.catch(() => undefined);

    // uploads beside the target (non-sudo), at most PARALLEL_UPLOADS at a time
    const limit = limiter(PARALLEL_UPLOADS);
    const started = new Map<PreparedFile, Promise<boolean>>();
    let current = "";
    const startUpload = (sftp: Ssh2Sftp, f: PreparedFile): void => {
      if (started.has(f)) return;
      const temp = temps.get(f) as string;
      const attempt = (): Promise<boolean> =>
        limit(async () => {
          current = f.path;
          if (this.verbose) this.log(`${host}: upload ${f.path} (${f.size} bytes, mode ${octal(f.mode)}) via ${temp}`);
          const put = putFile(sftp, f.data ?? (f.sourcePath as string), f.size, temp, { onBytes: addBytes, fsync });
          return (await Promise.race([put, this.link.state.dead])).fsynced;
        });
      const p = attempt().catch(async (err: unknown) => {
        // an early start can beat the check's mkdir -p of the parent dir: retry once after it
        if (!isNoSuchFile(err)) throw err;
        await checkP;
        return attempt();
      });
      p.catch(() => undefined);
      started.set(f, p);
    };
    const early = sudo
      ? Promise.resolve()
      : sftpP
          .then(async (sftp) => {
            const sizes = await Promise.all(prepared.map((f) => sftpStatSize(sftp, f.path)));
            prepared.forEach((f, i) => {
              if (sizes[i] !== f.size) startUpload(sftp, f);
            });
          })
          .catch(() => undefined);

    const failUploads = async (err: unknown): Promise<never> => {
      await Promise.allSettled(started.values());
      if (!this.link.state.closed) {
        const sftp = await sftpP.catch(() => undefined);
        if (sftp) await this.discard(sftp, [...started.keys()].map((f) => temps.get(f) as string));
      }
      if (err instanceof RemoteError) throw err;
      if (this.link.state.closed) {
        throw this.connectionLost(
          `while uploading ${current} (${result.bytesSent} bytes of this sync sent; targets untouched, temp files are removed by the next sync)`,
          err,
        );
      }
      const msg = errorMessage(err);
      throw new RemoteError(host, `${this.label}: sync: uploading ${current} failed: ${msg} (target untouched)`, {
        kind: "upload",
        cause: err,
        fix: /permission denied/i.test(msg)
          ? `Connect as root or set sudo: true for ${host} so ${this.target.user} can write there`
          : /no space|quota|failure/i.test(msg)
            ? "Check free disk space on the host and re-run"
            : "Re-run; run with --verbose for details",
      });
    };

    let check: CheckOutput;
    try {
      check = await checkP;
      await early;
    } catch (err) {
      return failUploads(err);
    }
    let owner: OwnerIds | undefined;
    if (opts.owner !== undefined) {
      const o = check.owner;
      if (o?.uid === undefined || o.gid === undefined) {
        return failUploads(
          new RemoteError(host, `${this.label}: sync: owner ${opts.owner} does not exist on the host`, {
            kind: "config",
            fix: "Create the user/group first (the prepare step) or fix the owner",
          }),
        );
      }
      owner = { uid: o.uid, gid: o.gid };
    }
    const unchanged: PreparedFile[] = [];
    const metaOnly: PreparedFile[] = [];
    const upload: PreparedFile[] = [];
    for (const f of prepared) {
      const r = check.files.get(f.path);
      if (!r || r.sha256 !== f.sha256 || started.has(f)) upload.push(f);
      else if (r.mode !== f.mode || (owner && !ownerMatches(owner, r))) metaOnly.push(f);
      else unchanged.push(f);
    }
    result.changed = [...upload, ...metaOnly].sort((a, b) => a.index - b.index).map((f) => f.path);
    result.unchanged = unchanged.map((f) => f.path);
    if (upload.length === 0 && metaOnly.length === 0) {
      if (this.verbose) this.log(`${host}: sync: ${prepared.length} file(s) already up to date`);
      return result;
    }

    const sftp = await this.withSftp("opening SFTP", () => sftpP);
    let stageDir: string | undefined;
    const items: FinalizeItem[] = [];
    let allFsynced = true;
    if (!sudo) {
      for (const f of upload) startUpload(sftp, f);
      try {
        for (const fsynced of await Promise.all(started.values())) if (!fsynced) allFsynced = false;
      } catch (err) {
        return failUploads(err);
      }
      for (const f of upload) items.push({ file: f, temp: temps.get(f) as string });
    } else if (upload.length > 0) {
      stageDir = (await this.run(buildStageScript(), { asRoot: false, timeoutMs })).stdout.trim();
      if (!stageDir.startsWith("/")) {
        throw new RemoteError(host, `${this.label}: sync: could not create a staging dir (mktemp printed ${JSON.stringify(stageDir)})`, {
          kind: "upload",
          fix: `Make /var/tmp (or $TMPDIR) writable for ${this.target.user}`,
        });
      }
      const dir = stageDir;
      try {
        await Promise.all(
          upload.map((f) =>
            limit(async () => {
              current = f.path;
              const staged = `${dir}/${f.index}`;
              if (this.verbose) this.log(`${host}: upload ${f.path} (${f.size} bytes, mode ${octal(f.mode)}) via ${staged}`);
              // staged copies are fsync'ed after the root-side copy instead
              const put = putFile(sftp, f.data ?? (f.sourcePath as string), f.size, staged, { onBytes: addBytes, fsync: false });
              await Promise.race([put, this.link.state.dead]);
            }),
          ),
        );
      } catch (err) {
        if (!this.link.state.closed) {
          await this.run(`rm -rf -- ${shq(dir)}`, { asRoot: false, allowFail: true, timeoutMs: 30_000 }).catch(() => undefined);
        }
        return failUploads(err);
      }
      for (const f of upload) items.push({ file: f, temp: temps.get(f) as string, staged: `${dir}/${f.index}` });
    }
    for (const f of metaOnly) items.push({ file: f });

    const finalizeOpts: { owner?: OwnerIds; fsync: boolean; stageDir?: string } = { fsync: fsync && (sudo || !allFsynced) };
    if (owner) finalizeOpts.owner = owner;
    if (stageDir) finalizeOpts.stageDir = stageDir;
    let viaExec = sudo;
    if (!sudo) {
      try {
        await this.finalizeOverSftp(sftp, items, owner);
      } catch (err) {
        if (!isUnsupportedExtension(err)) {
          await this.discard(sftp, items.filter((i) => i.temp).map((i) => i.temp as string));
          if (this.link.state.closed) throw this.connectionLost("while finalizing the upload (targets untouched or complete)", err);
          throw new RemoteError(host, `${this.label}: sync: applying mode/owner or renaming into place failed: ${errorMessage(err)}`, {
            kind: "upload",
            cause: err,
            fix: "Check that no target is a directory and re-run",
          });
        }
        viaExec = true; // server without posix-rename@openssh.com: rename with mv -fT
      }
    }
    if (viaExec) await this.run(buildFinalizeScript(items, finalizeOpts), { timeoutMs });
    this.log(
      `${host}: sync: ${upload.length} uploaded (${result.bytesSent} bytes), ${metaOnly.length} mode/owner fixed, ${unchanged.length} unchanged`,
    );
    return result;
  }

  /** chown, chmod, then rename every temp over its target (renames last, back to back). */
  private async finalizeOverSftp(sftp: Ssh2Sftp, items: FinalizeItem[], owner: OwnerIds | undefined): Promise<void> {
    const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, this.link.state.dead]);
    await race(
      Promise.all(
        items.map(async (it) => {
          const p = it.temp ?? it.file.path;
          // chown first: it clears setuid/setgid bits, which chmod then sets
          if (owner) await sftpChown(sftp, p, owner.uid, owner.gid);
          await sftpChmod(sftp, p, it.file.mode);
        }),
      ),
    );
    const renames = items.filter((it) => it.temp);
    if (renames.length === 0) return;
    if (this.verbose) for (const it of renames) this.log(`${this.target.host}: rename ${it.temp} -> ${it.file.path}`);
    await race(Promise.all(renames.map((it) => sftpPosixRename(sftp, it.temp as string, it.file.path))));
  }

  /** best effort removal of this sync's temp files (the next sync removes them anyway) */
  private async discard(sftp: Ssh2Sftp, paths: string[]): Promise<void> {
    if (this.link.state.closed || paths.length === 0) return;
    await within(Promise.all(paths.map((p) => sftpUnlink(sftp, p).catch(() => undefined))), 10_000, undefined);
  }

  private async withSftp(doing: string, open: () => Promise<Ssh2Sftp>): Promise<Ssh2Sftp> {
    try {
      return await Promise.race([open(), this.link.state.dead]);
    } catch (err) {
      if (this.link.state.closed) throw this.connectionLost(doing, err);
      throw new RemoteError(this.target.host, `${this.label}: cannot open an SFTP session: ${errorMessage(err)}`, {
        kind: "connection",
        cause: err,
        fix: "Enable the sftp subsystem in the host's sshd_config (Subsystem sftp internal-sftp or /usr/lib/openssh/sftp-server)",
      });
    }
  }

  /** Close the connection (and the bastion's). Safe to call twice. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        const s = this.sftpSession;
        this.sftpSession = undefined;
        if (s) {
          try {
            (await within(s, 1000, undefined))?.end();
          } catch {
            /* ignore */
          }
        }
        await closeLink(this.link);
        if (this.bastionLink) await closeLink(this.bastionLink);
      })();
    }
    return this.closing;
  }
}
