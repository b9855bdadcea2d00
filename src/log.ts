// The one logger: every line an operator sees is "binkube: <line>" on the stream the entry point
// chose (stderr for commands; stdout under `cdktf synth`, which shows an app's stderr as ERROR).

import { stepWhere } from "./errors";

export type Log = (line: string) => void;

/**
 * The one way a step's message names its step and host (RunContext.note/warn): a note
 * "step S on H: …", a warning "WARNING step S on H: …". The message itself names other hosts only.
 */
export function stepLines(step: string, host: string, out: Log): { note: Log; warn: Log } {
  const where = stepWhere(step, host);
  return { note: (l) => out(`${where}: ${l}`), warn: (l) => out(`WARNING ${where}: ${l}`) };
}

export function logger(stream: NodeJS.WritableStream = process.stderr): Log {
  return (line) => {
    for (const l of line.split("\n")) stream.write(`binkube: ${l}\n`);
  };
}
