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

export function stepResource(scope: Construct, id: string, props: StepResourceProps): ITerraformDependable {
  const provisioners = [{ type: "local-exec" as const, command: props.command }];
  if (props.engine === "null_resource") {
    return new NullResource(scope, id, { triggers: props.triggers, provisioners, dependsOn: props.dependsOn });
  }
  return new DataResource(scope, id, { triggersReplace: props.triggers, provisioners, dependsOn: props.dependsOn });
}
