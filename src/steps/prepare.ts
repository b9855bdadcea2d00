// prepare: kernel modules and sysctls every host needs; preflight checks run here at deploy time.
import { StepDef } from "./types";
import { templated } from "./files";

export const prepare: StepDef = {
  name: "prepare",
  scope: "host",
  description: "preflight checks, kernel modules, sysctls, directories",
  hosts: (inv) => inv.hosts,
  deps: [],
  files: () => [
    templated("/etc/modules-load.d/kubernetes.conf", "prepare/modules-kubernetes.conf", {}),
    templated("/etc/sysctl.d/99-kubernetes.conf", "prepare/sysctl-kubernetes.conf", {}),
  ],
};
