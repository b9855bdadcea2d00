/**
 * The slice of the ssh2 (1.17) API this module uses. @types/ssh2 is not a dependency, so
 * node-ssh's own typings see `ssh2` as `any`; these interfaces keep our code typed.
 */
import type { EventEmitter } from "events";
import type { Duplex, Readable } from "stream";

export interface Ssh2Channel extends Duplex {
  stderr: Readable;
  close(): void;
}

export interface Ssh2Sftp extends EventEmitter {
  open(path: string, flags: string, attrs: { mode?: number }, cb: (err: Error | undefined, handle: Buffer) => void): void;
  write(handle: Buffer, buf: Buffer, off: number, len: number, pos: number, cb: (err?: Error | null) => void): void;
  close(handle: Buffer, cb: (err?: Error | null) => void): void;
  chmod(path: string, mode: number, cb: (err?: Error | null) => void): void;
  chown(path: string, uid: number, gid: number, cb: (err?: Error | null) => void): void;
  unlink(path: string, cb: (err?: Error | null) => void): void;
  stat(path: string, cb: (err: Error | undefined, stats: { size: number; isFile(): boolean }) => void): void;
  /** posix-rename@openssh.com; throws synchronously when the server lacks it */
  ext_openssh_rename(from: string, to: string, cb: (err?: Error | null) => void): void;
  /** fsync@openssh.com; throws synchronously when the server lacks it */
  ext_openssh_fsync(handle: Buffer, cb: (err?: Error | null) => void): void;
  end(): void;
}

export interface Ssh2Client extends EventEmitter {
  end(): void;
  destroy(): void;
}

export interface AlgorithmsList {
  remove?: string[];
  prepend?: string[];
}

/** ssh2 ConnectConfig, the fields we pass (node-ssh forwards them unchanged). */
export interface Ssh2ConnectConfig {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  hostVerifier: (key: Buffer) => boolean;
  readyTimeout: number;
  keepaliveInterval: number;
  keepaliveCountMax: number;
  sock?: Ssh2Channel;
  algorithms?: { serverHostKey?: AlgorithmsList };
}
