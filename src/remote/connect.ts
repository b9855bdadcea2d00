/**
 * Opening and closing SSH links: target validation, the private key, node-ssh connect with host
 * key verification and retries/backoff, bastion (jump host) forwarding, connect error classification.
 */
import * as fs from "fs";
import { NodeSSH } from "node-ssh";
import { sleep } from "../util/sleep";
import { within } from "./async";
import { RemoteError, errorCode, errorMessage } from "./errors";
import { checkHostKey, hostLabel, loadHostKeyPolicy, preferredHostKeyAlgorithms } from "./hostkeys";
import type { Ssh2Channel, Ssh2Client, Ssh2ConnectConfig } from "./ssh2-types";
import type { ConnectOptions, SshTarget } from "./types";

export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_RETRIES = 3;
const BACKOFF_BASE_MS = 500;

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

export type LinkTarget = Omit<SshTarget, "bastion" | "sudo">;

export interface LinkState {
  closed: boolean;
  lastError?: Error;
  /** rejects once the connection is gone; always has a catch attached */
  dead: Promise<never>;
  markDead: (reason: Error) => void;
}

export interface Link {
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

export async function closeLink(link: Link): Promise<void> {
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


/** The target's link, and the bastion's when the target is reached through one. */
export interface Links {
  link: Link;
  bastionLink?: Link;
}

/**
 * Connect to `target`, through its bastion when it names one (the bastion is verified with the
 * target's knownHostsPath unless it names its own host key source). Losing the bastion loses
 * the target; on failure the bastion link is closed again.
 */
export async function openLinks(target: SshTarget, opts: ConnectOptions): Promise<Links> {
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
    const links: Links = { link };
    if (bastionLink) links.bastionLink = bastionLink;
    return links;
  } catch (err) {
    if (bastionLink) await closeLink(bastionLink);
    throw err;
  }
}
