// cdktf app entry: the inventory comes from BINKUBE_CONFIG (default ./cluster.yaml).
import * as path from "node:path";
import { CLI_ENTRY, PACKAGE_ROOT } from "./src/paths";
import { App } from "cdktf";
import { ClusterStack, stackName } from "./stacks/cluster-stack";
import { adoptLegacyStack, publishManifest, stackDir, stackHome } from "./stacks/stack-home";
import { configPathFromEnv } from "./src/inventory/load";
import { synthCluster } from "./src/cli/synth-report";
import { logger } from "./src/log";
import { checkTerraformVersion } from "./stacks/terraform-version";
import { deployOwner } from "./src/deploy/cli-process";
import { takeDeployLock } from "./src/deploy/inventory-lock";
import { claimDirectory, recordSynth, stateDir } from "./src/deploy/clusters";

async function main(): Promise<void> {
  // stdout: cdktf shows an app's stderr as ERROR lines
  const say = logger(process.stdout);
  const config = configPathFromEnv();
  const baseDir = path.dirname(config);
  // Before anything is written (pki/, the ledger, the stack): one inventory per directory, and
  // one cdktf command per inventory at a time (held until that command ends).
  const owner = deployOwner();
  claimDirectory(config, baseDir);
  takeDeployLock(stateDir(baseDir), config, owner);
  // Leaf keys are left to the steps that ship them (pki/issuance.ts): the first steps start sooner.
  const cluster = await synthCluster(config, say, { defer: true });
  checkTerraformVersion(cluster.inv.engine, say);
  const name = stackName(cluster.inv);
  // cdktf's shared output directory (cdktf.json "output" or --output); the stack itself goes
  // beside the inventory, where no other inventory's synth prunes it (stacks/stack-home.ts).
  const shared = path.resolve(process.env.CDKTF_OUTDIR ?? "cdktf.out");
  if (adoptLegacyStack(shared, name, baseDir)) say(`moved this cluster's stack from ${path.join(shared, "stacks", name)} to ${stackDir(baseDir, name)} (nothing is redeployed)`);
  // cdktf's own validations spawn `terraform version` once per resource; checked once above.
  const app = new App({ outdir: stackHome(baseDir), skipValidation: true });
  new ClusterStack(app, name, cluster, { binkube: [process.execPath, CLI_ENTRY] });
  app.synth();
  publishManifest({ sharedOutdir: shared, baseDir, stack: name, inventory: config, owner, say });
  recordSynth(cluster.inv, { stack: name, checkout: PACKAGE_ROOT, deploying: /^cdktf deploy\b/.test(owner.command) });
  // Resources to create: their steps will want the step server, so start it now, while Terraform
  // initializes and plans, rather than on the first step's critical path (bin/step-client.cjs).
  if (cluster.plan.newInstances > 0) (require(path.join(PACKAGE_ROOT, "bin", "step-client.cjs")) as { prestart(stackDir: string): boolean }).prestart(stackDir(baseDir, name));
}

main().catch((e: Error) => {
  process.stderr.write(`binkube synth: ${e.message}\n`);
  process.exit(1);
});
