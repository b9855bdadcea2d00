// The lab network: one bridge with the gateway address, a blackhole route for the whole lab
// range, and a rule that drops anything this machine would forward from the bridge. Traffic
// between lab hosts is switched by the bridge; nothing from the lab is ever routed off-machine.
import * as fs from "node:fs";
import { BLACKHOLE, BRIDGE, GATEWAY, PREFIX_LEN, RULE_PREF } from "./config";
import { Logger, run, runOk } from "./util";

function inLabRange(addr: string): boolean {
  // BLACKHOLE is 10.250.0.0/16
  return addr.startsWith("10.250.");
}

export async function bridgeExists(): Promise<boolean> {
  return (await run("ip", ["link", "show", "dev", BRIDGE])).code === 0;
}

/** Interfaces enslaved to the lab bridge (host sides of running hosts' veths). */
export async function bridgePorts(): Promise<string[]> {
  const r = await run("ip", ["-o", "link", "show", "master", BRIDGE]);
  if (r.code !== 0) return [];
  return r.stdout
    .split("\n")
    .map((l) => /^\d+:\s+([^:@]+)/.exec(l)?.[1])
    .filter((n): n is string => !!n);
}

/** Creates (or completes) the bridge, its address, the blackhole route and the forward-drop rule. */
export async function ensureNetwork(log: Logger): Promise<void> {
  // Refuse to start if the lab range is already used by something else on this machine.
  const addrs = await runOk("ip", ["-4", "-o", "addr", "show"]);
  for (const line of addrs.split("\n")) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d+\.\d+\.\d+\.\d+)\//.exec(line);
    if (m && m[1] !== BRIDGE && inLabRange(m[2])) {
      throw new Error(`lab range ${BLACKHOLE} is already in use on this machine (${m[2]} on ${m[1]}); cannot start the lab`);
    }
  }
  if (!(await bridgeExists())) {
    log(`network: creating bridge ${BRIDGE} (${GATEWAY}/${PREFIX_LEN})`);
    await runOk("ip", ["link", "add", "name", BRIDGE, "type", "bridge"]);
  }
  // No IPv6 on the lab bridge: nothing to autoconfigure, nothing to leak.
  try {
    fs.writeFileSync(`/proc/sys/net/ipv6/conf/${BRIDGE}/disable_ipv6`, "1");
  } catch {
    // no IPv6 in this kernel
  }
  const own = await runOk("ip", ["-4", "-o", "addr", "show", "dev", BRIDGE]);
  if (!own.includes(` ${GATEWAY}/${PREFIX_LEN} `)) {
    await runOk("ip", ["addr", "add", `${GATEWAY}/${PREFIX_LEN}`, "dev", BRIDGE]);
  }
  await runOk("ip", ["link", "set", "dev", BRIDGE, "up"]);
  // If the bridge ever disappears, its /24 route goes with it and this catches everything.
  await runOk("ip", ["route", "replace", "blackhole", BLACKHOLE]);
  const rules = await runOk("ip", ["rule", "show", "pref", String(RULE_PREF)]);
  if (!rules.includes(`iif ${BRIDGE}`)) {
    await runOk("ip", ["rule", "add", "pref", String(RULE_PREF), "iif", BRIDGE, "blackhole"]);
  }
}

/** Removes bridge, blackhole route and rule (only call when no lab is left). Idempotent. */
export async function teardownNetwork(log: Logger): Promise<void> {
  if (await bridgeExists()) {
    log(`network: removing bridge ${BRIDGE}`);
    await runOk("ip", ["link", "del", "dev", BRIDGE]);
  }
  const routes = await run("ip", ["route", "show", "type", "blackhole", BLACKHOLE]);
  if (routes.code === 0 && routes.stdout.trim()) {
    await run("ip", ["route", "del", "blackhole", BLACKHOLE]);
  }
  for (let i = 0; i < 10; i++) {
    const rules = await run("ip", ["rule", "show", "pref", String(RULE_PREF)]);
    if (rules.code !== 0 || !rules.stdout.trim()) break;
    await run("ip", ["rule", "del", "pref", String(RULE_PREF)]);
  }
}
