/** Copying one host file home: streamed through `cat`, written under a temp name, sha256-checked, renamed. */
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import { RemoteError } from "./errors";
import { DEFAULT_EXEC_TIMEOUT_MS, runCommand, type Session } from "./exec";
import { shq } from "./shell";
import type { FetchResult } from "./types";

/**
 * Copy a remote file to `localPath` (created 0600). Streamed through `cat` on an exec channel,
 * so sudo applies as for any command; written under a temp name, checked against the host's
 * sha256sum and renamed, so a cut connection or a short read leaves no file behind.
 */
export async function fetchFile(s: Session, remotePath: string, localPath: string, opts: { timeoutMs?: number } = {}): Promise<FetchResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const expected = (await runCommand(s, `sha256sum -- ${shq(remotePath)}`, { timeoutMs })).stdout.trim().split(/\s+/)[0];
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
    await runCommand(s, `cat -- ${shq(remotePath)}`, { timeoutMs, onStdout: write });
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    open = false;
    const got = hash.digest("hex");
    if (got !== expected) {
      throw new RemoteError(s.target.host, `${s.label}: ${remotePath} arrived with sha256 ${got} (${bytes} bytes), the host has ${expected}`, {
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
