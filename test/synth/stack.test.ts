// The CDKTF stack, synthesized with cdktf's Testing helpers: resources, dependency edges,
// triggers that move exactly with shipped content, no private key material in the output.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Testing } from "cdktf";
import { openCluster } from "../../src/cluster";
import { leafSpecs } from "../../src/pki/catalog";
import { ClusterStack } from "../../stacks/cluster-stack";
import { baseInventory, fakeElf, RawInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

interface Synth {
  json: string;
  resources: Record<string, { triggers_replace?: Record<string, string>; triggers?: Record<string, string>; depends_on?: string[]; provisioner: { "local-exec": { command: string } }[] }>;
  type: string;
  raw: Record<string, unknown>;
}

async function synth(dir: string, raw: RawInventory): Promise<Synth> {
  const file = writeInventory(dir, raw);
  const cluster = await openCluster(file, { create: true });
  // an outdir of our own: Testing.app() would leave a cdktf.outdir.* under /tmp per synth
  const app = Testing.app({ outdir: tempDir("binkube-cdktf-") });
  const stack = new ClusterStack(app, "test", cluster, { binkube: ["/usr/bin/node", "/opt/binkube/bin/binkube.cjs"] });
  const json = Testing.synth(stack);
  const parsed = JSON.parse(json) as { resource: Record<string, Synth["resources"]> };
  const type = Object.keys(parsed.resource)[0]!;
  // The step resources and their edges among themselves; the teardown resources (one per host,
  // every step depending on its host's) are test/synth/teardown.test.ts's.
  const resources = Object.fromEntries(
    Object.entries(parsed.resource[type]!)
      .filter(([id]) => !id.startsWith("teardown_"))
      .map(([id, r]) => [id, { ...r, depends_on: r.depends_on?.filter((d) => !d.split(".")[1]!.startsWith("teardown_")) }]),
  );
  return { json, resources, type, raw: parsed as unknown as Record<string, unknown> };
}

const triggersOf = (s: Synth) => Object.fromEntries(Object.entries(s.resources).map(([id, r]) => [id, JSON.stringify(r.triggers_replace ?? r.triggers)]));

function changed(a: Synth, b: Synth): string[] {
  const ta = triggersOf(a);
  const tb = triggersOf(b);
  return Object.keys(tb).filter((id) => id in ta && ta[id] !== tb[id]).sort();
}

describe("cluster stack", () => {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));

  test("an etcd host named health does not collide with the etcd-health gate", async () => {
    const raw = baseInventory();
    raw.hosts[1]!.name = "health";
    const own = tempDir();
    writeFakeBinaries(path.join(own, "bin"));
    const s = await synth(own, raw);
    assert.ok(s.resources["etcd_health"], "the etcd member on host health");
    assert.match(s.resources["etcd_health"]!.provisioner[0]!["local-exec"].command, / step etcd --host health /);
    assert.match(s.resources["etcd-health"]!.provisioner[0]!["local-exec"].command, / step etcd-health --host /);
    assert.deepEqual((s.resources["etcd-health"]!.depends_on ?? []).map((d) => d.split(".")[1]).sort(), ["etcd_health", "etcd_k8s_master", "etcd_k8s_node2"]);
  });

  test("one terraform_data per (step, host) with bring-up edges and a binkube step command", async () => {
    const s = await synth(dir, baseInventory());
    assert.equal(s.type, "terraform_data");
    const ids = Object.keys(s.resources).sort();
    assert.deepEqual(ids.filter((i) => i.startsWith("etcd_k8s")), ["etcd_k8s_master", "etcd_k8s_node", "etcd_k8s_node2"]);
    // the scheduled backups of each member, after that member
    assert.deepEqual(ids.filter((i) => i.startsWith("etcd_backup_")), ["etcd_backup_k8s_master", "etcd_backup_k8s_node", "etcd_backup_k8s_node2"]);
    assert.deepEqual(ids.filter((i) => /^(bootstrap|addons)$/.test(i)), ["addons", "bootstrap"]);
    assert.equal(ids.length, 3 /*prepare*/ + 3 /*etcd*/ + 1 + 3 /*etcd-backup*/ + 3 /*runtime*/ + 1 /*apiserver*/ + 1 + 1 + 1 + 3 /*kubelet*/ + 3 /*proxy*/ + 1);
    const deps = (id: string) => (s.resources[id]!.depends_on ?? []).map((d) => d.split(".")[1]).sort();
    assert.deepEqual(deps("etcd-health"), ["etcd_k8s_master", "etcd_k8s_node", "etcd_k8s_node2"]);
    assert.deepEqual(deps("apiserver_k8s_master"), ["etcd-health", "prepare_k8s_master"]);
    assert.deepEqual(deps("etcd_backup_k8s_node"), ["etcd_k8s_node"]);
    // a new node's kubelet does not wait for the controller-manager (its CSR waits for it instead)
    assert.deepEqual(deps("kubelet_k8s_node"), ["bootstrap", "runtime_k8s_node"]);
    assert.ok(deps("addons").includes("controller_manager_k8s_master"), "the addons' Deployments need the controller-manager");
    assert.deepEqual(deps("kube_proxy_k8s_node2"), ["kubelet_k8s_node2"]);
    assert.deepEqual(deps("prepare_k8s_node"), []);
    // a first bootstrap starts every etcd member together (nothing runs yet, so nothing rolls)
    assert.deepEqual(deps("etcd_k8s_master"), ["prepare_k8s_master"]);
    assert.deepEqual(deps("etcd_k8s_node2"), ["prepare_k8s_node2"]);
    const kubeletCommand = s.resources.kubelet_k8s_node!.provisioner[0]!["local-exec"].command;
    assert.match(kubeletCommand, /^\/usr\/bin\/node \/opt\/binkube\/bin\/binkube\.cjs step kubelet --host k8s-node --config \S+cluster\.yaml --hash [0-9a-f]{64} --first-bring-up$/);
    const plan = (await openCluster(path.join(dir, "cluster.yaml"), { create: false })).plan;
    assert.equal(kubeletCommand.split(" ").at(-2), plan.instances.find((i) => i.id === "kubelet_k8s_node")!.hash, "the command carries the instance's planned hash");
    assert.deepEqual((s.raw.terraform as { backend: unknown }).backend, { local: { path: path.join(dir, ".binkube", "terraform.tfstate") } });
  });

  test("re-synth with nothing changed changes no trigger", async () => {
    const a = await synth(dir, baseInventory());
    const b = await synth(dir, baseInventory());
    assert.deepEqual(changed(a, b), []);
  });

  test("triggers change when, and only when, a shipped file changes", async () => {
    const base = await synth(dir, baseInventory());
    // cluster DNS is in kubelet-config.yml (every kubelet) and the CoreDNS manifest (addons)
    const dns = baseInventory();
    dns.network = { clusterDNS: "10.0.0.10" };
    assert.deepEqual(changed(base, await synth(dir, dns)), ["addons", "kubelet_k8s_master", "kubelet_k8s_node", "kubelet_k8s_node2"]);
    // a new kube-proxy binary re-runs exactly the kube-proxy steps
    fs.writeFileSync(path.join(dir, "bin", "kube-proxy"), fakeElf("Kubernetes v1.17.17 (a rebuilt kube-proxy)"), { mode: 0o755 });
    const afterBinary = await synth(dir, baseInventory());
    assert.deepEqual(changed(base, afterBinary), ["kube_proxy_k8s_master", "kube_proxy_k8s_node", "kube_proxy_k8s_node2"]);
    // a renewed kube-proxy certificate: the same steps and nothing else
    await openCluster(path.join(dir, "cluster.yaml"), { create: true, pki: { renew: ["kube-proxy"] } });
    const afterRenew = await synth(dir, baseInventory());
    assert.deepEqual(changed(afterBinary, afterRenew), ["kube_proxy_k8s_master", "kube_proxy_k8s_node", "kube_proxy_k8s_node2"]);
    // a renewed etcd peer certificate of one member: that member's etcd step only
    await openCluster(path.join(dir, "cluster.yaml"), { create: true, pki: { renew: ["etcd-peer-k8s-node2"] } });
    assert.deepEqual(changed(afterRenew, await synth(dir, baseInventory())), ["etcd_k8s_node2"]);
  });

  test("adding a node adds only that node's resources and changes no other trigger but the bootstrap RBAC's", async () => {
    const before = await synth(dir, baseInventory());
    const raw = baseInventory();
    raw.hosts.push({ name: "k8s-node3", address: "192.168.0.7", roles: ["node"] });
    const after = await synth(dir, raw);
    const added = Object.keys(after.resources).filter((id) => !(id in before.resources)).sort();
    assert.deepEqual(added, ["kube_proxy_k8s_node3", "kubelet_k8s_node3", "prepare_k8s_node3", "runtime_k8s_node3"]);
    assert.deepEqual(Object.keys(before.resources).filter((id) => !(id in after.resources)), []);
    // only the bootstrap RBAC: renewals are approved for the inventory's nodes by name
    assert.deepEqual(changed(before, after), ["bootstrap"]);
  });

  test("rolling chains: instances not yet applied first (a new etcd member joins, a new master serves, before the others restart), then the order recorded in the state", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const raw = baseInventory();
    raw.hosts.push({ name: "k8s-new", address: "192.168.0.9", roles: ["master", "etcd"] });
    // the state Terraform left: etcd rolled k8s-node2 → k8s-master → k8s-node (recorded edges are
    // transitive, as Terraform writes them), k8s-node2's etcd tainted by a failed run
    const recorded: Record<string, string[]> = {
      etcd_k8s_node2: ["terraform_data.prepare_k8s_node2"],
      etcd_k8s_master: ["terraform_data.etcd_k8s_node2", "terraform_data.prepare_k8s_master"],
      etcd_k8s_node: ["terraform_data.etcd_k8s_master", "terraform_data.etcd_k8s_node2"],
      apiserver_k8s_master: ["terraform_data.etcd-health"],
    };
    fs.mkdirSync(path.join(d, ".binkube"), { recursive: true });
    fs.writeFileSync(
      path.join(d, ".binkube", "terraform.tfstate"),
      JSON.stringify({
        version: 4,
        resources: Object.entries(recorded).map(([name, dependencies]) => ({
          mode: "managed",
          type: "terraform_data",
          name,
          instances: [{ ...(name === "etcd_k8s_node2" ? { status: "tainted" } : {}), attributes: {}, dependencies }],
        })),
      }),
    );
    const s = await synth(d, raw);
    const deps = (id: string) => (s.resources[id]!.depends_on ?? []).map((x) => x.split(".")[1]).filter((x) => x!.startsWith(id.replace(/_k8s.*/, "_k8s"))).sort();
    // etcd chain: the new member first, then the recorded order (not the inventory's)
    assert.deepEqual(deps("etcd_k8s_new"), []);
    assert.deepEqual(deps("etcd_k8s_node2"), ["etcd_k8s_new"]);
    assert.deepEqual(deps("etcd_k8s_master"), ["etcd_k8s_node2"]);
    assert.deepEqual(deps("etcd_k8s_node"), ["etcd_k8s_master"]);
    // apiserver chain: the new master first
    assert.deepEqual(deps("apiserver_k8s_new"), []);
    assert.deepEqual(deps("apiserver_k8s_master"), ["apiserver_k8s_new"]);
    // without state (a first deploy) nothing rolls: every instance of a step starts at once
    fs.rmSync(path.join(d, ".binkube", "terraform.tfstate"));
    const fresh = await synth(d, raw);
    const same = (id: string, prefix: string) => (fresh.resources[id]!.depends_on ?? []).map((x) => x.split(".")[1]).filter((x) => x!.startsWith(prefix));
    for (const h of ["k8s_master", "k8s_new"]) assert.deepEqual(same(`apiserver_${h}`, "apiserver"), [], `apiserver_${h}`);
    for (const h of ["k8s_master", "k8s_node", "k8s_node2", "k8s_new"]) assert.deepEqual(same(`etcd_${h}`, "etcd_"), [], `etcd_${h}`);
    // with all applied (a redeploy that restarts them), each rolls behind the previous one's gate
    fs.writeFileSync(
      path.join(d, ".binkube", "terraform.tfstate"),
      JSON.stringify({ version: 4, resources: ["etcd_k8s_master", "etcd_k8s_node", "etcd_k8s_node2", "etcd_k8s_new", "apiserver_k8s_master", "apiserver_k8s_new"].map((name) => ({ mode: "managed", type: "terraform_data", name, instances: [{ attributes: {}, dependencies: [] }] })) }),
    );
    const rolled = await synth(d, raw);
    const chained = (id: string, prefix: string) => (rolled.resources[id]!.depends_on ?? []).map((x) => x.split(".")[1]).filter((x) => x!.startsWith(prefix));
    assert.deepEqual(chained("etcd_k8s_master", "etcd_"), []);
    assert.deepEqual(chained("etcd_k8s_node", "etcd_"), ["etcd_k8s_master"]);
    assert.deepEqual(chained("etcd_k8s_node2", "etcd_"), ["etcd_k8s_node"]);
    assert.deepEqual(chained("apiserver_k8s_new", "apiserver"), ["apiserver_k8s_master"]);
  });

  test("node changes roll rolling.maxUnavailable nodes at a time after the control plane; new nodes join at once", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const raw = baseInventory();
    for (const n of [3, 4, 5]) raw.hosts.push({ name: `k8s-node${n}`, address: `192.168.0.${10 + n}`, roles: ["node"] });
    const NODE_STEPS = ["runtime", "kubelet", "kube_proxy"];
    const nodes = ["k8s_master", "k8s_node", "k8s_node2", "k8s_node3", "k8s_node4", "k8s_node5"];
    const state = (names: string[]) => {
      fs.mkdirSync(path.join(d, ".binkube"), { recursive: true });
      const resources = names.flatMap((h) => NODE_STEPS.map((s) => `${s}_${h}`)).map((name) => ({ mode: "managed", type: "terraform_data", name, instances: [{ attributes: {}, dependencies: [] }] }));
      fs.writeFileSync(path.join(d, ".binkube", "terraform.tfstate"), JSON.stringify({ version: 4, resources }));
    };
    /** The other nodes a node's instance waits for, through node-roll edges. */
    const waitsFor = (out: Awaited<ReturnType<typeof synth>>, id: string) =>
      [...new Set((out.resources[id]!.depends_on ?? []).map((x) => x.split(".")[1]!).filter((x) => NODE_STEPS.some((s) => x.startsWith(`${s}_`)) && !x.endsWith(id.slice(id.indexOf("_k8s"))) ))].sort();
    // a first deploy: nothing waits for another node
    const first = await synth(d, raw);
    for (const h of nodes) for (const st of NODE_STEPS) assert.deepEqual(waitsFor(first, `${st}_${h}`), [], `${st}_${h}`);
    // four nodes ran before, two are new: the new ones join at once; the old roll one by one after them
    state(nodes.slice(0, 4));
    const one = await synth(d, raw);
    const all = (h: string) => NODE_STEPS.map((st) => `${st}_${h}`).sort();
    assert.deepEqual(waitsFor(one, "kubelet_k8s_node4"), []);
    assert.deepEqual(waitsFor(one, "runtime_k8s_master"), [...all("k8s_node4"), ...all("k8s_node5")].sort());
    assert.ok(one.resources.runtime_k8s_master!.depends_on!.includes("terraform_data.apiserver_k8s_master"), "the first batch waits for the control plane");
    assert.deepEqual(waitsFor(one, "runtime_k8s_node"), all("k8s_master"));
    assert.deepEqual(waitsFor(one, "kube_proxy_k8s_node3"), all("k8s_node2"));
    // an apply stopped at the roll's first node: Terraform had already destroyed the replaced
    // instances of the others; their prepare instances say they run pods, so they still roll
    fs.writeFileSync(
      path.join(d, ".binkube", "terraform.tfstate"),
      JSON.stringify({ version: 4, resources: [...nodes.map((h) => `prepare_${h}`), "runtime_k8s_master"].map((name) => ({ mode: "managed", type: "terraform_data", name, instances: [{ attributes: {}, dependencies: [] }] })) }),
    );
    const stopped = await synth(d, raw);
    assert.deepEqual(waitsFor(stopped, "runtime_k8s_node"), all("k8s_master"));
    assert.deepEqual(waitsFor(stopped, "runtime_k8s_node2"), all("k8s_node"));
    // 50% of 6 nodes: batches of 3, each waiting for every node of the batch before
    state(nodes);
    const half = await synth(d, { ...raw, rolling: { maxUnavailable: "50%" } });
    for (const h of nodes.slice(0, 3)) assert.deepEqual(waitsFor(half, `kubelet_${h}`), [], h);
    for (const h of nodes.slice(3)) assert.deepEqual(waitsFor(half, `kubelet_${h}`), nodes.slice(0, 3).flatMap(all).sort(), h);
  });

  test("new etcd members beside a running cluster join one at a time; new masters do not wait for each other", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const raw = baseInventory();
    raw.hosts.push({ name: "k8s-e4", address: "192.168.0.10", roles: ["etcd", "master"] }, { name: "k8s-e5", address: "192.168.0.11", roles: ["etcd", "master"] });
    fs.mkdirSync(path.join(d, ".binkube"), { recursive: true });
    fs.writeFileSync(
      path.join(d, ".binkube", "terraform.tfstate"),
      JSON.stringify({ version: 4, resources: ["etcd_k8s_master", "etcd_k8s_node", "etcd_k8s_node2", "apiserver_k8s_master"].map((name) => ({ mode: "managed", type: "terraform_data", name, instances: [{ attributes: {}, dependencies: [] }] })) }),
    );
    const s = await synth(d, raw);
    const same = (id: string, prefix: string) => (s.resources[id]!.depends_on ?? []).map((x) => x.split(".")[1]).filter((x) => x!.startsWith(prefix)).sort();
    assert.deepEqual(same("etcd_k8s_e4", "etcd_"), []);
    assert.deepEqual(same("etcd_k8s_e5", "etcd_"), ["etcd_k8s_e4"], "member add one at a time");
    assert.deepEqual(same("etcd_k8s_master", "etcd_"), ["etcd_k8s_e5"], "the running members roll after the last new one");
    assert.deepEqual(same("apiserver_k8s_e4", "apiserver"), []);
    assert.deepEqual(same("apiserver_k8s_e5", "apiserver"), [], "new masters start together");
    assert.deepEqual(same("apiserver_k8s_master", "apiserver"), ["apiserver_k8s_e4", "apiserver_k8s_e5"], "the old master restarts for its SANs after every new one serves");
  });

  test("--first-bring-up goes to every instance of a step none of whose instances was applied, and to no other", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    const first = await synth(d, baseInventory());
    const flagged = (s: Synth) => Object.entries(s.resources).filter(([, r]) => r.provisioner[0]!["local-exec"].command.endsWith(" --first-bring-up")).map(([id]) => id).sort();
    assert.deepEqual(flagged(first), Object.keys(first.resources).sort(), "a first deploy brings every step up for the first time");
    fs.writeFileSync(
      path.join(d, ".binkube", "terraform.tfstate"),
      JSON.stringify({ version: 4, resources: ["prepare_k8s_master", "etcd_k8s_master"].map((name) => ({ mode: "managed", type: "terraform_data", name, instances: [{ attributes: {}, dependencies: [] }] })) }),
    );
    const again = await synth(d, baseInventory());
    const ids = Object.keys(again.resources);
    assert.deepEqual(flagged(again), ids.filter((id) => !/^(prepare|etcd)_k8s/.test(id)).sort(), "one etcd member applied: the others join it, not bootstrap");
    assert.deepEqual(triggersOf(again), triggersOf(first), "the flag is never a trigger");
  });

  test("the synthesized configuration holds no private key material or token", async () => {
    const file = writeInventory(dir, baseInventory());
    const cluster = await openCluster(file, { create: true });
    const s = await synth(dir, baseInventory());
    assert.doesNotMatch(s.json, /PRIVATE KEY/);
    const secrets = [
      ...Object.values(cluster.pki.cas).map((c) => c.keyPem),
      ...leafSpecs(cluster.inv).map((l) => cluster.leaves.issued(l.name).keyPem),
      cluster.pki.serviceAccount.privateKeyPem,
    ];
    for (const pem of secrets) {
      const body = pem.split("\n").slice(1, -2).join("");
      const b64 = Buffer.from(pem).toString("base64");
      assert.ok(!s.json.includes(body.slice(0, 40)) && !s.json.includes(b64.slice(20, 80)), "key material leaked into synth output");
    }
    assert.doesNotMatch(s.json, /"token"|bootstrap\.kubeconfig/, "no bootstrap token or its kubeconfig in synth output");
    for (const k of cluster.pki.encryption.keys) {
      assert.ok(!s.json.includes(k.secret) && !s.json.includes(Buffer.from(k.secret, "base64").toString("hex")), "encryption key leaked into synth output");
      assert.ok(s.json.includes(k.name), "the key's name (not its secret) is a trigger");
    }
  });

  test("engine null_resource: null provider and triggers", async () => {
    const raw = baseInventory();
    (raw as Record<string, unknown>).engine = "null_resource";
    const s = await synth(dir, raw);
    assert.equal(s.type, "null_resource");
    assert.ok((s.raw.provider as Record<string, unknown>).null, "null provider configured");
    assert.ok(s.resources.etcd_k8s_node!.triggers!["/opt/etcd/cfg/etcd.conf"]!.startsWith("644:sha256:"));
    assert.match((s.raw.terraform as { required_providers: Record<string, { source: string }> }).required_providers.null!.source, /^(hashicorp\/)?null$/);
  });

  test("a host removed from the inventory gets a remove step that runs before etcd and apiserver re-run", async () => {
    const d = tempDir();
    writeFakeBinaries(path.join(d, "bin"));
    await synth(d, baseInventory());
    const raw = baseInventory();
    raw.hosts.pop(); // k8s-node2: etcd + node
    const after = await synth(d, raw);
    assert.ok(after.resources.remove_k8s_node2, "remove resource synthesized");
    assert.match(after.resources.remove_k8s_node2!.provisioner[0]!["local-exec"].command, /binkube\.cjs step remove --host k8s-node2 --config \S+ --hash [0-9a-f]{64}( --first-bring-up)?$/);
    assert.equal(after.resources.etcd_k8s_node2, undefined);
    assert.ok(after.resources.etcd_k8s_master!.depends_on!.includes("terraform_data.remove_k8s_node2"));
    // everything that rolls for the smaller cluster waits for the removal, directly or through etcd
    const upstream = (id: string, seen = new Set<string>()): Set<string> => {
      for (const d of after.resources[id]!.depends_on ?? []) if (!seen.has(d.split(".")[1]!)) upstream(d.split(".")[1]!, seen.add(d.split(".")[1]!));
      return seen;
    };
    for (const id of ["etcd-health", "apiserver_k8s_master", "kubelet_k8s_node", "addons"]) assert.ok(upstream(id).has("remove_k8s_node2"), `${id} waits for the removal`);
    assert.deepEqual(after.resources.remove_k8s_node2!.depends_on ?? [], [], "the removal itself waits for nothing");
    // until `binkube remove` has run, every synth keeps the remove step
    assert.ok((await synth(d, raw)).resources.remove_k8s_node2);
  });
});

