// The cluster stack: the plan's instances as resources, depends_on edges in bring-up order,
// state kept beside the inventory so each inventory has its own.
import * as crypto from "node:crypto";
import { LocalBackend, PgBackend, TerraformStack, ITerraformDependable } from "cdktf";
import { NullProvider } from "@cdktf/provider-null/lib/provider";
import { Construct } from "constructs";
import { Cluster } from "../src/cluster";
import { statePath } from "../src/state";
import { shq } from "../src/remote/shell";
import { stepResource } from "./step-resource";

export interface ClusterStackOptions {
  /** argv prefix that runs the binkube CLI, e.g. ["/usr/bin/node", "/repo/bin/binkube.cjs"]. */
  binkube: string[];
}

/**
 * One stack per inventory file: its directory (`terraform init` state, cdk.tf.json) is beside the
 * inventory (stacks/stack-home.ts), and the backend path differs per inventory, so two
 * inventories never share a stack directory.
 */
export function stackName(inv: { clusterName: string; file: string }): string {
  return `binkube-${inv.clusterName}-${crypto.createHash("sha256").update(inv.file).digest("hex").slice(0, 8)}`;
}

/** The local-exec command line that runs binkube for one resource, every word quoted for sh. */
const commandLine = (words: string[]) => words.map(shq).join(" ");

export class ClusterStack extends TerraformStack {
  constructor(scope: Construct, id: string, cluster: Cluster, opts: ClusterStackOptions) {
    super(scope, id);
    const { inv, plan } = cluster;
    if (inv.state.backend === "pg") {
      // Terraform takes the connection string from PG_CONN_STR: none in cdk.tf.json, none in the state.
      const pg = new PgBackend(this, { connStr: "", schemaName: inv.state.schema });
      pg.addOverride("conn_str", undefined);
    } else new LocalBackend(this, { path: statePath(inv) });
    if (inv.engine === "null_resource") new NullProvider(this, "null");
    const byId = new Map<string, ITerraformDependable>();
    // The plan is the only source of resources (host removals included): one per instance,
    // its edges the instance's declared dependencies.
    for (const inst of plan.instances) {
      // --hash: the step process renders its instance again and refuses to ship anything but what was planned here.
      const command = commandLine([...opts.binkube, "step", inst.step, "--host", inst.host.name, "--config", inv.file, "--hash", inst.hash, ...(inst.firstBringUp ? ["--first-bring-up"] : [])]);
      const res = stepResource(this, inst.id, {
        engine: inv.engine,
        triggers: inst.triggers,
        command,
        dependsOn: inst.dependsOn.map((d) => byId.get(d)!),
      });
      byId.set(inst.id, res);
    }
  }
}
