// runtime: containerd: what the step reads from crictl, the containerd releases the kubelet v1.17
// can drive, and the kubelet flags each runtime gets (the deploy itself: test/e2e/ha-proxy.test.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { versionProblem } from "../../src/binaries/release";
import { stringify } from "yaml";
import { InventoryError, parseInventory } from "../../src/inventory/load";
import { readCriInfo } from "../../src/steps/containerd";
import { baseInventory } from "../helpers/fixtures";
import { scriptedHost } from "../helpers/scripted-host";
import { otherRuntime } from "../helpers/step-rules";
import { containerd } from "../../src/steps/containerd";
import { runtime } from "../../src/steps/runtime";
import { kubeletConf, kubeletWrites } from "../../src/steps/kubelet-files";
import { kubeletRuntime } from "../../src/steps/runtime-contract";

const INV = { kubernetesVersion: "v1.17.17", etcdVersion: "v3.4.3" };
const version = (line: string) => versionProblem("containerd/containerd", "/bin/containerd", line, INV);

test("containerd's release: 1.3 to 1.7 (CRI v1alpha2, config version 2) pass, older and 2.x are refused with the fix", () => {
  assert.equal(version("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1"), undefined);
  assert.equal(version("containerd github.com/containerd/containerd v1.3.0 36cf5b690dcc00ff0f34ff7799209050c3d0c59a"), undefined);
  assert.equal(version("containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da"), undefined);
  assert.match(version("containerd github.com/containerd/containerd v1.2.13 7ad184331fa3e55e52b890ea95e65ba581ae3429")!, /is 1\.2\.13, but kubelet v1\.17 needs containerd 1\.3 to 1\.7 .*Fix: put containerd 1\.3 to 1\.7/);
  assert.match(version("containerd github.com/containerd/containerd/v2 v2.0.0 207ad711eabd375a01713109a8a197d197ff6542")!, /is 2\.0\.0, but kubelet v1\.17 needs containerd 1\.3 to 1\.7/);
  assert.match(version("not containerd at all")!, /cannot tell which release/);
});

test("the CRI answer: containerd's version and cgroup driver read; another runtime or no CRI version refused", () => {
  const answer = (name: string, api: string, cgroup: boolean) =>
    `Version:  0.1.0\nRuntimeName:  ${name}\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  ${api}\n{\n  "config": {"containerd": {"runtimes": {"runc": {"options": {"BinaryName": "/usr/bin/runc", "SystemdCgroup": ${cgroup}}}}}}\n}\n`;
  assert.deepEqual(readCriInfo(answer("containerd", "v1", false)), { version: "1.6.20~ds1", systemdCgroup: false });
  assert.deepEqual(readCriInfo(answer("containerd", "v1alpha2", true)), { version: "1.6.20~ds1", systemdCgroup: true });
  assert.throws(() => readCriInfo(answer("cri-o", "v1", false)), /answers as cri-o 1\.6\.20~ds1 with CRI v1, not containerd/);
  assert.throws(() => readCriInfo(answer("containerd", "v0", false)), /with CRI v0, not containerd with CRI v1alpha2 or v1/);
});

test("kubelet flags: containerd is a remote runtime on its socket, without dockershim's CNI and pause flags; docker keeps them", () => {
  const conf = (runtime: "docker" | "containerd") =>
    kubeletConf({ name: "n1", address: "10.0.0.5", runtime: kubeletRuntime({ runtime, images: { pause: "k8s.gcr.io/pause:3.1" } }), nodeLabels: "", extraArgs: {} }).content!;
  const c = conf("containerd");
  assert.match(c, /^--container-runtime=remote \\$/m);
  assert.match(c, /^--container-runtime-endpoint=unix:\/\/\/run\/containerd\/containerd\.sock \\$/m);
  assert.doesNotMatch(c, /network-plugin|cni-bin-dir|cni-conf-dir|pod-infra-container-image/);
  const d = conf("docker");
  assert.match(d, /^--network-plugin=cni \\\n--cni-bin-dir=\/opt\/cni\/bin \\\n--cni-conf-dir=\/etc\/cni\/net\.d \\$/m);
  assert.match(d, /^--pod-infra-container-image=k8s\.gcr\.io\/pause:3\.1"$/m);
  assert.doesNotMatch(d, /container-runtime/);
  assert.equal(kubeletRuntime({ runtime: "containerd", images: { pause: "p" } }).unit, "containerd");
  assert.equal(kubeletRuntime({ runtime: "docker", images: { pause: "p" } }).unit, "docker");
});

test("kubelet.extraArgs cannot repoint either runtime: both runtimes' flags are binkube's, whichever the inventory runs", () => {
  for (const f of ["container-runtime", "container-runtime-endpoint", "network-plugin", "pod-infra-container-image"]) assert.ok(kubeletWrites().flags.has(f), f);
  for (const runtime of ["docker", "containerd"]) {
    const raw = { ...baseInventory(), runtime, kubelet: { extraArgs: { "container-runtime-endpoint": "unix:///run/other.sock" } } };
    assert.throws(
      () => parseInventory(stringify(raw), "/x/cluster.yaml"),
      (e: unknown) => e instanceof InventoryError && e.issues.some((i) => i.field === "kubelet.extraArgs.container-runtime-endpoint"),
      runtime,
    );
  }
  assert.equal(parseInventory(stringify({ ...baseInventory(), runtime: "containerd" }), "/x/cluster.yaml").inventory.runtime, "containerd");
  assert.throws(() => parseInventory(stringify({ ...baseInventory(), runtime: "cri-o" }), "/x/cluster.yaml"), /runtime/);
});

test("a node where binkube deployed the other runtime is refused before anything is uploaded, naming the host and the fix", async () => {
  for (const [step, runtimeName, other] of [[containerd, "containerd", "docker"], [runtime, "docker", "containerd"]] as const) {
    const h = scriptedHost({ rules: [otherRuntime(other)], host: "k8s-node", inventory: { ...baseInventory(), runtime: runtimeName }, changed: ["/usr/bin/runc"] });
    await assert.rejects(h.run(step), new RegExp(`^BinkubeError: step ${step.name} on k8s-node failed: k8s-node runs ${other} \\(/usr/lib/systemd/system/${other}\\.service\\), the inventory says runtime: ${runtimeName}; .*nothing was changed\\. Fix: set runtime back to ${other}; or remove k8s-node`));
    assert.deepEqual(h.uploaded, [], `${step.name}: uploaded before refusing`);
    assert.equal(h.commands.length, 1, h.commands.join("\n"));
  }
});
