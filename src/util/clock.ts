// The time health gates read and wait on. Production always uses the real clock; a test runs a
// step under a fake one (test/helpers/fake-clock.ts), so a gate that times out after 120 s of
// clock time costs no wall time. Carried by the async context, like wait.ts's GateClock, so
// steps and their gates need no clock parameter of their own.
import { AsyncLocalStorage } from "node:async_hooks";
import { sleep } from "./sleep";

export interface Clock {
  /** Milliseconds since the epoch, as Date.now(). */
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = { now: () => Date.now(), sleep };

const clocks = new AsyncLocalStorage<Clock>();

/** The clock of the current async context: the real one unless a caller of withClock set another. */
export function clock(): Clock {
  return clocks.getStore() ?? realClock;
}

/** Runs fn, and everything it awaits, on `c`. */
export function withClock<T>(c: Clock, fn: () => Promise<T>): Promise<T> {
  return clocks.run(c, fn);
}
