// Polling with a deadline and progress lines, for health gates.

import { BinkubeError } from "../errors";
import { sleep } from "./sleep";

let waitedMs = 0;
let waiting = 0;
let waitingSince = 0;
/**
 * Wall time this process spent in waitFor (gates; overlapping waits count once). A step process
 * runs one instance, so the runner reports it as that instance's gate wait (bench:deploy's table).
 */
export function gateWaitMs(): number {
  return waitedMs;
}

/** A health gate said no (timed out, or a verdict such as a failed unit). */
export class GateError extends BinkubeError {}

/**
 * Calls `probe` until it returns true or the deadline passes. A string return is the current
 * state ("2/3 members healthy"), shown every ~10 s and in the timeout error; any other error is
 * retried as a state, a GateError ends the wait at once.
 */
interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  log: (line: string) => void;
  fix: string;
}

export async function waitFor(what: string, probe: () => Promise<true | string>, opts: WaitOptions): Promise<void> {
  const start = Date.now();
  if (waiting++ === 0) waitingSince = start;
  try {
    await poll(what, probe, opts, start);
  } finally {
    if (--waiting === 0) waitedMs += Date.now() - waitingSince;
  }
}

async function poll(what: string, probe: () => Promise<true | string>, opts: WaitOptions, start: number): Promise<void> {
  let lastShown = start;
  let state = "not checked yet";
  for (;;) {
    try {
      const r = await probe();
      if (r === true) return;
      state = r;
    } catch (e) {
      // A GateError from the probe is a verdict (the unit failed, etcd refused for good): stop now.
      if (e instanceof GateError) throw e;
      state = (e as Error).message.split("\n")[0]!;
    }
    const now = Date.now();
    if (now - start > opts.timeoutMs) throw new GateError(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what} (last state: ${state}). ${opts.fix}`);
    if (now - lastShown >= 10_000) {
      opts.log(`  … waiting for ${what}: ${state} (${Math.round((now - start) / 1000)} s)`);
      lastShown = now;
    }
    await sleep(opts.intervalMs ?? 1000);
  }
}
