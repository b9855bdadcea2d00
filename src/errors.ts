// The one error type an operator reads: what failed, where (step, host), and the fix. Structured
// errors with more to say (InventoryError: one issue per field; RemoteError: a kind) extend it.

export class BinkubeError extends Error {
  constructor(
    message: string,
    readonly details: { where?: string; fix?: string } = {},
  ) {
    super([details.where, message].filter(Boolean).join(": ") + (details.fix ? `. Fix: ${details.fix}` : ""));
    this.name = new.target.name;
  }
}

/** How every line about one step instance names it: "step etcd on lab1". */
export const stepWhere = (step: string, host: string): string => `step ${step} on ${host}`;

/**
 * A step instance's failure as the operator reads it (runner/run-step.ts): the step and its host,
 * the cause with its fix, and that a re-run is safe. Step unit tests check this same message.
 */
export function stepFailure(step: string, host: string, cause: Error): BinkubeError {
  return new BinkubeError(`${stepWhere(step, host)} failed: ${cause.message}\nThe step can be re-run safely: files are replaced atomically and only changed ones are sent.`);
}
