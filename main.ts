// cdktf app entry: the inventory comes from BINKUBE_CONFIG (default ./cluster.yaml).
import * as path from "node:path";
import { CLI_ENTRY, PACKAGE_ROOT } from "./src/paths";
import { App } from "cdktf";
import { ClusterStack, stackName } from "./stacks/cluster-stack";
import { configPathFromEnv } from "./src/inventory/load";
import { synthCluster } from "./src/cli/synth-report";
import { logger } from "./src/log";
import { checkTerraformVersion } from "./stacks/terraform-version";

async function main(): Promise<void> {
  // stdout: cdktf shows an app's stderr as ERROR lines
  const say = logger(process.stdout);
  // Leaf keys are left to the steps that ship them (pki/issuance.ts): the first steps start sooner.
  const cluster = await synthCluster(configPathFromEnv(), say, { defer: true });
  checkTerraformVersion(cluster.inv.engine, say);
  // cdktf's own validations spawn `terraform version` once per resource; checked once above.
  const app = new App({ skipValidation: true });
  const name = stackName(cluster.inv);
  new ClusterStack(app, name, cluster, { binkube: [process.execPath, CLI_ENTRY] });
  app.synth();
  // Resources to create: their steps will want the step server, so start it now, while Terraform
  // initializes and plans, rather than on the first step's critical path (bin/step-client.cjs).
  if (cluster.plan.newInstances > 0) (require(path.join(PACKAGE_ROOT, "bin", "step-client.cjs")) as { prestart(stackDir: string): boolean }).prestart(path.resolve(app.outdir, "stacks", name));
}

main().catch((e: Error) => {
  process.stderr.write(`binkube synth: ${e.message}\n`);
  process.exit(1);
});
