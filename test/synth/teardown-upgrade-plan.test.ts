// Upgrading a deployed cluster to a binkube with teardown resources: Terraform itself plans the
// change. The configuration before the upgrade is this one without the teardown resources and
// their edges (what stacks/cluster-stack.ts made before them); it is applied to a local state with
// every provisioner a no-op (Terraform's built-in terraform_data: no provider download), then the
// full configuration is planned against that state: only the teardown resources may be created.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { Testing } from "cdktf";
import { openCluster } from "../../src/cluster";
import { ClusterStack } from "../../stacks/cluster-stack";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

type Res = { depends_on?: string[]; provisioner?: { "local-exec": { command: string; when?: string } }[] };
type Config = { terraform: Record<string, unknown>; resource: Record<string, Record<string, Res>> };

const hasTerraform = spawnSync("terraform", ["version"], { encoding: "utf8" }).status === 0;

function terraform(dir: string, args: string[]): string {
  const r = spawnSync("terraform", args, { cwd: dir, encoding: "utf8", env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1", TF_CLI_CONFIG_FILE: "/dev/null" } });
  assert.equal(r.status, 0, `terraform ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

describe("upgrading a deployed cluster adds the teardown resources and changes nothing else", { skip: hasTerraform ? false : "terraform not on PATH" }, () => {
  test("terraform plan against the state of the configuration before: create teardown_* only", async () => {
    const dir = tempDir();
    writeFakeBinaries(path.join(dir, "bin"));
    const cluster = await openCluster(writeInventory(dir, baseInventory()), { create: true });
    const app = Testing.app({ outdir: tempDir("binkube-cdktf-") });
    const now = JSON.parse(Testing.synth(new ClusterStack(app, "test", cluster, { binkube: ["/bin/false"] }))) as Config;
    const type = Object.keys(now.resource)[0]!;
    assert.equal(type, "terraform_data");
    const tf = tempDir("binkube-tf-");
    now.terraform = { backend: { local: { path: path.join(tf, "terraform.tfstate") } } };
    // Nothing may run: a create-time command would run `binkube step`, a destroy-time one a teardown.
    for (const r of Object.values(now.resource[type]!)) for (const p of r.provisioner ?? []) p["local-exec"].command = p["local-exec"].when === "destroy" ? "exit 1" : "true";
    const before = structuredClone(now);
    const res = before.resource[type]!;
    for (const id of Object.keys(res)) if (id.startsWith("teardown_")) delete res[id];
    for (const r of Object.values(res)) r.depends_on = (r.depends_on ?? []).filter((d) => !d.startsWith(`${type}.teardown_`));
    assert.ok(Object.keys(res).length > 0 && Object.keys(res).length < Object.keys(now.resource[type]!).length);

    fs.writeFileSync(path.join(tf, "cdk.tf.json"), JSON.stringify(before));
    terraform(tf, ["init", "-input=false"]);
    terraform(tf, ["apply", "-auto-approve", "-input=false"]);
    fs.writeFileSync(path.join(tf, "cdk.tf.json"), JSON.stringify(now));
    terraform(tf, ["plan", "-input=false", "-out=upgrade.plan"]);
    const plan = JSON.parse(terraform(tf, ["show", "-json", "upgrade.plan"])) as { resource_changes: { address: string; change: { actions: string[] } }[] };
    const changed = plan.resource_changes.filter((c) => c.change.actions.join() !== "no-op").map((c) => `${c.change.actions.join("+")} ${c.address}`).sort();
    const teardowns = Object.keys(now.resource[type]!).filter((id) => id.startsWith("teardown_")).map((id) => `create ${type}.${id}`).sort();
    assert.deepEqual(changed, teardowns, "only the teardown resources are created; no step resource is replaced, updated or destroyed");
  });
});
