// Runs one (step, host) instance: checks binaries locally before touching the host, connects,
// runs the step's procedure and health gate, prints one result line. Errors name the step and
// the host and carry the cause and the fix.
import * as fs from "node:fs";
import * as path from "node:path";
import { openStepInstance } from "../cluster";
import { stepByName } from "../steps";
import { fetchBinaries } from "../binaries/fetch";
import { checkReleaseLocally } from "../binaries/release";
import { openRunContext } from "./context";
import { BinkubeError, stepFailure, stepWhere } from "../errors";
import { Log, logger } from "../log";
import { GateClock, withGateClock } from "../util/wait";
import { record } from "./steps-log";
import type { LeafIssuer } from "../pki/issue";
import type { PeerSource } from "../remote";

export interface StepOptions {
  verbose: boolean;
  /** Synth found no instance of this step applied yet (plan.ts StepInstance.firstBringUp). */
  firstBringUp?: boolean;
  /** Report a step whose binaries are missing as skipped instead of failing (lab without k8s binaries). */
  allowMissingBinaries: boolean;
  /** Where result lines go (default: the binkube logger on stderr). */
  out?: Log;
  /**
   * Milliseconds from the start of the process that asked for this run to runStep (node, modules,
   * argv; for a step server's client, its own start and the request). Default: this process's.
   */
  bootMs?: number;
  /** Issues the leaves synth only recorded; a step server's runs share one (pki/issue.ts). Default: one for this run. */
  issuer?: LeafIssuer;
  /** The deploy's host-to-host relay (a step server's runs share one); without it every byte comes from the operator. */
  peers?: PeerSource;
}


export async function runStep(configFile: string, stepName: string, hostName: string, opts: StepOptions & { expectHash?: string }): Promise<"ok" | "skipped"> {
  const started = Date.now();
  try {
    return await withGateClock((gates) => runInstance(configFile, stepName, hostName, opts, gates));
  } catch (e) {
    // A step started beside others on its first bring-up stops waiting for them when one fails
    // (steps/first-bring-up.ts). The log sits beside the inventory (its baseDir), if there is one.
    const baseDir = path.dirname(configFile);
    if (fs.existsSync(configFile)) record(baseDir, `${stepName} ${hostName} failed ${((Date.now() - started) / 1000).toFixed(1)}s`);
    throw e;
  }
}

async function runInstance(configFile: string, stepName: string, hostName: string, opts: StepOptions & { expectHash?: string }, gates: GateClock): Promise<"ok" | "skipped"> {
  const out: Log = opts.out ?? logger(process.stderr);
  const where = stepWhere(stepName, hostName);
  const started = Date.now();
  // performance.now() counts from process start: node, module loading and argv parsing.
  const t = { boot: opts.bootMs ?? performance.now(), begin: performance.now(), loaded: 0, connected: 0 };
  const step = stepByName(stepName);
  if (!step) throw new BinkubeError(`${where}: unknown step`);
  // The resource carries the hash synth planned; shipping anything else would be a change Terraform never saw.
  const expectHash = (planned: { hash: string }) => {
    if (opts.expectHash && opts.expectHash !== planned.hash) {
      throw new BinkubeError(`${where}: drift: synth planned content ${opts.expectHash.slice(0, 12)}, this run would ship ${planned.hash.slice(0, 12)} (the inventory, pki/ or a binary changed since \`cdktf synth\`); nothing was changed on ${hostName}. Fix: re-run \`npx cdktf deploy\` so the plan and the hosts agree`);
    }
  };
  const { inv, binaries, inst } = await openStepInstance(configFile, step, hostName, { expectHash, issuer: opts.issuer });
  if (!inst) {
    const on = step.hosts(inv, []).map((h) => h.name);
    throw new BinkubeError(`${where}: this step does not run on ${hostName} (it runs on: ${on.join(", ") || "no host"}); re-run \`npx cdktf deploy\` so the plan matches the inventory`);
  }
  const cluster = { inv, binaries, inst };
  const needed = [...new Set([...inst.files.filter((f) => f.binary !== undefined).map((f) => f.binary!), ...(step.usesBinaries ?? [])])];
  const missing = needed.filter((b) => !cluster.binaries.get(b).present);
  if (missing.length > 0) {
    const why = `binaries not available: ${missing.join(", ")} (${cluster.inv.binaries.dir ? `not in ${cluster.inv.binaries.dir}` : "not in binaries.urls"})`;
    if (opts.allowMissingBinaries) {
      out(`SKIP ${where}: ${why}; nothing was changed on ${hostName}`);
      record(cluster.inv.baseDir, `${stepName} ${hostName} skipped`);
      return "skipped";
    }
    throw new BinkubeError(`${where}: ${why}. Fix: put them in binaries.dir or list them in binaries.urls, then re-run; nothing was changed on ${hostName}`);
  }
  await fetchBinaries(cluster, needed, out);
  checkReleaseLocally(cluster.binaries, needed, cluster.inv, where);
  t.loaded = performance.now();

  const rc = await openRunContext(cluster, { step: stepName, log: out, verbose: opts.verbose, connect: step.connect, firstBringUp: opts.firstBringUp === true, ...(opts.peers ? { peers: opts.peers } : {}) }).catch((e: Error) => {
    throw new BinkubeError(`${where}: cannot connect: ${e.message}`);
  });
  t.connected = performance.now();
  try {
    out(`${where}: ${step.description}`);
    const summary = await step.run(rc);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const peer = rc.peerBytes() > 0 ? `, ${(rc.peerBytes() / 1e6).toFixed(1)} MB from other hosts` : "";
    out(`✓ ${where}: ${summary} [${secs} s, ${(rc.bytesSent() / 1e6).toFixed(1)} MB sent${peer}]`);
    const phases = phaseTimes(t, performance.now(), rc.syncMs(), gates.waitedMs);
    // peer= and fallbacks=: bench:deploy counts a host's payload as both links' bytes
    const relay = opts.peers ? ` peer=${rc.peerBytes()} fallbacks=${rc.peerFallbacks()}` : "";
    record(cluster.inv.baseDir, `${stepName} ${hostName} ok ${secs}s ${rc.bytesSent()}B ${phases}${relay}`);
    return "ok";
  } catch (e) {
    throw stepFailure(stepName, hostName, e as Error);
  } finally {
    await rc.close();
  }
}

/**
 * Where one instance's time went, in seconds: process start (node and modules, before runStep;
 * with a step server, the client's start and its request), loading its plan, connecting, sync
 * (check + upload), remote work, gate waits. Recorded in steps.log for bench:deploy's table.
 * `boot` is a duration; the other marks are performance.now() readings of this process.
 */
export function phaseTimes(t: { boot: number; begin: number; loaded: number; connected: number }, end: number, syncMs: number, gateMs: number): string {
  const s = (ms: number) => (Math.max(0, ms) / 1000).toFixed(2);
  const work = end - t.connected - syncMs - gateMs;
  return `start=${s(t.boot)} plan=${s(t.loaded - t.begin)} connect=${s(t.connected - t.loaded)} upload=${s(syncMs)} work=${s(work)} gate=${s(gateMs)}`;
}

