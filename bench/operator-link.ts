/**
 * The operator's link, emulated on the lab bridge (issue 26): everything binkube (or the by-hand
 * script) sends from this machine to the lab hosts leaves through the bridge device's own egress,
 * while host-to-host traffic is switched between the bridge's ports and never passes that queue.
 * A `tbf` qdisc on the bridge device therefore shapes the operator → hosts direction only, and the
 * bridge's transmit counter is the bytes the operator sent.
 *
 * The bridge is shared by every lab on the machine: run one shaped benchmark at a time.
 */
import * as fs from "node:fs";
import { BRIDGE } from "../lab/config";
import { run } from "../test/helpers/proc";

export interface LinkMode {
  /** "200 Mbit/s" or "unshaped". */
  name: string;
  /** Mbit/s, or undefined for the bridge as it is. */
  rateMbit?: number;
}

export function linkModes(rateMbit: number, which: string[]): LinkMode[] {
  return which.map((w) => (w === "shaped" ? { name: `${rateMbit} Mbit/s`, rateMbit } : { name: "unshaped" }));
}

/** Bytes this machine has sent into the lab bridge so far. */
export function operatorBytes(): number {
  return Number(fs.readFileSync(`/sys/class/net/${BRIDGE}/statistics/tx_bytes`, "utf8").trim());
}

async function tc(args: string[]): Promise<void> {
  const r = await run("tc", args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`tc ${args.join(" ")}: ${r.stderr.trim()}`);
}

/**
 * Shapes the bridge's egress to `rateMbit`. The bucket holds 10 ms at the rate (at least 64 KiB,
 * above what one timer tick lets through at these rates); packets wait at most 100 ms in the queue,
 * which TCP sees as a bottleneck link's buffer rather than as loss.
 */
export async function shape(rateMbit: number): Promise<void> {
  const burst = Math.max(64 * 1024, Math.round((rateMbit * 1e6) / 8 / 100));
  await tc(["qdisc", "replace", "dev", BRIDGE, "root", "tbf", "rate", `${rateMbit}mbit`, "burst", String(burst), "latency", "100ms"]);
}

/** Back to the bridge's default queue (nothing to do if it was not shaped). */
export async function unshape(): Promise<void> {
  const r = await run("tc", ["qdisc", "show", "dev", BRIDGE], { timeoutMs: 10_000 });
  if (/qdisc tbf/.test(r.stdout)) await tc(["qdisc", "del", "dev", BRIDGE, "root"]);
}

/** Runs `p` over the link mode, returning its result and the bytes the operator sent meanwhile. */
export async function overLink<T>(mode: LinkMode, p: () => Promise<T>): Promise<{ result: T; bytes: number }> {
  if (mode.rateMbit) await shape(mode.rateMbit);
  try {
    const b0 = operatorBytes();
    const result = await p();
    return { result, bytes: operatorBytes() - b0 };
  } finally {
    if (mode.rateMbit) await unshape();
  }
}

export const mb = (bytes: number) => `${(bytes / 1e6).toFixed(0)} MB`;
