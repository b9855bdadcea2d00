// cdktf app entry: the inventory comes from BINKUBE_CONFIG (default ./cluster.yaml).
import * as path from "node:path";
import { App } from "cdktf";
import { ClusterStack } from "./stacks/cluster-stack";
import { configPathFromEnv } from "./src/inventory/load";
import { synthCluster } from "./src/cli/synth-report";

async function main(): Promise<void> {
  const cluster = await synthCluster(configPathFromEnv());
  const app = new App();
  new ClusterStack(app, "binkube", cluster, { binkube: [process.execPath, path.join(__dirname, "bin", "binkube.cjs")] });
  app.synth();
}

main().catch((e: Error) => {
  process.stderr.write(`binkube synth: ${e.message}\n`);
  process.exit(1);
});
