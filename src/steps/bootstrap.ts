// bootstrap: RBAC that lets kubelets join by TLS bootstrap with automatic CSR approval, and lets
// the apiserver reach kubelets. Applied once, from the first master.
import { hostsWithRole } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef } from "./types";

export const APISERVER_KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client";

export const bootstrap: StepDef = {
  name: "bootstrap",
  scope: "once",
  description: "RBAC: bootstrap binding, CSR auto-approval, apiserver → kubelet",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [{ step: "apiserver", on: "all" }],
  files: () => [
    templated(`${K8S.manifests}/bootstrap-rbac.yaml`, "rbac/bootstrap-rbac.yaml", { apiserverKubeletClientUser: APISERVER_KUBELET_CLIENT_USER }),
  ],
};
