// cdktf app entry: the inventory comes from BINKUBE_CONFIG (default ./cluster.yaml).
import { CLI_ENTRY } from "./src/paths";
import { App } from "cdktf";
import { ClusterStack, stackName } from "./stacks/cluster-stack";
import { configPathFromEnv } from "./src/inventory/load";
import { synthCluster } from "./src/cli/synth-report";
import { logger } from "./src/log";
import { checkTerraformVersion } from "./stacks/terraform-version";

async function main(): Promise<void> {
  // stdout: cdktf shows an app's stderr as ERROR lines
  const say = logger(process.stdout);
  const cluster = await synthCluster(configPathFromEnv(), say);
  checkTerraformVersion(cluster.inv.engine, say);
  // cdktf's own validations spawn `terraform version` once per resource; checked once above.
  const app = new App({ skipValidation: true });
  new ClusterStack(app, stackName(cluster.inv), cluster, { binkube: [process.execPath, CLI_ENTRY] });
  app.synth();
}

main().catch((e: Error) => {
  process.stderr.write(`binkube synth: ${e.message}\n`);
  process.exit(1);
});
