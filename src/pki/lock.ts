// The PKI lock: a directory holding its owner's pid, so two binkube processes never write pki/ at
// once; a dead owner's lock is taken over.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import { processAlive } from "../util/fs";
import { readIf } from "./disk";
import { sleep } from "../util/sleep";

const LOCK_WAIT_MS = 60_000;

/** One attempt: the release function, or undefined while a live process holds it (its pid for the error). */
function tryLock(dir: string): { unlock?: () => void; holder: number } {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const lockDir = path.join(dir, ".lock");
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, "pid"), String(process.pid));
      return { unlock: () => fs.rmSync(lockDir, { recursive: true, force: true }), holder: process.pid };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const holder = Number(readIf(path.join(lockDir, "pid")));
      if (holder && !processAlive(holder)) {
        fs.rmSync(lockDir, { recursive: true, force: true });
        continue;
      }
      return { holder };
    }
  }
}

const lockBusy = (dir: string, holder: number) => new BinkubeError(`${path.join(dir, ".lock")} is held by process ${holder}: another binkube is writing the PKI; wait for it or remove the directory if that process is gone`);

/** The PKI lock for a one-shot process (synth, certs, kubeconfig): waits by blocking, up to 60 s. */
export function lockPki(dir: string): () => void {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const { unlock, holder } = tryLock(dir);
    if (unlock) return unlock;
    if (Date.now() > deadline) throw lockBusy(dir, holder);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

/**
 * The PKI lock for a process whose runs share one event loop (the step server): it waits without
 * blocking, and this process's runs take turns first (the lock directory cannot tell them apart).
 */
export class AsyncPkiLock {
  private turn: Promise<unknown> = Promise.resolve();

  async acquire(dir: string): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const before = this.turn;
    this.turn = before.then(() => mine);
    await before;
    try {
      const deadline = Date.now() + LOCK_WAIT_MS;
      for (;;) {
        const { unlock, holder } = tryLock(dir);
        if (unlock)
          return () => {
            unlock();
            release();
          };
        if (Date.now() > deadline) throw lockBusy(dir, holder);
        await sleep(50);
      }
    } catch (e) {
      release();
      throw e;
    }
  }
}
