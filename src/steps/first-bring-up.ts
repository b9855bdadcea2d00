// A step whose edge to another is skipped on its first bring-up (StepDep.skipOnFirstBringUp)
// starts beside the step it would have waited for and waits for what that step brings itself.
// While it waits, a failure of that step in this deploy (steps.log: every step run that fails
// writes a line) ends the wait at once, naming it, instead of at the wait's timeout minutes later.
import { GateError } from "../util/wait";
import type { RunContext } from "./types";

/** Throws (a GateError) when what the step waits for will not come; called at every poll. */
export type FailureWatch = () => void;

/**
 * Watches for failed runs of this deploy matching `which`: since the running cdktf command took
 * the inventory's deploy lock (a node's runtime that failed before this step started counts), or,
 * with no live holder (a step run by hand), since this call. Not a first bring-up: the step runs
 * after what it needs, and there is nothing to watch.
 */
export function watchFailures(rc: RunContext, which: (run: { step: string; host: string }) => boolean, waitingFor: string, now = Date.now()): FailureWatch {
  if (!rc.firstBringUp) return () => undefined;
  const since = Math.min(now, rc.operator.deployStartedAt() ?? now);
  return () => {
    const failed = rc.operator.failedRunsSince(since).filter(which);
    if (failed.length === 0) return;
    const steps = failed.map((e) => `${e.step} on ${e.host}`).join(", ");
    throw new GateError(`step ${steps} failed while ${rc.host.name} waited for ${waitingFor} (its error is above); nothing more was started here. Fix: what that step's error says, then re-run \`npx cdktf deploy\``);
  };
}
