/**
 * Upload throughput: RemoteHost.sync (node-ssh/ssh2 SFTP, temp file + fsync + atomic rename)
 * vs OpenSSH `scp` of the same 100 MiB random file to the same real sshd on 127.0.0.1
 * (test/helpers/sshd.ts). Runs alternate, 5 each after one untimed warm-up of both; each
 * timing includes connect + auth + transfer + close, and the target is deleted before every
 * run so sync always uploads. Reports medians in MiB/s and ours/scp.
 *
 *   npx tsx bench/upload.ts [--no-fsync]   (standalone)
 *   benchUpload()                       (from bench/run.ts)
 */
import { execFile } from "child_process";
import { randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { RemoteHost } from "../src/remote";
import { sshdMissingReason, startSshd, type TestSshd } from "../test/helpers/sshd";

export interface UploadBenchResult {
  /** median MiB/s of RemoteHost.connect + sync + close */
  ours: number;
  /** median MiB/s of `scp` (process start to exit) */
  scp: number;
  /** ours / scp */
  ratio: number;
}

export interface UploadBenchOptions {
  sizeMiB?: number;
  rounds?: number;
  /** sync's fsync before rename (default true, as in deploys; scp never fsyncs) */
  fsync?: boolean;
  log?: (line: string) => void;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

function writeRandomFile(file: string, bytes: number): void {
  const fd = fs.openSync(file, "w");
  try {
    const chunk = 4 * 1024 * 1024;
    for (let left = bytes; left > 0; left -= chunk) fs.writeSync(fd, randomBytes(Math.min(chunk, left)));
  } finally {
    fs.closeSync(fd);
  }
}

function scpOnce(sshd: TestSshd, src: string, dst: string): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    execFile(
      "scp",
      [
        "-q",
        "-B",
        "-i",
        sshd.clientKeyPath,
        "-P",
        String(sshd.port),
        "-o",
        `UserKnownHostsFile=${sshd.knownHostsPath}`,
        "-o",
        "StrictHostKeyChecking=yes",
        src,
        `${sshd.user}@${sshd.address}:${dst}`,
      ],
      (err, _stdout, stderr) => {
        if (err) reject(new Error(`scp failed: ${stderr || err.message}`));
        else resolve(Number(process.hrtime.bigint() - t0) / 1e9);
      },
    );
  });
}

async function oursOnce(sshd: TestSshd, src: string, dst: string, fsync: boolean): Promise<number> {
  const t0 = process.hrtime.bigint();
  const h = await RemoteHost.connect({
    host: "bench",
    address: sshd.address,
    port: sshd.port,
    user: sshd.user,
    privateKeyPath: sshd.clientKeyPath,
    knownHostsPath: sshd.knownHostsPath,
  });
  try {
    const r = await h.sync([{ path: dst, mode: 0o755, sourcePath: src }], { fsync });
    if (r.changed.length !== 1) throw new Error("sync did not upload (target was expected to be missing)");
  } finally {
    await h.close();
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

export async function benchUpload(opts: UploadBenchOptions = {}): Promise<UploadBenchResult> {
  const missing = sshdMissingReason();
  if (missing) throw new Error(`upload benchmark needs a local sshd: ${missing}`);
  const sizeMiB = opts.sizeMiB ?? 100;
  const rounds = opts.rounds ?? 5;
  const fsync = opts.fsync ?? true;
  const log = opts.log ?? (() => undefined);
  const sshd = await startSshd();
  try {
    const src = path.join(sshd.dir, "payload.bin");
    writeRandomFile(src, sizeMiB * 1024 * 1024);
    const oursDst = path.join(sshd.dir, "files", "ours.bin");
    const scpDst = path.join(sshd.dir, "files", "scp.bin");
    const reset = (): void => {
      fs.rmSync(oursDst, { force: true });
      fs.rmSync(scpDst, { force: true });
    };
    // warm-up (page cache, sync's local sha256 — computed once per file and cached)
    reset();
    const hashAndWarm = await oursOnce(sshd, src, oursDst, fsync);
    await scpOnce(sshd, src, scpDst);
    log(`upload: ${sizeMiB} MiB, sync fsync=${fsync}; warm-up sync incl. local sha256: ${hashAndWarm.toFixed(2)} s`);
    const ours: number[] = [];
    const scp: number[] = [];
    for (let i = 0; i < rounds; i++) {
      reset();
      const so = await oursOnce(sshd, src, oursDst, fsync);
      ours.push(sizeMiB / so);
      reset();
      const ss = await scpOnce(sshd, src, scpDst);
      scp.push(sizeMiB / ss);
      log(`upload: round ${i + 1}: RemoteHost.sync ${(sizeMiB / so).toFixed(0)} MiB/s (${so.toFixed(2)} s), scp ${(sizeMiB / ss).toFixed(0)} MiB/s (${ss.toFixed(2)} s)`);
    }
    reset();
    const result = { ours: median(ours), scp: median(scp), ratio: median(ours) / median(scp) };
    log(`upload: median RemoteHost.sync ${result.ours.toFixed(0)} MiB/s, scp ${result.scp.toFixed(0)} MiB/s, ratio ${result.ratio.toFixed(2)}`);
    return result;
  } finally {
    await sshd.stop();
  }
}

if (require.main === module) {
  benchUpload({ log: (l) => console.log(l), fsync: !process.argv.includes("--no-fsync") })
    .then((r) => console.log(JSON.stringify(r)))
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
