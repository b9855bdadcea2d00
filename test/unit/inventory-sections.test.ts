// inventory/ by section: the section readers read values only (the local-file pass alone touches
// the file system), and every cross-field rule is named and fires on the inventory it is about.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { InventoryError, parseInventory } from "../../src/inventory/load";
import { RULES } from "../../src/inventory/rules";
import { RawInventory, baseInventory } from "../helpers/fixtures";

test("section readers import no file-system module: local files are a pass of their own", () => {
  const dir = path.join(__dirname, "..", "..", "src", "inventory", "sections");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".ts"));
  assert.ok(files.length >= 10, files.join(", "));
  for (const f of files) assert.doesNotMatch(fs.readFileSync(path.join(dir, f), "utf8"), /from "node:fs"|require\("fs"\)/, f);
});

/** The issues an inventory gets (errors and warnings), as field: message. */
function issues(edit: (raw: RawInventory) => void): string[] {
  const raw = baseInventory();
  edit(raw);
  try {
    return parseInventory(stringify(raw), "/x/cluster.yaml").warnings.map((w) => `${w.field}: ${w.message}`);
  } catch (e) {
    assert.ok(e instanceof InventoryError, String(e));
    return e.issues.map((i) => `${i.field}: ${i.message}`);
  }
}

// one inventory per rule, in RULES order, and what it must report
const FIRES: [string, (raw: RawInventory) => void, RegExp][] = [
  ["host addresses are outside the service and pod ranges", (raw) => (raw.hosts[1]!.address = "10.244.3.4"), /^hosts\[1\]\.address: 10\.244\.3\.4 is inside the pod range/],
  ["the apiserver port and the node port range keep clear of the cluster's own ports", (raw) => (raw.network = { apiserverPort: 10250 }), /^network\.apiserverPort: 10250 is the port of the kubelet API/],
  ["the apiserver endpoint is outside the cluster's own ranges and names", (raw) => (raw.apiserver = { endpoint: "https://10.0.0.1:6443" }), /^apiserver\.endpoint: 10\.0\.0\.1 is the kubernetes Service's ClusterIP/],
  ["several masters without an endpoint have the node-local proxy", (raw) => ((raw.hosts[1]!.roles = ["etcd", "master", "node"]), (raw.apiserver = { nodeLocalProxy: false })), /^apiserver\.nodeLocalProxy: is false with 2 masters and no endpoint/],
  ["the node-local proxy's port is free", (raw) => ((raw.apiserver = { nodeLocalProxy: true }), (raw.network = { nodePortRange: "6000-7000" })), /^network\.nodePortRange: 6000-7000 contains 6444, the port of the node-local apiserver proxy/],
  ["tainted masters leave workloads a node", (raw) => ((raw.hosts = raw.hosts.slice(0, 1)), (raw.kubelet = { taintMasters: true })), /^kubelet\.taintMasters: every node is a master/],
];

test("every cross-field rule is named once and reports on the inventory it is about (and not on the base one)", () => {
  assert.deepEqual(RULES.map((r) => r.name), FIRES.map(([name]) => name));
  assert.deepEqual(issues(() => undefined), [], "the base inventory breaks no rule");
  for (const [name, edit, expected] of FIRES) assert.ok(issues(edit).some((i) => expected.test(i)), `${name}: ${issues(edit).join("\n")}`);
});
