import type { RemoteErrorKind } from "./types";

export interface RemoteErrorDetails {
  kind: RemoteErrorKind;
  cause?: unknown;
  /** what the operator should do; appended to the message */
  fix?: string;
  command?: string;
  exitCode?: number;
  stderr?: string;
}

/**
 * Every failure of the remote executor. The message always starts with
 * `host NAME (ADDRESS:PORT)` and ends with the fix when there is one.
 */
export class RemoteError extends Error {
  readonly host: string;
  readonly kind: RemoteErrorKind;
  override cause?: unknown;
  readonly fix?: string;
  readonly command?: string;
  readonly exitCode?: number;
  readonly stderr?: string;

  constructor(host: string, message: string, details: RemoteErrorDetails) {
    super(details.fix ? `${message}. ${details.fix}` : message);
    this.name = "RemoteError";
    this.host = host;
    this.kind = details.kind;
    if (details.cause !== undefined) this.cause = details.cause;
    if (details.fix !== undefined) this.fix = details.fix;
    if (details.command !== undefined) this.command = details.command;
    if (details.exitCode !== undefined) this.exitCode = details.exitCode;
    if (details.stderr !== undefined) this.stderr = details.stderr;
  }
}

/** The last `n` non-empty lines of `text`. */
export function lastLines(text: string, n: number): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  return lines.slice(-n).join("\n");
}

/** Shorten a command for an error message (scripts can be long; they never hold secrets). */
export function shortCommand(command: string, max = 300): string {
  const one = command.replace(/\s*\n\s*/g, "; ");
  return one.length > max ? `${one.slice(0, max)}…` : one;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

export function errorCode(err: unknown): string | undefined {
  if (err && typeof err === "object" && "code" in err) {
    const c = (err as { code: unknown }).code;
    if (typeof c === "string") return c;
  }
  return undefined;
}
