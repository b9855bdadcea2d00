// `binkube step STEP --host NAME`: the unit of work terraform runs for each resource.
import { stepByName } from "../steps";
import { STEP_NAMES } from "../steps/types";
import type { ParsedArgs } from "./main";

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
  // The remote step runner arrives with the deploy issue; until then never report success.
  process.stderr.write(`binkube step ${stepName} --host ${host}: not implemented yet (config ${configFile}); nothing was changed on ${host}\n`);
  return 3;
}
