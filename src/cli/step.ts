// `binkube step STEP --host NAME`: the unit of work terraform runs for each resource, in its own
// process or on a step server (step-server.ts); both report through stepMain.
import * as path from "node:path";
import { runStep } from "../runner/run-step";
import { STEPS, stepByName } from "../steps";
import { configPathFromEnv, InventoryError } from "../inventory/load";
import { logger } from "../log";
import { parseArgs, type ParsedArgs } from "./args";
import type { LeafIssuer } from "../pki/issue";
import type { PeerSource } from "../remote";

/** What a step server's runs share: the leaf issuer, and each inventory's host-to-host relay. */
export interface DeployShared {
  issuer: LeafIssuer;
  relayFor?: (configFile: string) => PeerSource;
}

export function configFrom(args: ParsedArgs): string {
  const c = args.flags.get("config");
  return typeof c === "string" ? path.resolve(c) : configPathFromEnv();
}

export async function stepCommand(stepName: string | undefined, args: ParsedArgs, configFile: string, err: NodeJS.WritableStream = process.stderr, bootMs?: number, shared?: DeployShared): Promise<number> {
  const host = args.flags.get("host");
  if (!stepName || !stepByName(stepName)) {
    err.write(`binkube step: unknown step "${stepName ?? ""}"; steps: ${STEPS.map((s) => s.name).join(", ")}\n`);
    return 2;
  }
  if (typeof host !== "string") {
    err.write(`binkube step ${stepName}: --host NAME is required\n`);
    return 2;
  }
  const hash = args.flags.get("hash");
  await runStep(configFile, stepName, host, {
    expectHash: typeof hash === "string" ? hash : undefined,
    verbose: args.flags.get("verbose") === true,
    firstBringUp: args.flags.get("first-bring-up") === true,
    allowMissingBinaries: process.env.BINKUBE_ALLOW_MISSING_BINARIES === "1",
    out: logger(err),
    ...(bootMs !== undefined ? { bootMs } : {}),
    ...(shared ? { issuer: shared.issuer } : {}),
    ...(shared?.relayFor ? { peers: shared.relayFor(configFile) } : {}),
  });
  return 0;
}

/**
 * `binkube step …` from its argv (after "step") to an exit code, every line on `err`, exactly as
 * the CLI prints it: the step server answers each request with this, with what its runs share.
 */
export async function stepMain(argv: string[], err: NodeJS.WritableStream, bootMs?: number, shared?: DeployShared): Promise<number> {
  try {
    const args = parseArgs(argv);
    return await stepCommand(args.positional[0], args, configFrom(args), err, bootMs, shared);
  } catch (e) {
    if (e instanceof InventoryError) err.write(`${(e as Error).message}\n`);
    else logger(err)((e as Error).message);
    return 1;
  }
}
