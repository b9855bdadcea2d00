// A clock for unit tests whose sleeps take no wall time. Every sleep becomes a timer; once the
// code under test has nothing left to do but wait (a setImmediate after its promise callbacks
// ran), the clock jumps to the earliest timer and fires every timer due by then. Concurrent
// waits (a crash-loop watch beside a health gate) see one shared time, in order, as they would
// on a real clock.
import type { Clock } from "../../src/util/clock";

export class FakeClock implements Clock {
  private t: number;
  private timers: { at: number; fire: () => void }[] = [];
  private pending = false;
  constructor(start = Date.UTC(2026, 11, 4, 22, 0, 0)) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  sleep(ms: number): Promise<void> {
    return new Promise((fire) => {
      this.timers.push({ at: this.t + Math.max(0, ms), fire });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.advance();
    });
  }

  private advance(): void {
    if (this.timers.length === 0) return;
    this.t = Math.max(this.t, Math.min(...this.timers.map((x) => x.at)));
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fire();
    if (this.timers.length > 0) this.schedule();
  }
}
