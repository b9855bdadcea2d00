// `binkube step STEP --host NAME`: the unit of work terraform runs for each resource.
import { runStep } from "../runner/run-step";
import { stepByName } from "../steps";
import { STEP_NAMES } from "../steps/types";
import type { ParsedArgs } from "./args";

export async function stepCommand(stepName: string | undefined, args: ParsedArgs, configFile: string): Promise<number> {
  const host = args.flags.get("host");
  if (!stepName || !stepByName(stepName)) {
    process.stderr.write(`binkube step: unknown step "${stepName ?? ""}"; steps: ${STEP_NAMES.join(", ")}\n`);
    return 2;
  }
  if (typeof host !== "string") {
    process.stderr.write(`binkube step ${stepName}: --host NAME is required\n`);
    return 2;
  }
  const hash = args.flags.get("hash");
  await runStep(configFile, stepName, host, {
    expectHash: typeof hash === "string" ? hash : undefined,
    verbose: args.flags.get("verbose") === true,
    firstBringUp: args.flags.get("first-bring-up") === true,
    allowMissingBinaries: process.env.BINKUBE_ALLOW_MISSING_BINARIES === "1",
  });
  return 0;
}
