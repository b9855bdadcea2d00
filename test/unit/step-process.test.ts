// `binkube step` loads only its own instance and refuses to ship content synth did not plan.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { openCluster, openStepInstance } from "../../src/cluster";
import { phaseTimes, runStep } from "../../src/runner/run-step";
import { stepByName } from "../../src/steps";
import { baseInventory, fakeElf, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

test("a step process renders its own instance exactly as synth planned it, and refuses drift before touching the host", async () => {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, baseInventory());
  const { plan } = await openCluster(file, { create: true });
  for (const planned of plan.instances) {
    const { inst } = await openStepInstance(file, stepByName(planned.step)!, planned.host.name);
    assert.ok(inst, planned.id);
    assert.equal(inst.hash, planned.hash, `${planned.id}: same hash alone as in the whole plan`);
    assert.deepEqual(inst.triggers, planned.triggers);
  }
  assert.equal((await openStepInstance(file, stepByName("apiserver")!, "k8s-node")).inst, undefined, "apiserver does not run on a non-master");
  const lines: string[] = [];
  const opts = { verbose: false, allowMissingBinaries: false, out: (l: string) => lines.push(l) };
  const kubelet = plan.instances.find((i) => i.id === "kubelet_k8s_node")!;
  await assert.rejects(runStep(file, "kubelet", "k8s-node", { ...opts, expectHash: "0".repeat(64) }), /step kubelet on k8s-node: drift: synth planned content 000000000000, this run would ship [0-9a-f]{12} .*nothing was changed on k8s-node\. Fix: re-run `npx cdktf deploy`/);
  // With the planned hash it gets past the check, to the connection (this inventory has no key).
  await assert.rejects(runStep(file, "kubelet", "k8s-node", { ...opts, expectHash: kubelet.hash }), /cannot connect: host k8s-node: no ssh.privateKey/);
  await assert.rejects(runStep(file, "apiserver", "k8s-node", opts), /this step does not run on k8s-node \(it runs on: k8s-master\)/);
});

test("binaries that are not kubernetes.version are refused before the step connects, naming binary, version and fix", async (t) => {
  if (process.platform !== "linux" || process.arch !== "x64") return t.skip("the local check runs where the linux-amd64 binaries run");
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  fs.writeFileSync(path.join(dir, "bin", "kubelet"), fakeElf("Kubernetes v1.17.12"), { mode: 0o755 });
  const file = writeInventory(dir, baseInventory());
  await openCluster(file, { create: true });
  const opts = { verbose: false, allowMissingBinaries: false, out: () => undefined };
  // refused before the connection (this inventory has no key, so a connection attempt would say so)
  await assert.rejects(runStep(file, "kubelet", "k8s-node", opts), /step kubelet on k8s-node: kubelet \(.*\/bin\/kubelet\) is v1\.17\.12, but kubernetes\.version says v1\.17\.17; nothing was changed\. Fix: point binaries at the v1\.17\.17 release/);
  // kube-proxy is v1.17.17: past the check, to the connection
  await assert.rejects(runStep(file, "kube-proxy", "k8s-node", opts), /cannot connect: host k8s-node: no ssh.privateKey/);
});

test("etcd, etcdctl and dockerd are version-checked like the Kubernetes binaries", async (t) => {
  if (process.platform !== "linux" || process.arch !== "x64") return t.skip("the local check runs where the linux-amd64 binaries run");
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  // what the lab's Debian packages are, against the inventory's default etcd v3.4.3
  fs.writeFileSync(path.join(dir, "bin", "etcd"), fakeElf("etcd Version: 3.4.23\nGit SHA: Not provided"), { mode: 0o755 });
  fs.writeFileSync(path.join(dir, "bin", "docker", "dockerd"), fakeElf("Docker version 1.12.6, build 78d1802"), { mode: 0o755 });
  const file = writeInventory(dir, baseInventory());
  await openCluster(file, { create: true });
  const opts = { verbose: false, allowMissingBinaries: false, out: () => undefined };
  await assert.rejects(runStep(file, "etcd", "k8s-node", opts), /step etcd on k8s-node: etcd \(.*\/bin\/etcd\) is v3\.4\.23, but etcd\.version says v3\.4\.3; nothing was changed\. Fix: point binaries at the etcd v3\.4\.3 release, or set etcd\.version/);
  await assert.rejects(runStep(file, "runtime", "k8s-node", opts), /docker\/dockerd \(.*\) is 1\.12\.6, but kubelet v1\.17 needs docker 1\.13\.1 or later/);
  fs.writeFileSync(file, fs.readFileSync(file, "utf8") + "etcd:\n  version: v3.4.23\n");
  fs.writeFileSync(path.join(dir, "bin", "etcdctl"), fakeElf("etcdctl version: 3.4.22"), { mode: 0o755 });
  await assert.rejects(runStep(file, "etcd", "k8s-node", opts), /etcdctl \(.*\) is v3\.4\.22, but etcd\.version says v3\.4\.23/);
});

test("step processes run the compiled dist/ only while it matches the sources, else the TypeScript", () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const entry = require("../../bin/entry.cjs") as { stamp(root: string): number; distIsFresh(root: string): boolean };
  const root = tempDir();
  fs.mkdirSync(path.join(root, "src", "cli"), { recursive: true });
  fs.mkdirSync(path.join(root, "dist"));
  fs.writeFileSync(path.join(root, "main.ts"), "export {};\n");
  fs.writeFileSync(path.join(root, "src", "cli", "a.ts"), "export const a = 1;\n");
  assert.equal(entry.distIsFresh(root), false, "never built");
  assert.equal(entry.stamp(root), 2);
  assert.equal(entry.distIsFresh(root), true);
  fs.writeFileSync(path.join(root, "src", "cli", "a.ts"), "export const a = 2;\n");
  assert.equal(entry.distIsFresh(root), false, "an edited source");
  entry.stamp(root);
  fs.rmSync(path.join(root, "main.ts"));
  assert.equal(entry.distIsFresh(root), false, "a deleted source");
});

test("the compiled CLI and the TypeScript one behave the same", async () => {
  const { spawnSync } = await import("node:child_process");
  const root = path.join(__dirname, "..", "..");
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  assert.ok((require("../../bin/entry.cjs") as { distIsFresh(root: string): boolean }).distIsFresh(root), "dist/ is built from these sources (npm test builds it first)");
  const bin = path.join(root, "bin", "binkube.cjs");
  const dir = tempDir();
  const file = writeInventory(dir, { ...baseInventory(), hosts: [{ name: "bad host", address: "10.0.0.1", roles: ["etcd"] }] });
  const outputs = ["0", "1"].map((fromSource) => {
    const r = spawnSync(process.execPath, [bin, "certs", "check", "--config", file], { env: { ...process.env, BINKUBE_FROM_SOURCE: fromSource }, encoding: "utf8" });
    return `${r.status} ${r.stdout}${r.stderr}`;
  });
  assert.match(outputs[1]!, /bad host/, "the TypeScript CLI names the bad host");
  assert.equal(outputs[0], outputs[1]);
});

test("a step run's time splits into process start, plan, connect, upload, remote work and gate wait", () => {
  const line = phaseTimes({ boot: 210, begin: 210, loaded: 260, connected: 400 }, 3400, 1200, 1500);
  assert.equal(line, "start=0.21 plan=0.05 connect=0.14 upload=1.20 work=0.30 gate=1.50");
  // in a step server, the client's start is a duration and the marks are the server's clock
  assert.equal(phaseTimes({ boot: 90, begin: 50_000, loaded: 50_020, connected: 50_100 }, 51_000, 300, 200), "start=0.09 plan=0.02 connect=0.08 upload=0.30 work=0.40 gate=0.20");
});
