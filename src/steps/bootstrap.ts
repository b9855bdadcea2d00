// bootstrap: RBAC that lets kubelets join by TLS bootstrap with automatic CSR approval, and lets
// the apiserver reach kubelets. Applied once, from the first master.
import { hostsWithRole, kubeletHosts } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef, RunContext } from "./types";
import { KUBECTL, kubectl, kubectlApply } from "./actions";
import { GateError } from "../util/wait";
import { keyNames } from "../pki/encryption";

async function runBootstrap(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await kubectlApply(rc.remote, `-f ${K8S.manifests}/bootstrap-rbac.yaml -f ${K8S.manifests}/pod-security.yaml`);
  const names = await kubectl(rc.remote, "get clusterrolebinding kubelet-bootstrap node-autoapprove-bootstrap node-autoapprove-certificate-rotation system:kube-apiserver binkube:psp:restricted -o name");
  const count = names.trim().split("\n").filter(Boolean).length;
  if (count !== 5) throw new GateError(`expected 5 RBAC bindings after apply, found ${count}`);
  const psps = (await kubectl(rc.remote, "get psp binkube-privileged binkube-restricted -o name")).trim().split("\n").filter(Boolean).length;
  if (psps !== 2) throw new GateError(`expected the 2 pod security policies after apply, found ${psps}: with PodSecurityPolicy admission on, no pod could start`);
  const rewritten = await rewriteSecrets(rc);
  return `${sync.changed.length} files changed, RBAC and pod security policies applied${rewritten}`;
}

/**
 * After every apiserver runs with the current encryption keys (this step depends on all of them):
 * when the writing key changed since the last run (or encryption was just turned on), rewrite
 * every Secret so it is stored with that key, then record the key names as applied.
 */
async function rewriteSecrets(rc: RunContext): Promise<string> {
  const keys = rc.operator.encryptionKeys();
  if (!keys) throw new GateError(`${rc.inv.pkiDir}: no encryption keys: re-run \`npx cdktf deploy\` (synthesis creates them)`);
  const names = keyNames(keys);
  const applied = rc.operator.appliedEncryptionKeys();
  let note = "";
  if (applied?.split(",")[0] !== keys.keys[0]!.name) {
    // replace keeps each Secret's resourceVersion: one written meanwhile conflicts; a second pass takes it.
    const rewrite = () => rc.sh(`${KUBECTL} get secrets --all-namespaces -o json | ${KUBECTL} replace -f - >/dev/null`, { allowFail: true, timeoutMs: 600_000 });
    let r = await rewrite();
    if (r.code !== 0) r = await rewrite();
    if (r.code !== 0) throw new GateError(`rewriting Secrets with encryption key ${keys.keys[0]!.name} failed: ${r.stderr.trim().split("\n").pop()}`);
    const count = (await kubectl(rc.remote, "get secrets --all-namespaces --no-headers")).trim().split("\n").filter(Boolean).length;
    note = `, ${count} Secrets rewritten with ${keys.keys[0]!.name}`;
  }
  rc.operator.recordAppliedEncryptionKeys(names);
  return note;
}

export const APISERVER_KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client";

export const bootstrap: StepDef = {
  name: "bootstrap",
  scope: "once",
  description: "RBAC: bootstrap binding, CSR auto-approval, apiserver → kubelet; pod security policies",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    {
      step: "apiserver",
      on: "all",
      why: "applied through the API; after every apiserver, so a kubelet (which waits for bootstrap) is never newer than an apiserver, and Secrets are rewritten only once every apiserver has the current encryption keys",
    },
  ],
  group: "control-plane",
  run: runBootstrap,
  usesBinaries: ["kubectl", "kube-apiserver"],
  // key names only: a new writing key re-runs this step, which rewrites every Secret with it
  triggers: ({ pki }) => ({ "encryption-keys": keyNames(pki.encryption) }),
  files: ({ inv }) => [
    templated(`${K8S.manifests}/bootstrap-rbac.yaml`, "rbac/bootstrap-rbac.yaml", {
      apiserverKubeletClientUser: APISERVER_KUBELET_CLIENT_USER,
      // the nodes whose client certificate renewals are approved: the inventory's, no others
      nodeUsers: kubeletHosts(inv).map((h) => `system:node:${h.name}`),
    }),
    // Before any pod: PodSecurityPolicy admission (apiserver) refuses pods no policy allows.
    templated(`${K8S.manifests}/pod-security.yaml`, "rbac/pod-security.yaml", {}),
  ],
};
