// Polling with a deadline and progress lines, for health gates.

import { AsyncLocalStorage } from "node:async_hooks";
import { BinkubeError } from "../errors";
import { clock as currentClock } from "./clock";

/** Wall time spent in waitFor by one step run (overlapping waits count once). */
export class GateClock {
  waitedMs = 0;
  waiting = 0;
  since = 0;
}
// A step server runs several instances at once in one process: each run's gates count on the
// clock of its own async context (runStep's withGateClock); a wait outside any run is not counted.
const clocks = new AsyncLocalStorage<GateClock>();

/** Runs fn with a gate clock of its own; bench:deploy's table reports it as the instance's gate wait. */
export function withGateClock<T>(fn: (clock: GateClock) => Promise<T>): Promise<T> {
  const clock = new GateClock();
  return clocks.run(clock, () => fn(clock));
}

/** A health gate said no (timed out, or a verdict such as a failed unit). */
export class GateError extends BinkubeError {}

interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  log: (line: string) => void;
  fix: string;
}

/**
 * Calls `probe` until it returns true or the deadline passes. A string return is the current
 * state ("2/3 members healthy"), shown every ~10 s and in the timeout error; any other error is
 * retried as a state, a GateError ends the wait at once.
 */
export async function waitFor(what: string, probe: () => Promise<true | string>, opts: WaitOptions): Promise<void> {
  const time = currentClock();
  const start = time.now();
  const clock = clocks.getStore();
  if (clock && clock.waiting++ === 0) clock.since = start;
  try {
    await poll(what, probe, opts, start);
  } finally {
    if (clock && --clock.waiting === 0) clock.waitedMs += time.now() - clock.since;
  }
}

async function poll(what: string, probe: () => Promise<true | string>, opts: WaitOptions, start: number): Promise<void> {
  const time = currentClock();
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
    const now = time.now();
    if (now - start > opts.timeoutMs) throw new GateError(`timed out after ${Math.round(opts.timeoutMs / 1000)} s waiting for ${what} (last state: ${state}). ${opts.fix}`);
    if (now - lastShown >= 10_000) {
      opts.log(`  … waiting for ${what}: ${state} (${Math.round((now - start) / 1000)} s)`);
      lastShown = now;
    }
    await time.sleep(opts.intervalMs ?? 1000);
  }
}
