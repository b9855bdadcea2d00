/** Public types of the remote executor. */

export interface SshTarget {
  /** inventory host name, used in every error message */
  host: string;
  address: string;
  port: number;
  user: string;
  privateKeyPath: string;
  /**
   * OpenSSH known_hosts file (plain and hashed `|1|` entries). As in OpenSSH, the entry looked
   * up is `address` for port 22 and `[address]:port` for any other port.
   */
  knownHostsPath?: string;
  /** pinned "SHA256:base64" fingerprints (as `ssh-keygen -lf` prints them) */
  hostKeyFingerprints?: string[];
  /** non-root user: run commands via `sudo -n` */
  sudo?: boolean;
  /**
   * Jump host (ssh2 forwardOut + sock). Its host key is verified like the target's; when it
   * names neither knownHostsPath nor hostKeyFingerprints, the target's knownHostsPath is used.
   */
  bastion?: Omit<SshTarget, "bastion" | "sudo">;
}

export interface ExecResult {
  /** exit code; -1 when the remote side sent none (process killed by a signal, channel lost) */
  code: number;
  stdout: string;
  stderr: string;
}

/** One file to place on a host. Exactly one of content / sourcePath. */
export interface FileToShip {
  /** absolute remote path */
  path: string;
  /** permission bits, e.g. 0o644 (0..0o7777) */
  mode: number;
  content?: string | Buffer;
  /** local file to stream (large binaries) */
  sourcePath?: string;
  /**
   * sha256 (hex) of the content, when the caller already knows it (render plans do).
   * For sourcePath it is trusted and saves hashing the file; for content it is checked.
   */
  sha256?: string;
  /**
   * A release binary, the same on every host that gets it: the sync may fetch it from another
   * host of the deploy that has it (peer-source.ts). Never set for rendered content, which may
   * hold a key, a token or a kubeconfig.
   */
  public?: boolean;
  /** for a public file: where other hosts keep the same content, when not at `path` (staging) */
  usualPath?: string;
}

export interface ConnectOptions {
  /** TCP connect + SSH handshake + auth, per attempt (default 10 000 ms) */
  connectTimeoutMs?: number;
  /** extra attempts after the first, for connect-level failures only (default 3: waits 0.5 s, 1 s, 2 s) */
  retries?: number;
  /** receives log lines; never file contents, stdin or key material */
  log?: (line: string) => void;
  /** log every command run on the host (the `--verbose` view) */
  verbose?: boolean;
}

export interface ExecOptions {
  /** default 120 000 ms; on expiry the channel is closed, exec throws, and the host kills the command 1 s later */
  timeoutMs?: number;
  /** return non-zero exit codes instead of throwing */
  allowFail?: boolean;
  /** written to the command's stdin (never logged) */
  stdin?: string;
  /** receives stdout as it arrives instead of collecting it (result.stdout is then empty) */
  onStdout?: (chunk: Buffer) => void;
}

export interface FetchResult {
  bytes: number;
  sha256: string;
}

export interface SyncOptions {
  /** chown target for every file, "user", "user:group" or numeric; unset = leave as created */
  owner?: string;
  /** fsync uploaded files before the rename (default true) */
  fsync?: boolean;
  /** timeout for each remote command of the sync (default 120 000 ms) */
  timeoutMs?: number;
}

export interface SyncResult {
  /** paths that were (re)written or whose mode/owner was re-applied */
  changed: string[];
  unchanged: string[];
  /** payload bytes uploaded by this sync */
  bytesSent: number;
  /** payload bytes this host copied from other hosts instead */
  peerBytes: number;
  /** copies from another host that failed and were sent from the operator instead */
  peerFallbacks: number;
}

export type RemoteErrorKind =
  | "config" // bad target / bad input; fix the inventory or the caller
  | "unreachable" // TCP / handshake-level failure after retries
  | "hostkey" // host key not trusted
  | "auth" // authentication refused
  | "connection" // an established connection died
  | "exec" // command exited non-zero
  | "timeout" // command exceeded its timeout
  | "upload"; // SFTP or finalize step failed
