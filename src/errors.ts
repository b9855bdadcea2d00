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
