// One Terraform resource per (step, host): terraform_data by default, null_resource on request.
// Its triggers are the step's content hashes; its local-exec runs `binkube step`.
import { DataResource, ITerraformDependable } from "cdktf";
import { Resource as NullResource } from "@cdktf/provider-null/lib/resource";
import { Construct } from "constructs";
import { Engine } from "../src/inventory/types";

export interface StepResourceProps {
  engine: Engine;
  triggers: Record<string, string>;
  command: string;
  dependsOn: ITerraformDependable[];
}

/**
 * A string Terraform reads literally: every string in cdk.tf.json is a Terraform template, so a
 * `${` or `%{` in a path (a directory named `${x}`) would be evaluated; `$${` and `%%{` are the escapes.
 */
export function tfLiteral(s: string): string {
  return s.replace(/\$\{/g, () => "$${").replace(/%\{/g, () => "%%{");
}

type Provisioner = { type: "local-exec"; command: string; when?: "destroy" };

/** The engine's resource (null_resource or terraform_data) with these triggers and provisioners. */
function engineResource(scope: Construct, id: string, engine: Engine, triggers: Record<string, string>, provisioners: Provisioner[], dependsOn: ITerraformDependable[]): ITerraformDependable {
  if (engine === "null_resource") return new NullResource(scope, id, { triggers, provisioners, dependsOn });
  return new DataResource(scope, id, { triggersReplace: triggers, provisioners, dependsOn });
}

export function stepResource(scope: Construct, id: string, props: StepResourceProps): ITerraformDependable {
  const triggers = Object.fromEntries(Object.entries(props.triggers).map(([k, v]) => [tfLiteral(k), tfLiteral(v)]));
  return engineResource(scope, id, props.engine, triggers, [{ type: "local-exec", command: tfLiteral(props.command) }], props.dependsOn);
}

export interface TeardownResourceProps {
  engine: Engine;
  /** The host's name: the only trigger, so the resource is never replaced (a replacement would run its destroy provisioner). */
  host: string;
  command: string;
  dependsOn: ITerraformDependable[];
}

/**
 * One per host: nothing at create; `when = destroy` runs `binkube teardown` when the resource is
 * destroyed (cdktf destroy). Step resources never carry a destroy provisioner: Terraform runs
 * those on every replacement too, that is on every trigger change.
 */
export function teardownResource(scope: Construct, id: string, props: TeardownResourceProps): ITerraformDependable {
  return engineResource(scope, id, props.engine, { host: tfLiteral(props.host) }, [{ type: "local-exec", when: "destroy", command: tfLiteral(props.command) }], props.dependsOn);
}
