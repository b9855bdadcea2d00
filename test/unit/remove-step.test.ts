// The remove step's decisions against a scripted control plane and host: a host that does not
// answer is not drained (its pods are force-deleted at once) and the result line says so; a
// drain that times out says so; a host that answers loses its units and credentials.
import { operatorSide } from "../../src/runner/operator-side";
import { stepLines } from "../../src/log";
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import type { ExecOptions, ExecResult } from "../../src/remote";
import { stepByName } from "../../src/steps";
import type { RunContext } from "../../src/steps/types";

const remove = stepByName("remove")!;
import { baseInventory, tempDir } from "../helpers/fixtures";

function scripted(opts: { hostDown: boolean; ready: string; drain?: Partial<ExecResult> }) {
  const base = baseInventory();
  const dir = tempDir("binkube-remove-");
  const inv = parseInventory(stringify(base), path.join(dir, "cluster.yaml")).inventory;
  // a node-only host (no etcd member to remove)
  const host = { ...inv.hosts[inv.hosts.length - 1]!, roles: ["node" as const] };
  const control: string[] = [];
  const onHost: string[] = [];
  const logs: string[] = [];
  const ok = (stdout = ""): ExecResult => ({ code: 0, stdout, stderr: "" });
  const controlExec = async (command: string, o: ExecOptions = {}): Promise<ExecResult> => {
    control.push(command);
    let r: ExecResult;
    if (/get node \S+ -o jsonpath=.*Ready/.test(command)) r = ok(opts.ready);
    else if (/delete pods --all-namespaces --field-selector spec\.nodeName=/.test(command)) r = ok('pod "web-1" force deleted\npod "web-2" force deleted\n');
    else if (/ drain /.test(command)) r = { ...ok(), ...opts.drain };
    else if (/ delete node /.test(command)) r = ok();
    else throw new Error(`unscripted: ${command}`);
    if (r.code !== 0 && !o.allowFail) throw new Error(`exit ${r.code}: ${command}`);
    return r;
  };
  const hostExec = async (command: string): Promise<ExecResult> => {
    if (opts.hostDown) throw new Error(`host ${host.name} (${host.address}:22): connect EHOSTUNREACH ${host.address}:22`);
    onHost.push(command);
    return ok();
  };
  const remote = { exec: hostExec, fetchFile: async () => ({ bytes: 0, sha256: "" }) };
  const rc: RunContext = {
    inv,
    host,
    files: [],
    firstBringUp: false,
    remote,
    log: (l) => logs.push(l),
    ...stepLines("remove", host.name, (l) => logs.push(l)),
    sh: hostExec,
    sync: async () => ({ changed: [], unchanged: [], bytesSent: 0, peerBytes: 0, peerFallbacks: 0 }),
    controlPlane: async () => ({ exec: controlExec, fetchFile: remote.fetchFile }),
    onHost: async () => remote,
    operator: operatorSide(inv),
  };
  return { rc, control, onHost, logs, host };
}

test("remove: a host that does not answer is not drained; its pods are force-deleted and the line says why", async () => {
  const h = scripted({ hostDown: true, ready: "Unknown" });
  const t0 = Date.now();
  const line = await remove.run(h.rc);
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(h.control.findIndex((c) => / drain /.test(c)), -1, "drained a node whose host is gone");
  assert.match(line, /^node drain skipped: host unreachable \(connect EHOSTUNREACH [^)]+\); 2 pods force-deleted, node deleted, units NOT stopped on \S+ \(unreachable; see warning\)$/);
  assert.match(h.logs.join("\n"), /WARNING step remove on \S+: could not stop its units or remove its credentials \(connect EHOSTUNREACH/);
});

test("remove: a NotReady node on a host that answers is not drained either; the host still loses units and credentials", async () => {
  const h = scripted({ hostDown: false, ready: "Unknown" });
  const line = await remove.run(h.rc);
  assert.match(line, /^node drain skipped: node not reporting; 2 pods force-deleted, node deleted, units stopped and disabled, credentials removed on /);
  const disarm = h.onHost.find((c) => c.includes("systemctl disable --now"))!;
  assert.match(disarm, /rm -f \/opt\/kubernetes\/ssl\/kubelet-client-\*\.pem \/opt\/kubernetes\/cfg\/kubelet\.kubeconfig/);
});

test("remove: a Ready node is drained; a drain that times out says so instead of 'drained'", async () => {
  const good = scripted({ hostDown: false, ready: "True" });
  assert.match(await remove.run(good.rc), /^node drained, node deleted, units stopped/);
  const slow = scripted({ hostDown: false, ready: "True", drain: { code: 1, stdout: 'evicting pod default/web-1\nerror: unable to drain node "x", aborting command...\n' } });
  assert.match(await remove.run(slow.rc), /^node drain did not finish within 120 s \(error: unable to drain node "x", aborting command\.\.\.\), node deleted/);
});

/**
 * A master removed with the node-local proxy on: every node's haproxy answers `show stat` with
 * the servers' states as that node sees them, takes `disable server` commands, and some nodes may
 * not answer at all.
 */
function scriptedMaster(opts: { states: Record<string, Record<string, "UP" | "DOWN">>; unreachable?: string[] }) {
  const base = baseInventory();
  base.hosts[1]!.roles = ["etcd", "master", "node"];
  const dir = tempDir("binkube-remove-master-");
  const inv = parseInventory(stringify(base), path.join(dir, "cluster.yaml")).inventory;
  const host = { ...inv.hosts[0]!, name: "old-master", address: "192.168.0.9", roles: ["master" as const] };
  const seq: string[] = [];
  const ok = (stdout = ""): ExecResult => ({ code: 0, stdout, stderr: "" });
  const header = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status";
  const row = (name: string, status: string) => `kube-apiservers,${name},0,0,0,0,,0,0,0,,0,,0,0,0,0,${status},1,1,0,0,0,1,0,,1,3,1,,0,,2,0,,0,${status === "UP" ? "L7OK" : "L4CON"}`;
  const nodeRemote = (node: string) => ({
    exec: async (command: string): Promise<ExecResult> => {
      if (command.includes("'show stat'")) return ok([header, ...Object.entries(opts.states[node]!).map(([n, st]) => row(n, st)), ""].join("\n"));
      if (command.includes("disable server kube-apiservers/old-master; shutdown sessions server kube-apiservers/old-master")) {
        seq.push(`disable on ${node}`);
        return ok();
      }
      throw new Error(`unscripted on ${node}: ${command}`);
    },
    fetchFile: async () => ({ bytes: 0, sha256: "" }),
  });
  const controlExec = async (command: string): Promise<ExecResult> => {
    seq.push(`control: ${command.replace(/^\S+ --kubeconfig \S+ /, "")}`);
    if (/get node \S+ -o jsonpath=.*Ready/.test(command)) return ok("True");
    return ok();
  };
  const hostExec = async (command: string): Promise<ExecResult> => {
    if (command === "true") return ok(); // the reachability probe changes nothing
    seq.push(command.includes("systemctl disable --now") ? "disarm" : `host: ${command}`);
    return ok();
  };
  const logs: string[] = [];
  const remote = { exec: hostExec, fetchFile: async () => ({ bytes: 0, sha256: "" }) };
  const rc: RunContext = {
    inv,
    host,
    files: [],
    firstBringUp: false,
    remote,
    log: (l) => logs.push(l),
    ...stepLines("remove", host.name, (l) => logs.push(l)),
    sh: hostExec,
    sync: async () => ({ changed: [], unchanged: [], bytesSent: 0, peerBytes: 0, peerFallbacks: 0 }),
    controlPlane: async () => ({ exec: controlExec, fetchFile: remote.fetchFile }),
    onHost: async (h) => {
      if (opts.unreachable?.includes(h.name)) throw new Error(`host ${h.name}: connect EHOSTUNREACH\nmore`);
      return nodeRemote(h.name);
    },
    operator: operatorSide(inv),
  };
  return { rc, seq, logs };
}

const all = (st: Record<string, "UP" | "DOWN">) => ({ "k8s-master": st, "k8s-node": st, "k8s-node2": st });

test("remove a master: it leaves every node's apiserver proxy (maintenance, sessions closed) after its node is drained and before its units stop", async () => {
  const m = scriptedMaster({ states: all({ "k8s-master": "UP", "k8s-node": "DOWN", "old-master": "UP" }) });
  const line = await remove.run(m.rc);
  assert.match(line, /^node drained, node deleted, out of the apiserver proxy on 3 nodes, units stopped and disabled/);
  const at = (s: string) => m.seq.findIndex((x) => x.includes(s));
  assert.deepEqual(m.seq.filter((s) => s.startsWith("disable on")).sort(), ["disable on k8s-master", "disable on k8s-node", "disable on k8s-node2"]);
  assert.ok(at("control: delete node old-master") < at("disable on"), m.seq.join("\n"));
  assert.ok(m.seq.lastIndexOf("disable on k8s-node2") < at("disarm"), m.seq.join("\n"));
});

test("remove a master: refused with nothing touched when a node's proxy has no other apiserver up", async () => {
  const states = all({ "k8s-master": "UP", "k8s-node": "UP", "old-master": "UP" });
  states["k8s-node2"] = { "k8s-master": "DOWN", "k8s-node": "DOWN", "old-master": "UP" };
  const m = scriptedMaster({ states });
  await assert.rejects(remove.run(m.rc), /refusing to remove master old-master: the apiserver proxy on k8s-node2 has no other apiserver up \(k8s-master DOWN, k8s-node DOWN, old-master UP\), so it would lose the API\. Fix: bring another master's apiserver up first, then re-run; nothing was changed/);
  assert.deepEqual(m.seq, [], "something was touched before the refusal");
});

test("remove a master: a node that does not answer is left to its proxy's health checks, with a warning; a node whose proxy never listed it is skipped", async () => {
  const states = all({ "k8s-master": "UP", "k8s-node": "UP", "old-master": "DOWN" });
  states["k8s-node"] = { "k8s-master": "UP", "k8s-node": "UP" };
  const m = scriptedMaster({ states, unreachable: ["k8s-node2"] });
  const line = await remove.run(m.rc);
  assert.match(line, /out of the apiserver proxy on 1 node,/);
  assert.deepEqual(m.seq.filter((s) => s.startsWith("disable on")), ["disable on k8s-master"]);
  assert.match(m.logs.join("\n"), /WARNING step remove on old-master: k8s-node2 did not answer \(host k8s-node2: connect EHOSTUNREACH\): its apiserver proxy drops old-master by its health checks once old-master stops/);
});
