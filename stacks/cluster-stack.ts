// The cluster stack: the plan's instances as resources, depends_on edges in bring-up order,
// state kept beside the inventory so each inventory has its own.
import * as crypto from "node:crypto";
import { LocalBackend, PgBackend, TerraformStack, ITerraformDependable } from "cdktf";
import { NullProvider } from "@cdktf/provider-null/lib/provider";
import { Construct } from "constructs";
import { Cluster } from "../src/cluster";
import { statePath } from "../src/state";
import { shq } from "../src/remote/shell";
import { stepResource, teardownResource } from "./step-resource";
import { Host, hasRole } from "../src/inventory/types";

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

/** The teardown resource of a host: "teardown_lab1" (no step is named teardown, so no step id is one). */
export function teardownId(host: Host): string {
  return `teardown_${host.name.replace(/-/g, "_")}`;
}

/** Teardown tiers in bring-up order; a host with several roles is in its earliest one. */
function teardownTier(host: Host): 0 | 1 | 2 {
  return hasRole(host, "etcd") ? 0 : hasRole(host, "master") ? 1 : 2;
}

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
    // One teardown resource per host; Terraform destroys a resource before what it depends on,
    // so on destroy these go last, tier by tier: nodes, then masters, then etcd members.
    //  - masters wait for the nodes: a kubelet torn down while its apiserver still answers is
    //    what a node shutdown looks like; the other way round every kubelet and kube-proxy spins
    //    on a dead apiserver while it waits for its turn;
    //  - etcd members wait for the masters: an apiserver never outlives its storage, and a
    //    destroy stopped half way leaves the cluster's state (etcd) running for a redeploy.
    // Each tier depends on the nearest earlier tier that has hosts (edges are transitive).
    const teardowns = new Map<string, ITerraformDependable>();
    const tiers: Host[][] = [[], [], []];
    for (const h of inv.hosts) tiers[teardownTier(h)]!.push(h);
    let before: ITerraformDependable[] = [];
    for (const tier of tiers) {
      const made = tier.map((h) => {
        const res = teardownResource(this, teardownId(h), {
          engine: inv.engine,
          host: h.name,
          command: commandLine([...opts.binkube, "teardown", "--host", h.name, "--config", inv.file]),
          dependsOn: before,
        });
        teardowns.set(h.name, res);
        return res;
      });
      if (made.length > 0) before = made;
    }
    // The plan is the only source of resources (host removals included): one per instance,
    // its edges the instance's declared dependencies.
    for (const inst of plan.instances) {
      // --hash: the step process renders its instance again and refuses to ship anything but what was planned here.
      const command = commandLine([...opts.binkube, "step", inst.step, "--host", inst.host.name, "--config", inv.file, "--hash", inst.hash, ...(inst.firstBringUp ? ["--first-bring-up"] : [])]);
      const res = stepResource(this, inst.id, {
        engine: inv.engine,
        triggers: inst.triggers,
        command,
        // After its host's teardown resource, so a destroy removes the steps first and tears the
        // host down last. Not a trigger: adding this edge to a deployed cluster replaces nothing.
        dependsOn: [...inst.dependsOn.map((d) => byId.get(d)!), ...(teardowns.has(inst.host.name) ? [teardowns.get(inst.host.name)!] : [])],
      });
      byId.set(inst.id, res);
    }
  }
}
