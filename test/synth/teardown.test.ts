// The teardown resources in the stack: one per host, its destroy provisioner the only one in the
// configuration, ordered nodes → masters → etcd on destroy, and added to a deployed cluster
// without replacing any step resource.
import assert from "node:assert/strict";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Testing } from "cdktf";
import { openCluster } from "../../src/cluster";
import { ClusterStack } from "../../stacks/cluster-stack";
import { RawInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

type Provisioner = { "local-exec": { command: string; when?: string } };
type Res = { triggers_replace?: Record<string, string>; triggers?: Record<string, string>; depends_on?: string[]; provisioner?: Provisioner[] };

async function synth(dir: string, raw: RawInventory) {
  const file = writeInventory(dir, raw);
  const cluster = await openCluster(file, { create: true });
  const app = Testing.app({ outdir: tempDir("binkube-cdktf-") });
  const json = Testing.synth(new ClusterStack(app, "test", cluster, { binkube: ["/usr/bin/node", "/opt/binkube/bin/binkube.cjs"] }));
  const parsed = JSON.parse(json) as { resource: Record<string, Record<string, Res>> };
  const type = Object.keys(parsed.resource)[0]!;
  return { json, type, resources: parsed.resource[type]!, plan: cluster.plan, file };
}

/** One host per tier and a second node: etcd member, master, two nodes. */
function tiered(): RawInventory {
  return {
    cluster: { name: "tiers" },
    hosts: [
      { name: "e-1", address: "192.168.0.4", roles: ["etcd"] },
      { name: "m-1", address: "192.168.0.5", roles: ["master"] },
      { name: "n-1", address: "192.168.0.6", roles: ["node"] },
      { name: "n-2", address: "192.168.0.7", roles: ["node"] },
    ],
    binaries: { dir: "bin" },
  };
}

const deps = (r: Res) => (r.depends_on ?? []).map((d) => d.split(".")[1]!).sort();

describe("teardown resources", () => {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));

  test("a destroy provisioner on each host's teardown resource and on nothing else; its only trigger is the host", async () => {
    const s = await synth(dir, tiered());
    const teardowns = Object.keys(s.resources).filter((id) => id.startsWith("teardown_")).sort();
    assert.deepEqual(teardowns, ["teardown_e_1", "teardown_m_1", "teardown_n_1", "teardown_n_2"]);
    for (const [id, r] of Object.entries(s.resources)) {
      const whens = (r.provisioner ?? []).map((p) => p["local-exec"].when);
      if (id.startsWith("teardown_")) {
        assert.deepEqual(whens, ["destroy"], id);
        const host = id === "teardown_e_1" ? "e-1" : id === "teardown_m_1" ? "m-1" : id === "teardown_n_1" ? "n-1" : "n-2";
        assert.deepEqual(r.triggers_replace, { host }, `${id}: the host is its only trigger`);
        assert.equal(r.provisioner![0]!["local-exec"].command, `/usr/bin/node /opt/binkube/bin/binkube.cjs teardown --host ${host} --config ${s.file}`);
      } else {
        assert.ok(whens.every((w) => w === undefined), `${id}: a step resource never runs anything at destroy (a replacement would run it)`);
      }
    }
  });

  test("on destroy nodes go first, then masters, then etcd members; every step of a host before its teardown", async () => {
    const s = await synth(dir, tiered());
    assert.deepEqual(deps(s.resources.teardown_e_1!), []);
    assert.deepEqual(deps(s.resources.teardown_m_1!), ["teardown_e_1"]);
    assert.deepEqual(deps(s.resources.teardown_n_1!), ["teardown_m_1"]);
    assert.deepEqual(deps(s.resources.teardown_n_2!), ["teardown_m_1"]);
    for (const inst of s.plan.instances) {
      const own = `teardown_${inst.host.name.replace(/-/g, "_")}`;
      assert.ok(deps(s.resources[inst.id]!).includes(own), `${inst.id} depends on ${own}`);
      assert.deepEqual(deps(s.resources[inst.id]!).filter((d) => d.startsWith("teardown_")), [own], `${inst.id}: no other host's teardown`);
    }
  });

  test("hosts with several roles sit in their earliest tier; no tier, no edge", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const raw = tiered();
    raw.hosts = [
      { name: "cp", address: "192.168.0.4", roles: ["etcd", "master", "node"] },
      { name: "w", address: "192.168.0.5", roles: ["node"] },
    ];
    const s = await synth(d, raw);
    assert.deepEqual(deps(s.resources.teardown_cp!), []);
    assert.deepEqual(deps(s.resources.teardown_w!), ["teardown_cp"], "no master-only host: the nodes wait for the etcd tier");
  });

  test("a deployed cluster gets only the teardown resources: every step resource keeps its triggers and its create-time command", async () => {
    const s = await synth(dir, tiered());
    const stepIds = Object.keys(s.resources).filter((id) => !id.startsWith("teardown_")).sort();
    assert.deepEqual(stepIds, s.plan.instances.map((i) => i.id).sort(), "no resource but the plan's and the teardowns");
    for (const inst of s.plan.instances) {
      const r = s.resources[inst.id]!;
      // The same triggers as before the teardown resources existed: the plan's, untouched
      // (depends_on is not a trigger, so the new edge replaces nothing).
      assert.deepEqual(r.triggers_replace, inst.triggers, inst.id);
      assert.equal(r.provisioner!.length, 1);
      assert.match(r.provisioner![0]!["local-exec"].command, new RegExp(` step ${inst.step} --host ${inst.host.name} `));
    }
  });

  test("engine null_resource: the same resource with triggers", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const s = await synth(d, { ...tiered(), engine: "null_resource" });
    assert.equal(s.type, "null_resource");
    assert.deepEqual(s.resources.teardown_n_1!.triggers, { host: "n-1" });
    assert.equal(s.resources.teardown_n_1!.provisioner![0]!["local-exec"].when, "destroy");
  });

  test("no private key material or token in the configuration", async () => {
    const s = await synth(dir, tiered());
    assert.doesNotMatch(s.json, /PRIVATE KEY|"token"|bootstrap\.kubeconfig/);
  });
});
