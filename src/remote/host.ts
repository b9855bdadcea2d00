/**
 * RemoteHost: one verified SSH connection (optionally through a bastion) on node-ssh, with
 * exit-code-checked, time-limited commands and an idempotent, atomic file sync. This class only
 * wires the parts together: connect.ts, exec.ts, fetch.ts, file-sync.ts, sftp-session.ts.
 */
import { closeLink, openLinks, type Link, type Links } from "./connect";
import { runCommand, type Session } from "./exec";
import { fetchFile } from "./fetch";
import { syncFiles } from "./file-sync";
import type { PeerSyncOptions } from "./peer-source";
import { SftpSession } from "./sftp-session";
import type { ConnectOptions, ExecOptions, ExecResult, FetchResult, FileToShip, SshTarget, SyncOptions, SyncResult } from "./types";

export { DEFAULT_EXEC_TIMEOUT_MS } from "./exec";
export { DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_RETRIES } from "./connect";

export class RemoteHost {
  readonly target: SshTarget;
  /** "host lab2 (10.0.0.5:22)" — the prefix of every error message */
  readonly label: string;
  private readonly session: Session;
  private readonly bastionLink?: Link;
  private readonly sftp: SftpSession;
  private closing?: Promise<void>;

  private constructor(target: SshTarget, links: Links, opts: ConnectOptions) {
    this.target = target;
    this.label = links.link.label;
    if (links.bastionLink) this.bastionLink = links.bastionLink;
    this.session = {
      target,
      label: this.label,
      link: links.link,
      log: opts.log ?? (() => undefined),
      verbose: opts.verbose === true,
      stats: { commands: 0, bytesSent: 0 },
    };
    this.sftp = new SftpSession(links.link.ssh);
  }

  /** payload bytes uploaded over this connection (for benchmarks) */
  get bytesSent(): number {
    return this.session.stats.bytesSent;
  }

  /** remote commands run over this connection (sync's check is one) */
  get commandsRun(): number {
    return this.session.stats.commands;
  }

  /** false once the connection (or the bastion's) is gone */
  get connected(): boolean {
    return !this.session.link.state.closed;
  }

  static async connect(target: SshTarget, opts: ConnectOptions = {}): Promise<RemoteHost> {
    return new RemoteHost(target, await openLinks(target, opts), opts);
  }

  /**
   * Run a command (through `sudo -n sh -c` when target.sudo). Throws RemoteError naming the
   * host, the command, the exit code and the last stderr lines unless allowFail; throws on
   * timeout (default 120 s) after closing the channel (the host kills the command 1 s later).
   */
  async exec(command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return runCommand(this.session, command, opts);
  }

  /**
   * Copy a remote file to `localPath` (created 0600). Streamed through `cat` on an exec channel,
   * so sudo applies as for any command; written under a temp name, checked against the host's
   * sha256sum and renamed, so a cut connection or a short read leaves no file behind.
   */
  async fetchFile(remotePath: string, localPath: string, opts: { timeoutMs?: number } = {}): Promise<FetchResult> {
    return fetchFile(this.session, remotePath, localPath, opts);
  }

  /**
   * Make the host's files equal to `files`. One round trip (an exec) reads sha256, mode and
   * owner of every target, creates parent dirs and removes stale temp files; unchanged files
   * are skipped, mode/owner-only differences fixed in place, the rest written over SFTP to
   * `.NAME.binkube-tmp-RANDOM` beside the target (created 0600), fsync'ed, chown'ed, chmod'ed
   * and renamed over the target (rename(2): posix-rename@openssh.com, or `mv -fT`).
   * Targets that SFTP stat shows missing or of another size start uploading while the check
   * runs (they differ whatever their hash). With sudo, uploads go to a private staging dir
   * and a `sudo` script copies them beside the targets and renames them. With `peers`, public
   * files may come from another host of the deploy instead (peer-source.ts).
   */
  async sync(files: FileToShip[], opts: SyncOptions & PeerSyncOptions = {}): Promise<SyncResult> {
    return syncFiles(this.session, this.sftp, files, opts);
  }

  /** Close the connection (and the bastion's). Safe to call twice. */
  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        await this.sftp.close();
        await closeLink(this.session.link);
        if (this.bastionLink) await closeLink(this.bastionLink);
      })();
    }
    return this.closing;
  }
}
