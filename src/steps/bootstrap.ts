// bootstrap: RBAC that lets kubelets join by TLS bootstrap with automatic CSR approval, and lets
// the apiserver reach kubelets. Applied once, from the first master.
import { hostsWithRole } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef, RunContext } from "./types";
import { KUBECTL, kubectl } from "./actions";

async function runBootstrap(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await rc.sh(`${KUBECTL} apply -f ${K8S.manifests}/bootstrap-rbac.yaml`);
  const names = await kubectl(rc.remote, "get clusterrolebinding kubelet-bootstrap node-autoapprove-bootstrap node-autoapprove-certificate-rotation system:kube-apiserver -o name");
  const count = names.trim().split("\n").filter(Boolean).length;
  if (count !== 4) throw new Error(`expected 4 RBAC bindings after apply, found ${count}`);
  return `${sync.changed.length} files changed, RBAC applied (4 bindings present)`;
}

export const APISERVER_KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client";

export const bootstrap: StepDef = {
  name: "bootstrap",
  scope: "once",
  description: "RBAC: bootstrap binding, CSR auto-approval, apiserver → kubelet",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [{ step: "apiserver", on: "all" }],
  run: runBootstrap,
  usesBinaries: ["kubectl", "kube-apiserver"],
  files: () => [
    templated(`${K8S.manifests}/bootstrap-rbac.yaml`, "rbac/bootstrap-rbac.yaml", { apiserverKubeletClientUser: APISERVER_KUBELET_CLIENT_USER }),
  ],
};
