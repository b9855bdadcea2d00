/**
 * The host-to-host relay of a deploy (issue 26): each release binary crosses the operator's link
 * once; every other host that needs the same content (sha256) copies it from a host that has it,
 * over the hosts' own network.
 *
 * A copy needs no standing trust between hosts. Over the relay's own SSH connection to the holder,
 * a one-shot perl listener (perl-base is Essential on Debian) serves that one file on an ephemeral
 * port of the holder's inventory address, to the one request that carries a token made for that
 * copy (sent on stdin, never on a command line), then exits; it gives up after REQUEST_S. Over the
 * receiver's own session, a perl client writes the bytes to the sync's temp file (0600, O_EXCL),
 * fsyncs it, and sha256sum must match before the sync renames it like an upload. No host gets
 * another's login; nothing outlives the copy; through a bastion the hosts talk on their own network.
 * Any failure sends that file from the operator instead, and that holder is not asked again.
 */
import { randomBytes } from "crypto";
import { limiter } from "./async";
import { errorMessage } from "./errors";
import { RemoteHost } from "./host";
import type { PeerOutcome, PeerReceiver, PeerSource, RelayFile, UploadLease } from "./peer-source";
import { shq } from "./shell";
import type { SshTarget } from "./types";

/** A listener waits this long for its one request (the receiver asks right after the port is known). */
const REQUEST_S = 60;
/** A copy, once asked for, may take this long (a loaded holder, a slow disk). */
const TRANSFER_S = 300;
/** The receiver's TCP connect to the holder. */
const CONNECT_S = 5;
/**
 * Listeners at once per holder: each is a channel of the relay's one connection, and sshd allows
 * 10 sessions per connection, freed a little after a channel closes (9 at once had opens refused).
 */
const LISTENERS_PER_HOLDER = 4;
/** Other hosts asked for a content no host of the relay has yet, before the operator sends it. */
const PROBES = 3;
/** Copies that failed one after another before the relay stops trying for this deploy (hosts that cannot reach each other). */
const MAX_FAILURES_IN_A_ROW = 3;

/** Serves the first readable path of @ARGV to the one connection that sends the token line. */
const LISTENER = `use strict; use warnings; use IO::Socket::INET;
my $addr = shift @ARGV;
my $tok = <STDIN>; defined $tok or die "no token\\n"; chomp $tok;
my $fh; for my $p (@ARGV) { last if open($fh, "<", $p); undef $fh; }
defined $fh or die "none of @ARGV can be read\\n"; binmode $fh;
my $srv = IO::Socket::INET->new(LocalAddr => $addr, LocalPort => 0, Listen => 4, Proto => "tcp") or die "cannot listen on $addr: $@\\n";
$| = 1; print "PORT ", $srv->sockport, "\\n";
$SIG{ALRM} = sub { die "no request within the time allowed\\n" }; alarm ${REQUEST_S};
while (my $c = $srv->accept) {
  my $got = ""; my $want = length($tok) + 1;
  while (length($got) < $want) { my $r = sysread($c, $got, $want - length($got), length($got)); last unless $r; }
  if ($got ne "$tok\\n") { close $c; next; }
  close $srv; alarm ${TRANSFER_S};
  my $buf;
  while (1) {
    my $r = sysread($fh, $buf, 1 << 20); defined $r or die "read: $!\\n"; last if $r == 0;
    for (my $o = 0; $o < $r;) { my $w = syswrite($c, $buf, $r - $o, $o); defined $w or die "send: $!\\n"; $o += $w; }
  }
  close $c or die "close: $!\\n"; exit 0;
}
die "accept: $!\\n";`;

/** Fetches SIZE bytes from ADDR:PORT (after the token line) into a new file OUT, fsync'ed. */
const CLIENT = `use strict; use warnings; use IO::Socket::INET; use Fcntl; use IO::Handle;
my ($addr, $port, $out, $size) = @ARGV;
my $tok = <STDIN>; defined $tok or die "no token\\n"; chomp $tok;
$SIG{ALRM} = sub { die "copy took longer than the time allowed\\n" }; alarm ${TRANSFER_S};
my $c = IO::Socket::INET->new(PeerAddr => $addr, PeerPort => $port, Proto => "tcp", Timeout => ${CONNECT_S}) or die "cannot connect to $addr:$port: $@\\n";
defined syswrite($c, "$tok\\n") or die "send: $!\\n";
sysopen(my $fh, $out, O_WRONLY | O_CREAT | O_EXCL, 0600) or die "cannot create $out: $!\\n";
my ($n, $buf) = (0);
while (1) {
  my $r = sysread($c, $buf, 1 << 20); defined $r or die "receive: $!\\n"; last if $r == 0;
  $n += $r; die "more than $size bytes\\n" if $n > $size;
  for (my $o = 0; $o < $r;) { my $w = syswrite($fh, $buf, $r - $o, $o); defined $w or die "write: $!\\n"; $o += $w; }
}
$n == $size or die "got $n of $size bytes\\n";
$fh->sync or die "fsync: $!\\n"; close $fh or die "close: $!\\n";`;

/** Exit code of a probe's listener on a host whose file at that path is not the content asked for. */
const NOT_HERE = 7;

/**
 * `expect`: serve only if the (one) path holds this content (a probe: the host is not known to
 * have it). The size first: another version of a binary is nearly always another size, and then
 * nothing is hashed.
 */
export function listenerCommand(address: string, paths: string[], expect?: { sha256: string; size: number }): string {
  const serve = `exec perl -e ${shq(LISTENER)} ${[address, ...paths].map(shq).join(" ")}`;
  if (expect === undefined || paths.length !== 1) return serve;
  const p = shq(paths[0]!);
  return [
    `[ "$(stat -L -c %s -- ${p} 2>/dev/null)" = ${expect.size} ] || exit ${NOT_HERE}`,
    `h=$(sha256sum < ${p} 2>/dev/null) && [ "\${h%% *}" = ${expect.sha256} ] || exit ${NOT_HERE}`,
    serve,
  ].join("\n");
}

class NotHere extends Error {}

/** sshd refusing a channel (its sessions are freed a little after they close) is worth a retry, not a fallback. */
async function retryOpen<T>(open: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await open();
    } catch (e) {
      if (attempt >= 4 || !/Channel open failure/.test(errorMessage(e))) throw e;
      await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
    }
  }
}

type Copied = { kind: "copied"; from: string; bytes: number };
/** busy: every holder serves its maximum; not-here: a probed host has other content at that path */
type CopyOutcome = Copied | { kind: "failed"; why: string } | { kind: "busy" } | { kind: "not-here" };

/** The client, then the hash: a copy that is not exactly the content asked for is removed. */
export function clientCommand(address: string, port: number, temp: string, file: RelayFile): string {
  const t = shq(temp);
  return [
    `perl -e ${shq(CLIENT)} ${shq(address)} ${port} ${t} ${file.size} || { rc=$?; rm -f -- ${t}; exit $rc; }`,
    `h=$(sha256sum -- ${t}) || { rm -f -- ${t}; exit 5; }`,
    `[ "\${h%% *}" = ${file.sha256} ] || { rm -f -- ${t}; echo "sha256 \${h%% *} is not the ${file.sha256} asked for (the holder's copy changed)" >&2; exit 4; }`,
  ].join("\n");
}

interface Holder {
  target: SshTarget;
  /** where the content sits, first that exists wins (an upload's temp or staged copy, then the target it is renamed to) */
  paths: string[];
}

interface HostState {
  conn?: Promise<RemoteHost>;
  /** listeners running or waiting for a channel on this host */
  active: number;
  /** at most LISTENERS_PER_HOLDER channels at once on the relay's connection (probes too): sshd refuses more */
  channels: <T>(task: () => Promise<T>) => Promise<T>;
  /** why this host is not asked again */
  broken?: string;
}

export interface RelayStats {
  copies: number;
  copiedBytes: number;
  fallbacks: number;
}

export class PeerRelay implements PeerSource {
  private readonly hosts = new Map<string, HostState>();
  private readonly holders = new Map<string, Holder[]>();
  /** sha256 → the upload of that content under way: `done` settles when it ends (the waiters then copy it, or one of them uploads) */
  private readonly uploads = new Map<string, { done: Promise<void>; host: string }>();
  private freed: Array<() => void> = [];
  private backgroundBusy = false;
  private readonly backgroundWaiting: Array<() => void> = [];
  private failuresInARow = 0;
  readonly stats: RelayStats = { copies: 0, copiedBytes: 0, fallbacks: 0 };

  /** contents no other host had where the receiver puts it: not probed again */
  private readonly probed = new Set<string>();

  /**
   * `others(receiver)`: the other hosts of the deploy's inventory. A content no host of this relay
   * has yet may sit at the same path on one of them (a node added to a running cluster, a step
   * re-run): up to PROBES of them are asked, each serving only if its file there has the sha256.
   */
  constructor(
    private readonly others: (receiver: SshTarget) => SshTarget[] = () => [],
    // one short attempt: a host that does not answer at once is not worth waiting for, the operator sends the file
    private readonly connect: (t: SshTarget) => Promise<RemoteHost> = (t) => RemoteHost.connect(t, { retries: 0, connectTimeoutMs: 5000 }),
  ) {}

  async obtain(receiver: PeerReceiver, file: RelayFile, temp: string, opts: { background?: boolean } = {}): Promise<PeerOutcome> {
    let fallback: string | undefined;
    // a background upload holds the one background slot from before its lease until the lease ends
    let slot: (() => void) | undefined;
    try {
      for (;;) {
        const pending = this.uploads.get(file.sha256);
        if (pending) {
          await pending.done;
          continue;
        }
        const candidates = fallback === undefined && this.failuresInARow < MAX_FAILURES_IN_A_ROW ? this.usable(file.sha256) : [];
        if (candidates.length === 0) {
          if (opts.background && !slot) {
            slot = await this.backgroundSlot();
            continue; // another host may have uploaded it meanwhile
          }
          const lease = this.lease(file.sha256, receiver.target, slot);
          slot = undefined; // the lease releases it
          // holding the lease, so hosts needing the same content wait for this probe, not beside it
          // (a probe that throws must not leave the lease, and its waiters, hanging)
          const found = fallback === undefined ? await this.probe(receiver, file, temp).catch(() => undefined) : undefined;
          if (typeof found === "object") {
            lease.uploaded([temp, file.path]);
            return found;
          }
          const why = fallback ?? found;
          return { kind: "upload", lease, ...(why ? { fallback: why } : {}) };
        }
        slot?.();
        slot = undefined;
        const out = await this.copyFromOne(candidates, receiver, file, temp);
        if (out.kind === "copied") return out;
        if (out.kind === "failed") fallback = out.why;
      }
    } finally {
      slot?.();
    }
  }

  /** Whether `host` has the content or is uploading it (staging skips it then). */
  holds(host: string, sha: string): boolean {
    return (this.holders.get(sha) ?? []).some((h) => h.target.host === host) || this.uploads.get(sha)?.host === host;
  }

  private copyFromOne(candidates: Holder[], receiver: PeerReceiver, file: RelayFile, temp: string): Promise<CopyOutcome> {
    // the receiver's own copy first (a staged one: no network), then the least busy holder
    const rank = (h: Holder) => (h.target.host === receiver.target.host ? -1 : this.host(h.target).active);
    const holder = candidates.filter((h) => this.host(h.target).active < LISTENERS_PER_HOLDER).sort((a, b) => rank(a) - rank(b))[0];
    return holder ? this.tryCopy(holder, receiver, file, temp) : this.waitForSlot();
  }

  /**
   * Asks other hosts for the content at the receiver's path; the first that has it serves it.
   * Returns the copy, or why the copy from a host that had it failed, or undefined: none had it.
   */
  private async probe(receiver: PeerReceiver, file: RelayFile, temp: string): Promise<Copied | string | undefined> {
    if (this.failuresInARow >= MAX_FAILURES_IN_A_ROW || this.probed.has(file.sha256)) return undefined;
    this.probed.add(file.sha256);
    const hosts = this.others(receiver.target).filter((t) => t.host !== receiver.target.host && this.host(t).broken === undefined);
    for (const t of hosts.slice(0, PROBES)) {
      const holder = { target: t, paths: [file.usualPath ?? file.path] };
      const out = await this.tryCopy(holder, receiver, file, temp, { sha256: file.sha256, size: file.size });
      if (out.kind === "copied") {
        this.add(file.sha256, holder);
        return out;
      }
      if (out.kind === "failed") return out.why; // it had it, and the copy failed: the operator sends it
    }
    return undefined;
  }

  /**
   * Every holder serves its maximum: wait for a copy to end, then choose again. Not the same as
   * queueing on a holder's limiter: the host that just received a copy is a holder too, so copies
   * spread over more and more hosts instead of all queueing on the first uploader.
   */
  private async waitForSlot(): Promise<CopyOutcome> {
    await new Promise<void>((resolve) => this.freed.push(resolve)); // every holder is serving its maximum
    return { kind: "busy" };
  }

  private async tryCopy(holder: Holder, receiver: PeerReceiver, file: RelayFile, temp: string, expect?: { sha256: string; size: number }): Promise<CopyOutcome> {
    try {
      await this.copy(holder, receiver, file, temp, expect);
      this.failuresInARow = 0;
      this.stats.copies++;
      this.stats.copiedBytes += file.size;
      this.add(file.sha256, { target: receiver.target, paths: [temp, file.path] });
      return { kind: "copied", from: holder.target.host, bytes: file.size };
    } catch (e) {
      if (e instanceof NotHere) return { kind: "not-here" };
      this.failuresInARow++;
      this.stats.fallbacks++;
      const why = errorMessage(e).trim().split("\n").slice(-3).join("; ");
      this.host(holder.target).broken = why;
      return { kind: "failed", why: `copy from ${holder.target.host} failed (${why}), so ${holder.target.host} is not asked again in this deploy` };
    }
  }

  private backgroundSlot(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.backgroundBusy = true;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.backgroundBusy = false;
          this.backgroundWaiting.shift()?.();
        });
      };
      if (this.backgroundBusy) this.backgroundWaiting.push(grant);
      else grant();
    });
  }

  /** Close the relay's connections to the holders. */
  async close(): Promise<void> {
    const conns = [...this.hosts.values()].map((h) => h.conn).filter((c): c is Promise<RemoteHost> => c !== undefined);
    this.hosts.clear();
    await Promise.all(conns.map(async (c) => (await c.catch(() => undefined))?.close()));
  }

  private host(t: SshTarget): HostState {
    let h = this.hosts.get(t.host);
    if (!h) {
      h = { active: 0, channels: limiter(LISTENERS_PER_HOLDER) };
      this.hosts.set(t.host, h);
    }
    return h;
  }

  private usable(sha: string): Holder[] {
    return (this.holders.get(sha) ?? []).filter((h) => this.host(h.target).broken === undefined);
  }

  private add(sha: string, holder: Holder): void {
    const list = (this.holders.get(sha) ?? []).filter((h) => h.target.host !== holder.target.host);
    list.push(holder);
    this.holders.set(sha, list);
  }

  private lease(sha: string, target: SshTarget, slot?: () => void): UploadLease {
    let settle!: () => void;
    this.uploads.set(sha, { done: new Promise<void>((resolve) => (settle = resolve)), host: target.host });
    let done = false;
    const end = (paths?: string[]): void => {
      if (done) return;
      done = true;
      if (paths) this.add(sha, { target, paths });
      this.uploads.delete(sha);
      slot?.();
      settle();
    };
    return { uploaded: (paths) => end(paths), failed: () => end() };
  }

  private release(t: SshTarget): void {
    this.host(t).active--;
    const waiting = this.freed;
    this.freed = [];
    for (const w of waiting) w();
  }

  /** One copy, once the receiver has a channel for it (before the listener starts its wait for the request). */
  private copy(holder: Holder, receiver: PeerReceiver, file: RelayFile, temp: string, expect?: { sha256: string; size: number }): Promise<void> {
    return receiver.channels(() => this.copyNow(holder, receiver, file, temp, expect));
  }

  /** The holder's listener, then the receiver's client; throws on any failure (the caller falls back). */
  private async copyNow(holder: Holder, receiver: PeerReceiver, file: RelayFile, temp: string, expect?: { sha256: string; size: number }): Promise<void> {
    const state = this.host(holder.target);
    state.conn ??= this.connect(holder.target);
    state.conn.catch(() => undefined);
    const conn = await state.conn;
    const token = randomBytes(24).toString("hex");
    const address = holder.target.address;
    state.active++;
    let stdout = "";
    let gotPort!: (port: number) => void;
    const port = new Promise<number>((resolve) => (gotPort = resolve));
    const listener = state
      .channels(() => retryOpen(() => conn.exec(listenerCommand(address, holder.paths, expect), {
        stdin: `${token}\n`,
        timeoutMs: (REQUEST_S + TRANSFER_S + 5) * 1000,
        allowFail: true,
        onStdout: (b) => {
          stdout += b.toString("utf8");
          const m = /^PORT (\d+)\n/.exec(stdout);
          if (m) gotPort(Number(m[1]));
        },
      })))
      .finally(() => this.release(holder.target));
    listener.catch(() => undefined);
    const ended = listener.then((r) => {
      if (expect !== undefined && r.code === NOT_HERE) throw new NotHere();
      throw new Error(`the listener on ${holder.target.host} exited (${r.code}) before serving: ${r.stderr.trim() || "no message"}`);
    });
    ended.catch(() => undefined);
    const p = await Promise.race([port, ended]);
    const r = await retryOpen(() => receiver.run(clientCommand(address, p, temp, file), { stdin: `${token}\n`, timeoutMs: (CONNECT_S + TRANSFER_S + 10) * 1000 }));
    if (r.code !== 0) {
      const serverSide = await Promise.race([listener.then((l) => l.stderr.trim()), new Promise<string>((resolve) => setTimeout(() => resolve(""), 1000).unref())]);
      throw new Error(`${r.stderr.trim() || `exit ${r.code}`}${serverSide ? ` (on ${holder.target.host}: ${serverSide})` : ""}`);
    }
  }
}
