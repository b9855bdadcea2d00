// A step whose edge to another is skipped on its first bring-up (StepDep.skipOnFirstBringUp)
// starts beside the step it would have waited for and waits for what that step brings itself.
// While it waits, a failure of that step (steps.log: every step run that fails writes a line)
// ends the wait at once, naming it, instead of at the wait's timeout minutes later.
import { readStepsLog, stepsLogSize, type StepsLogEntry } from "../runner/steps-log";
import { GateError } from "../util/wait";
import type { RunContext } from "./types";

/** Throws (a GateError) when what the step waits for will not come; called at every poll. */
export type FailureWatch = () => void;

/**
 * Watches for failed runs matching `which`, written after this call (a failure from before it
 * started is not seen: the waits then time out as they would). Not a first bring-up: the step
 * runs after what it needs, and there is nothing to watch.
 */
export function watchFailures(rc: RunContext, which: (e: StepsLogEntry) => boolean, waitingFor: string): FailureWatch {
  if (!rc.firstBringUp) return () => undefined;
  const from = stepsLogSize(rc.inv.baseDir);
  return () => {
    const failed = readStepsLog(rc.inv.baseDir, from).filter((e) => e.outcome === "failed" && which(e));
    if (failed.length === 0) return;
    const steps = failed.map((e) => `${e.step} on ${e.host}`).join(", ");
    throw new GateError(`step ${steps} failed while ${rc.host.name} waited for ${waitingFor} (its error is above); nothing more was started here. Fix: what that step's error says, then re-run \`npx cdktf deploy\``);
  };
}
