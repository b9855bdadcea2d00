/** The connection's one SFTP session: opened on first use, shared by later syncs, reopened after it closes or fails. */
import type { NodeSSH } from "node-ssh";
import { within } from "./async";
import type { Ssh2Sftp } from "./ssh2-types";

export class SftpSession {
  private readonly ssh: NodeSSH;
  private session?: Promise<Ssh2Sftp>;

  constructor(ssh: NodeSSH) {
    this.ssh = ssh;
  }

  /** the open (or opening) session; a new one once the last closed, failed or was closed here */
  get(): Promise<Ssh2Sftp> {
    if (!this.session) {
      const p = (this.ssh.requestSFTP() as Promise<unknown>).then((s) => {
        const sftp = s as Ssh2Sftp;
        const reset = (): void => {
          if (this.session === p) this.session = undefined;
        };
        sftp.on("close", reset);
        sftp.on("error", reset);
        return sftp;
      });
      p.catch(() => {
        if (this.session === p) this.session = undefined;
      });
      this.session = p;
    }
    return this.session;
  }

  /** End the session, if any (one still opening gets 1 s). Safe to call twice. */
  async close(): Promise<void> {
    const s = this.session;
    this.session = undefined;
    if (s) {
      try {
        (await within(s, 1000, undefined))?.end();
      } catch {
        /* ignore */
      }
    }
  }
}
