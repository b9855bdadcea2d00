// A restarting apiserver leaves every node-local proxy's rotation first (withMasterDrained), against
// scripted proxies: drained everywhere before the restart, ready again afterwards even when the
// restart fails, awaited UP behind each proxy before the next master may go, proxies that are not
// running yet skipped, and nothing at all without the proxy.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ExecResult } from "../../src/remote";
import { withMasterDrained } from "../../src/steps/node-proxy";
import { withClock } from "../../src/util/clock";
import { baseInventory } from "../helpers/fixtures";
import { scriptedHost } from "../helpers/scripted-host";

const HEADER = "# pxname,svname,qcur,status,check_status";

/** Two masters (k8s-master, k8s-node) and three kubelet hosts, each with a scripted haproxy. */
function scripted(opts: { proxy: boolean; notRunning?: string[]; upAfterPolls?: number }) {
  const raw = baseInventory();
  raw.hosts[1]!.roles = ["etcd", "master", "node"];
  (raw as Record<string, unknown>).apiserver = { nodeLocalProxy: opts.proxy };
  const masters = raw.hosts.filter((h) => (h.roles as string[]).includes("master")).map((h) => h.name as string);
  const master = masters[0]!;
  const events: string[] = [];
  // per proxy host: the master's state as `show stat` reports it
  const state = new Map<string, { status: string; check: string; polls: number }>();
  const haproxy = (command: string, _n: number, host: string): Partial<ExecResult> => {
    if (opts.notRunning?.includes(host)) return { stdout: "no-socket\n" };
    const s = state.get(host) ?? { status: "UP", check: "L7OK", polls: 0 };
    state.set(host, s);
    const set = /set server kube-apiservers\/(\S+) state (drain|ready)/.exec(command);
    if (set) {
      events.push(`${host}: ${set[2]} ${set[1]}`);
      // drained: UP but out of rotation (DRAIN); ready: its checks decide, DOWN until they pass
      Object.assign(s, set[2] === "drain" ? { status: "DRAIN", check: "L7OK" } : { status: "DOWN", check: "L4CON", polls: 0 });
      return { stdout: "\n" };
    }
    if (s.status === "DOWN" && ++s.polls >= (opts.upAfterPolls ?? 2)) Object.assign(s, { status: "UP", check: "L7OK" });
    const rows = masters.map((m) => `kube-apiservers,${m},0,${m === master ? s.status : "UP"},${m === master ? s.check : "L7OK"}`);
    return { stdout: [HEADER, ...rows, "kube-apiservers,BACKEND,0,UP,"].join("\n") + "\n" };
  };
  const h = scriptedHost({ inventory: raw, rules: [[/set server |show stat/, haproxy]], step: "apiserver" });
  /** withMasterDrained on the fake clock, around `restart`. */
  const drained = <T>(restart: () => Promise<T>) => withClock(h.clock, () => withMasterDrained(h.rc, restart));
  return { drained, events, logs: h.logs, state };
}

test("drain: every proxy drains the master before its restart and has it UP again before the step returns", async () => {
  const s = scripted({ proxy: true });
  const result = await s.drained(async () => {
    s.events.push("restart");
    return "restarted";
  });
  assert.equal(result, "restarted");
  const drains = s.events.filter((e) => e.endsWith("drain k8s-master"));
  const readies = s.events.filter((e) => e.endsWith("ready k8s-master"));
  assert.equal(drains.length, 3, s.events.join("\n"));
  assert.equal(readies.length, 3, s.events.join("\n"));
  const at = s.events.indexOf("restart");
  assert.ok(s.events.slice(0, at).every((e) => e.endsWith("drain k8s-master")), "a proxy was drained after the restart began");
  assert.ok(s.events.slice(at + 1).every((e) => e.endsWith("ready k8s-master")));
  for (const [host, st] of s.state) assert.deepEqual([st.status, st.check], ["UP", "L7OK"], `${host} returned before the master was UP there`);
  assert.match(s.logs.join("\n"), /step apiserver on k8s-master: drained on 3 apiserver proxies for its restart/);
});

test("drain: a failed restart still sets the master ready (the proxies' checks keep it out) and the error is the restart's", async () => {
  const s = scripted({ proxy: true });
  await assert.rejects(
    s.drained(async () => {
      throw new Error("kube-apiserver /healthz on k8s-master timed out");
    }),
    /healthz on k8s-master timed out/,
  );
  assert.equal(s.events.filter((e) => e.endsWith("ready k8s-master")).length, 3);
});

test("drain: a proxy that is not running yet (first bring-up) is skipped", async () => {
  const s = scripted({ proxy: true, notRunning: ["k8s-node2"] });
  await s.drained(async () => s.events.push("restart"));
  assert.deepEqual(s.events.filter((e) => e.startsWith("k8s-node2")), []);
  assert.equal(s.events.filter((e) => e.endsWith("drain k8s-master")).length, 2);
});

test("drain: a master that never comes UP behind a proxy fails the step naming that proxy", async () => {
  const s = scripted({ proxy: true, upAfterPolls: Number.POSITIVE_INFINITY });
  await assert.rejects(s.drained(async () => undefined), /k8s-master UP behind the apiserver proxy on k8s-master/);
});

test("drain: without the node-local proxy nothing is sent anywhere", async () => {
  const s = scripted({ proxy: false });
  assert.equal(await s.drained(async () => "x"), "x");
  assert.deepEqual(s.events, []);
});
