/**
 * SFTP transfer primitives on an ssh2 SFTP session (opened through node-ssh): a pipelined
 * uploader (many outstanding WRITE requests, like OpenSSH's sftp/scp client), fsync via the
 * fsync@openssh.com extension, and the finalize operations (chown, chmod, posix-rename).
 */
import * as fs from "fs";
import type { Ssh2Sftp } from "./ssh2-types";

/**
 * Bytes per SFTP WRITE request: OpenSSH's sftp-server accepts up to 255 KiB (its limits@openssh.com
 * max-write-length, 256 KiB messages minus 1 KiB), and ssh2 splits a larger write to whatever
 * limit the server announces. Each request costs the server a pwrite and a status reply, and
 * us a callback, so fewer, larger ones upload faster (measured: 32 KiB requests 0.81x scp's
 * throughput, 255 KiB 0.9x or better, bench/upload.ts).
 */
export const WRITE_CHUNK = 255 * 1024;
/** bytes in flight (unacknowledged WRITEs) before reading more of the local file */
export const WRITE_WINDOW = 8 * 1024 * 1024;
/** local read size: whole WRITEs, so no short request per block */
const READ_BLOCK = 4 * WRITE_CHUNK;

const call = <T = void>(fn: (cb: (err?: Error | null, v?: T) => void) => void): Promise<T> =>
  new Promise<T>((resolve, reject) => {
    try {
      fn((err, v) => (err ? reject(err) : resolve(v as T)));
    } catch (err) {
      reject(err); // ssh2 throws synchronously for unsupported extensions
    }
  });

/** SFTP status NO_SUCH_FILE (2): e.g. the parent dir does not exist (yet) */
export function isNoSuchFile(err: unknown): boolean {
  return !!err && typeof err === "object" && "code" in err && (err as { code: unknown }).code === 2;
}

export function isUnsupportedExtension(err: unknown): boolean {
  return err instanceof Error && /does not support this extended request/.test(err.message);
}

export interface PutOptions {
  /** called with the size of every acknowledged WRITE */
  onBytes: (n: number) => void;
  /** fsync@openssh.com before close, when the server offers it (returns whether it ran) */
  fsync: boolean;
  /** bytes per WRITE request (default WRITE_CHUNK) */
  chunk?: number;
}

/**
 * Write `source` (a Buffer, or a local file path of `size` bytes) to `remotePath`, created
 * with mode 0600 so nobody else can read it before its final mode is applied.
 * Returns whether the file was fsync'ed.
 */
export async function putFile(
  sftp: Ssh2Sftp,
  source: Buffer | string,
  size: number,
  remotePath: string,
  opts: PutOptions,
): Promise<{ fsynced: boolean }> {
  const handle = await call<Buffer>((cb) => sftp.open(remotePath, "w", { mode: 0o600 }, cb));
  const chunk = opts.chunk ?? WRITE_CHUNK;
  let fh: fs.promises.FileHandle | undefined;
  let ok = false;
  try {
    let outstanding = 0;
    let failed: Error | undefined;
    let wake: (() => void) | undefined;
    const settle = (): void => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const send = (buf: Buffer, off: number, len: number, pos: number, done?: () => void): void => {
      outstanding += len;
      sftp.write(handle, buf, off, len, pos, (err) => {
        outstanding -= len;
        if (err) failed ??= err;
        else opts.onBytes(len);
        done?.();
        settle();
      });
    };
    const waitBelow = async (limit: number): Promise<void> => {
      while (outstanding > limit && !failed) await new Promise<void>((r) => (wake = r));
      if (failed) throw failed;
    };

    let pos = 0;
    if (Buffer.isBuffer(source)) {
      for (; pos < source.length; pos += chunk) {
        send(source, pos, Math.min(chunk, source.length - pos), pos);
        if (outstanding > WRITE_WINDOW) await waitBelow(WRITE_WINDOW / 2);
      }
    } else {
      fh = await fs.promises.open(source, "r");
      // read buffers are recycled once every WRITE cut from them is acknowledged
      const spare: Buffer[] = [];
      for (;;) {
        const buf = spare.pop() ?? Buffer.allocUnsafe(READ_BLOCK);
        const { bytesRead } = await fh.read(buf, 0, READ_BLOCK, pos);
        if (bytesRead === 0) break;
        let pending = Math.ceil(bytesRead / chunk);
        const release = (): void => {
          if (--pending === 0) spare.push(buf);
        };
        for (let off = 0; off < bytesRead; off += chunk) {
          send(buf, off, Math.min(chunk, bytesRead - off), pos + off, release);
        }
        pos += bytesRead;
        if (outstanding > WRITE_WINDOW) await waitBelow(WRITE_WINDOW / 2);
      }
      if (pos !== size) throw new Error(`local file ${source} changed size during upload (${size} → ${pos} bytes)`);
    }
    await waitBelow(0);

    let fsynced = false;
    if (opts.fsync) {
      try {
        await call((cb) => sftp.ext_openssh_fsync(handle, cb));
        fsynced = true;
      } catch (err) {
        if (!isUnsupportedExtension(err)) throw err;
      }
    }
    ok = true;
    await call((cb) => sftp.close(handle, cb));
    return { fsynced };
  } finally {
    await fh?.close().catch(() => undefined);
    if (!ok) await call((cb) => sftp.close(handle, cb)).catch(() => undefined);
  }
}

/** size of the file at `p` (following symlinks), or undefined when it does not exist / cannot be read */
export const sftpStatSize = (sftp: Ssh2Sftp, p: string): Promise<number | undefined> =>
  call<{ size: number; isFile(): boolean }>((cb) => sftp.stat(p, cb)).then(
    (st) => (st.isFile() ? st.size : undefined),
    () => undefined,
  );

export const sftpChmod = (sftp: Ssh2Sftp, p: string, mode: number): Promise<void> => call((cb) => sftp.chmod(p, mode, cb));
export const sftpChown = (sftp: Ssh2Sftp, p: string, uid: number, gid: number): Promise<void> =>
  call((cb) => sftp.chown(p, uid, gid, cb));
export const sftpUnlink = (sftp: Ssh2Sftp, p: string): Promise<void> => call((cb) => sftp.unlink(p, cb));
/** rename(2) semantics (replaces the target atomically): posix-rename@openssh.com */
export const sftpPosixRename = (sftp: Ssh2Sftp, from: string, to: string): Promise<void> =>
  call((cb) => sftp.ext_openssh_rename(from, to, cb));
