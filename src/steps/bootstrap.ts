// bootstrap: RBAC that lets kubelets join by TLS bootstrap with automatic CSR approval, and lets
// the apiserver reach kubelets. Applied once, from the first master.
import { hostsWithRole } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef, RunContext } from "./types";
import { KUBECTL, kubectl } from "./actions";
import { GateError } from "../util/wait";

async function runBootstrap(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await rc.sh(`${KUBECTL} apply -f ${K8S.manifests}/bootstrap-rbac.yaml -f ${K8S.manifests}/pod-security.yaml`);
  const names = await kubectl(rc.remote, "get clusterrolebinding kubelet-bootstrap node-autoapprove-bootstrap node-autoapprove-certificate-rotation system:kube-apiserver binkube:psp:restricted -o name");
  const count = names.trim().split("\n").filter(Boolean).length;
  if (count !== 5) throw new GateError(`expected 5 RBAC bindings after apply, found ${count}`);
  const psps = (await kubectl(rc.remote, "get psp binkube-privileged binkube-restricted -o name")).trim().split("\n").filter(Boolean).length;
  if (psps !== 2) throw new GateError(`expected the 2 pod security policies after apply, found ${psps}: with PodSecurityPolicy admission on, no pod could start`);
  return `${sync.changed.length} files changed, RBAC and pod security policies applied`;
}

export const APISERVER_KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client";

export const bootstrap: StepDef = {
  name: "bootstrap",
  scope: "once",
  description: "RBAC: bootstrap binding, CSR auto-approval, apiserver → kubelet; pod security policies",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [{ step: "apiserver", on: "all" }],
  run: runBootstrap,
  usesBinaries: ["kubectl", "kube-apiserver"],
  files: () => [
    templated(`${K8S.manifests}/bootstrap-rbac.yaml`, "rbac/bootstrap-rbac.yaml", { apiserverKubeletClientUser: APISERVER_KUBELET_CLIENT_USER }),
    // Before any pod: PodSecurityPolicy admission (apiserver) refuses pods no policy allows.
    templated(`${K8S.manifests}/pod-security.yaml`, "rbac/pod-security.yaml", {}),
  ],
};
