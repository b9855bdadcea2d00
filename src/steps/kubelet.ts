// kubelet: joins by TLS bootstrap (token → CSR → certificate approved automatically), CNI
// plugins for flannel, read-only port off, webhook authn/authz.
import { BINARIES, REQUIRED_CNI } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { bootstrapKubeconfig } from "../pki/kubeconfig";
import { K8S, binary, cert, secret, templated, unit } from "./files";
import { CGROUP_DRIVER } from "./runtime";
import { StepDef, RunContext } from "./types";
import { waitFor } from "../util/wait";
import { applyUnit, gateWithJournal, kubectl, waitActive } from "./actions";
import { shq } from "../remote/shell";

async function runKubelet(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  const action = await applyUnit(rc, "kubelet", sync.changed.length > 0);
  await waitActive(rc, "kubelet", { timeoutMs: 90_000 });
  const control = await rc.controlPlane();
  // TLS bootstrap: token → CSR → approved by the controller-manager → node object → Ready.
  await gateWithJournal(rc, "kubelet", () =>
    waitFor(
      `node ${rc.host.name} to register (TLS bootstrap, automatic CSR approval) and turn Ready`,
      async () => {
        const ready = await kubectl(control, `get node ${shq(rc.host.name)} -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}'`, { allowFail: true });
        return ready.trim() === "True" ? true : ready.trim() ? "registered, not Ready yet" : "not registered";
      },
      { timeoutMs: 180_000, intervalMs: 2000, log: rc.log, fix: `check journalctl -u kubelet on ${rc.host.name} and kubectl get csr` },
    ),
  );
  return `${sync.changed.length} files changed, ${action}, node Ready`;
}

export const kubelet: StepDef = {
  name: "kubelet",
  scope: "host",
  description: "kubelet: binaries, CNI plugins, bootstrap kubeconfig, config, unit",
  hosts: (inv) => hostsWithRole(inv, "node"),
  deps: [
    { step: "runtime", on: "same-host" },
    { step: "bootstrap", on: "all" },
    { step: "controller-manager", on: "all" },
  ],
  run: runKubelet,
  files: ({ inv, pki, binaries }, host) => {
    const cni = [...new Set([...REQUIRED_CNI, ...binaries.group("cni")])].sort();
    const labels = Object.entries(host.labels).map(([k, v]) => `${k}=${v}`).join(",");
    return [
      ...BINARIES.kubelet.map((b) => binary(K8S.bin, b)),
      ...cni.map((n) => binary("/opt/cni/bin", n)),
      templated("/etc/cni/net.d/10-flannel.conflist", "cni/10-flannel.conflist", {}),
      cert(`${K8S.ssl}/ca.pem`, pki.cas.ca.certPem),
      secret(`${K8S.cfg}/bootstrap.kubeconfig`, bootstrapKubeconfig(inv, pki)),
      templated(`${K8S.cfg}/kubelet.conf`, "kubelet/kubelet.conf", {
        name: host.name,
        address: host.address,
        pauseImage: inv.images.pause,
        nodeLabels: labels,
        extraArgs: inv.kubelet.extraArgs,
      }),
      templated(`${K8S.cfg}/kubelet-config.yml`, "kubelet/kubelet-config.yml", {
        cgroupDriver: CGROUP_DRIVER,
        clusterDNS: inv.network.clusterDNS,
        clusterDomain: inv.network.clusterDomain,
        failSwapOn: inv.kubelet.failSwapOn,
      }),
      unit("kubelet", "kubelet/kubelet.service"),
    ];
  },
};
