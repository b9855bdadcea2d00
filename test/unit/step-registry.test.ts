// The step registry: STEPS is ordered from the steps' deps, a dep on a missing step or around a
// cycle is a named error, and the lists other modules once wrote by hand are read from it.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { Cluster, openCluster } from "../../src/cluster";
import { leafSpecs } from "../../src/pki/catalog";
import { certificatesIn } from "../../src/plan";
import { STEPS, shippedBinaries, stepsInGroup, stopOrder, unitsOf } from "../../src/steps";
import { StepGraphError, orderSteps } from "../../src/steps/registry";
import type { StepDef, StepDep } from "../../src/steps/types";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";

/** A step with only a name and deps (what the registry reads). */
function step(name: string, ...deps: (string | [string, StepDep["on"]])[]): StepDef {
  return {
    name,
    scope: "host",
    description: name,
    hosts: () => [],
    deps: deps.map((d) => (typeof d === "string" ? { step: d, on: "all", why: `${name} needs ${d}` } : { step: d[0], on: d[1], why: `${name} needs ${d[0]}` })),
    files: () => [],
    run: async () => "",
  };
}
const names = (steps: readonly StepDef[]) => steps.map((s) => s.name);

test("registry: a dep on a step no module provides is a StepGraphError naming both steps, the reason and the fix", () => {
  assert.throws(
    () => orderSteps([step("a"), step("b", "a", "ghost")]),
    (e: Error) =>
      e instanceof StepGraphError &&
      /step b depends on step ghost \(b needs ghost\), and no step is named ghost/.test(e.message) &&
      /Fix: add ghost's module to STEPS \(src\/steps\/index\.ts\), or drop the dep from b/.test(e.message),
  );
});

test("registry: a cycle is a StepGraphError with its path and each edge's reason; steps outside it do not appear", () => {
  assert.throws(
    () => orderSteps([step("root"), step("a", "root", "c"), step("b", "a"), step("c", "b"), step("leaf", "c")]),
    (e: Error) =>
      e instanceof StepGraphError &&
      e.message.includes("the steps' deps form a cycle: a depends on c (a needs c), c depends on b (c needs b), b depends on a (b needs a)") &&
      !/root|leaf/.test(e.message) &&
      /Fix: drop one of these deps/.test(e.message),
  );
  // two steps that need each other
  assert.throws(() => orderSteps([step("x", "y"), step("y", "x")]), /cycle: x depends on y \(x needs y\), y depends on x \(y needs x\)/);
});

test("registry: a step's dep on itself (previous-host: its hosts roll) is no edge; a name given twice is refused", () => {
  assert.deepEqual(names(orderSteps([step("a", ["a", "previous-host"]), step("b", "a", ["b", "previous-host"])])), ["a", "b"]);
  assert.throws(() => orderSteps([step("a"), step("a")]), (e: Error) => e instanceof StepGraphError && /two steps are named a/.test(e.message));
});

test("registry: a list out of order comes back ordered by its deps, and stable (ties keep the order given)", () => {
  assert.deepEqual(names(orderSteps([step("c", "b"), step("b", "a"), step("a"), step("z")])), ["a", "b", "c", "z"]);
  assert.deepEqual(names(orderSteps([step("y"), step("x")])), ["y", "x"], "no dep: the order given");
  // the issue's example: kube-proxy listed before the kubelet it depends on
  const kubelet = STEPS.findIndex((s) => s.name === "kubelet");
  const swapped = [...STEPS];
  [swapped[kubelet], swapped[kubelet + 1]] = [swapped[kubelet + 1]!, swapped[kubelet]!];
  assert.equal(swapped[kubelet]!.name, "kube-proxy");
  assert.deepEqual(names(orderSteps(swapped)), names(STEPS));
  // the whole registry reversed still orders every step after its deps
  const reversed = orderSteps([...STEPS].reverse());
  for (const [i, s] of reversed.entries()) {
    for (const d of s.deps) if (d.step !== s.name) assert.ok(names(reversed).indexOf(d.step) < i, `${s.name} after ${d.step}`);
  }
});

test("registry: STEPS is the bring-up order the plan always had, and every dep says why", () => {
  assert.deepEqual(names(STEPS), ["remove", "prepare", "etcd", "etcd-health", "etcd-backup", "runtime", "containerd", "apiserver", "apiserver-proxy", "bootstrap", "controller-manager", "scheduler", "kubelet", "kube-proxy", "addons"]);
  for (const s of STEPS) for (const d of s.deps) assert.ok(d.why.length > 10, `${s.name} → ${d.step}: no reason given`);
});

test("registry: the lists once written by hand are read from it and say the same", () => {
  // plan.ts's CONTROL_PLANE (filtered in STEPS order), the node roll's "prepare"
  assert.deepEqual(names(stepsInGroup("control-plane")), ["apiserver", "bootstrap", "controller-manager", "scheduler"]);
  assert.deepEqual(names(stepsInGroup("host-setup")), ["prepare"]);
  // etcd-restore.ts: CONTROL_PLANE_UNITS and NODE_UNITS
  assert.deepEqual(unitsOf(stepsInGroup("control-plane")), ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]);
  assert.deepEqual(unitsOf(stepsInGroup("node-agent")), ["kubelet", "kube-proxy"]);
  // remove.ts's UNITS: the same units; now in stop order (bring-up reversed, as the teardown has
  // them), where the hand-written list had kubelet before kube-proxy and the proxy before the scheduler
  const removeUnits = stopOrder(STEPS);
  assert.deepEqual([...removeUnits].sort(), ["kubelet", "kube-proxy", "apiserver-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "containerd", "docker", "etcd-backup.timer", "etcd"].sort());
  assert.deepEqual(removeUnits, ["kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager", "apiserver-proxy", "kube-apiserver", "containerd", "docker", "etcd-backup.timer", "etcd"]);
  // test/helpers/fixtures.ts: the binaries the fake binary dir held (less haproxy's libraries, which it adds)
  assert.deepEqual(
    shippedBinaries().sort(),
    ["etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy", "docker/dockerd", "docker/docker", "docker/containerd", "docker/runc", "containerd/containerd", "containerd/containerd-shim-runc-v2", "containerd/ctr", "containerd/runc", "containerd/crictl", "cni/flannel", "cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap", "haproxy/haproxy"].sort(),
  );
});


test("registry: each step's declared certificates and binaries are what its files ship; together, every leaf of the catalog", async () => {
  const dir = tempDir("binkube-registry-");
  writeFakeBinaries(path.join(dir, "bin"));
  // two masters and no endpoint: every kubelet host gets the node-local apiserver proxy
  const raw = baseInventory();
  raw.hosts[1]!.roles = ["etcd", "master", "node"];
  const covered = new Set<string>();
  // each runtime's step has instances only with its runtime: the same cluster on both
  for (const runtime of ["docker", "containerd"]) {
  const c: Cluster = await openCluster(writeInventory(dir, { ...raw, runtime }, `cluster-${runtime}.yaml`), { create: true });
  const perHost = new Set<string>();
  for (const inst of c.plan.instances) {
    const def = STEPS.find((s) => s.name === inst.step)!;
    const files = def.files({ inv: c.inv, pki: c.pki, binaries: c.binaries, gone: [] }, inst.host);
    const declared = def.certificates?.(c.inv, inst.host) ?? [];
    // what the files reference (the plan refuses one it does not declare; here: every one declared is shipped)
    assert.deepEqual(certificatesIn(files), [...declared].sort(), `${inst.id}: certificates`);
    declared.forEach((n) => perHost.add(n));
    // binaries by name (a preloaded image archive is a binary too, by its path)
    const shipped = files.flatMap((f) => (f.binary !== undefined && !c.inv.images.preload.includes(f.binary) ? [f.binary] : []));
    for (const b of def.binaries ?? []) assert.ok(shipped.includes(b), `${inst.id} declares ${b} but does not ship it`);
    // the rest of what it ships belongs to a group one of its declared binaries is in ("docker/", "cni/", "haproxy/")
    const groups = new Set((def.binaries ?? []).filter((b) => b.includes("/")).map((b) => b.split("/")[0]));
    for (const b of shipped) assert.ok(def.binaries?.includes(b) || groups.has(b.split("/")[0]), `${inst.id} ships ${b} without declaring it`);
    covered.add(inst.step);
  }
  assert.deepEqual([...perHost].sort(), leafSpecs(c.inv).map((s) => s.name).sort(), "the catalog's leaves are the ones steps ship");
  }
  for (const s of STEPS) if (s.certificates || s.binaries) assert.ok(covered.has(s.name), `${s.name} has no instance here: its declarations went unchecked`);
});


test("registry: no step module imports another step's module (shared logic lives in modules of its own)", () => {
  const dir = path.join(__dirname, "..", "..", "src", "steps");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".ts"));
  // a step module defines a StepDef (a constant, or a function returning one); index.ts assembles them
  const definitions = (f: string) => [...fs.readFileSync(path.join(dir, f), "utf8").matchAll(/: StepDef = \{|\): StepDef \{/g)].length;
  const stepFiles = files.filter((f) => f !== "index.ts" && definitions(f) > 0);
  assert.equal(stepFiles.reduce((n, f) => n + definitions(f), 0), STEPS.length, `step definitions found in ${stepFiles.join(", ")}`);
  const stepModules = new Set(stepFiles.map((f) => f.replace(/\.ts$/, "")));
  const crossings: string[] = [];
  for (const m of stepModules) {
    const text = fs.readFileSync(path.join(dir, `${m}.ts`), "utf8");
    for (const [, target] of text.matchAll(/from "\.\/([\w-]+)"/g)) if (target !== m && stepModules.has(target!)) crossings.push(`${m}.ts imports ./${target}`);
  }
  assert.deepEqual(crossings, []);
});

test("steps reach the operator's side only through rc.operator: no module under src/steps touches its disk", () => {
  const dir = path.join(__dirname, "..", "..", "src", "steps");
  const reaching: string[] = [];
  for (const f of fs.readdirSync(dir).filter((x) => x.endsWith(".ts"))) {
    const text = fs.readFileSync(path.join(dir, f), "utf8");
    if (/from "node:fs"/.test(text)) reaching.push(`${f}: node:fs`);
    const imported = (from: string) => [...text.matchAll(new RegExp(`import \\{([^}]*)\\} from "${from}"`, "g"))].flatMap((m) => m[1]!.split(",").map((n) => n.trim()));
    if (imported("../inventory/ledger").some((n) => ["forgetHost", "updateLedger", "readLedger", "ledgerPath"].includes(n))) reaching.push(`${f}: the host ledger`);
    if (imported("../pki/encryption").some((n) => ["readEncryptionKeys", "readApplied", "recordApplied"].includes(n))) reaching.push(`${f}: the encryption state`);
  }
  assert.deepEqual(reaching, []);
});
