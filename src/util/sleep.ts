// A promise that resolves after `ms` milliseconds.

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Blocks this thread for `ms` (a one-shot process waiting on a lock file, with nothing else to do). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
