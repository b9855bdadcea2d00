// The one logger: every line an operator sees is "binkube: <line>" on the stream the entry point
// chose (stderr for commands; stdout under `cdktf synth`, which shows an app's stderr as ERROR).

export type Log = (line: string) => void;

export function logger(stream: NodeJS.WritableStream = process.stderr): Log {
  return (line) => {
    for (const l of line.split("\n")) stream.write(`binkube: ${l}\n`);
  };
}
