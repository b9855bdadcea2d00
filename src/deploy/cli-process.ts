// Which process is "the deploy": the cdktf CLI that ran this app (cdktf deploy / diff / synth /
// destroy). Locks are held in its name, so they last exactly as long as that command, and a
// command that dies (Ctrl-C, kill -9, power loss) frees them with no clean-up step.
import { procArgv, procParent, procStartTime } from "../util/fs";

export interface Owner {
  pid: number;
  /** Clock ticks since boot at its start: a recycled pid is not mistaken for it. */
  start: number;
  /** Its command line as the operator would recognise it ("cdktf deploy --auto-approve"). */
  command: string;
}

/** The cdktf CLI's own entry (node …/cdktf-cli/bundle/bin/cdktf …), as /proc shows it. */
const isCdktfCli = (argv: string[]) => argv.slice(0, 3).some((w) => /(^|\/)cdktf(\.js)?$/.test(w) || /cdktf-cli\/bundle\/bin\/cdktf/.test(w));

/** "cdktf deploy --auto-approve": the CLI's words from its own name on. */
function describe(argv: string[]): string {
  const i = argv.findIndex((w) => /(^|\/)cdktf(\.js)?$/.test(w));
  return ["cdktf", ...argv.slice(i + 1)].join(" ");
}

/**
 * The cdktf CLI this process runs under (cdktf runs the app through `sh -c`), else this process
 * itself (the app run by hand, a test, a benchmark): its locks then last as long as the synth.
 */
export function deployOwner(pid = process.pid): Owner {
  for (let p = procParent(pid), hops = 0; p && p > 1 && hops < 8; p = procParent(p), hops++) {
    const argv = procArgv(p);
    if (isCdktfCli(argv)) return { pid: p, start: procStartTime(p) ?? 0, command: describe(argv) };
  }
  return { pid, start: procStartTime(pid) ?? 0, command: procArgv(pid).join(" ") };
}
