// usage: node --import tsx synth.ts ROOT DIR OUT
import * as fs from "node:fs";
import * as path from "node:path";
const [root, dir, out] = process.argv.slice(2) as [string, string, string];
const { openCluster } = await import(path.join(root, "src/cluster.ts"));
const { ClusterStack } = await import(path.join(root, "stacks/cluster-stack.ts"));
const { Testing } = await import("/work/main/node_modules/cdktf/lib/index.js");
const cluster = await openCluster(path.join(dir, "cluster.yaml"), { create: true });
const app = Testing.app({ outdir: fs.mkdtempSync("/tmp/teardown-review/cdktf-") });
const json = JSON.parse(Testing.synth(new ClusterStack(app, "test", cluster, { binkube: ["/bin/echo"] })));
// every provisioner: a no-op that proves nothing runs at create (the command is no diff input)
for (const r of Object.values(json.resource.terraform_data) as any[]) for (const p of r.provisioner ?? []) p["local-exec"].command = p["local-exec"].when === "destroy" ? "echo DESTROY-PROVISIONER-RAN" : "true";
json.terraform.backend = { local: { path: path.join(dir, "tf", "terraform.tfstate") } };
fs.writeFileSync(out, JSON.stringify(json, null, 1));
console.log(Object.keys(json.resource.terraform_data).length, "resources");
