// The remove step's decisions against a scripted control plane and host: a host that does not
// answer is not drained (its pods are force-deleted at once) and the result line says so; a
// drain that times out says so; a host that answers loses its units and credentials.
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import type { ExecOptions, ExecResult } from "../../src/remote";
import { remove } from "../../src/steps/remove";
import type { RunContext } from "../../src/steps/types";
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
    sh: hostExec,
    sync: async () => ({ changed: [], unchanged: [], bytesSent: 0 }),
    controlPlane: async () => ({ exec: controlExec, fetchFile: remote.fetchFile }),
    onHost: async () => remote,
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
