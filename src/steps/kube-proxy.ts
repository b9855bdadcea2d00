// kube-proxy: iptables mode, clusterCIDR = the pod range (the guide wrote the service range),
// metrics on localhost only.
import { BINARIES } from "../binaries/catalog";
import { kubeletHosts } from "../inventory/types";
import { certKubeconfig, nodeApiserverURL } from "../pki/kubeconfig";
import { K8S, binary, secret, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { applyUnit, checkReleaseVersion, waitActive } from "./actions";

async function runKubeProxy(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await checkReleaseVersion(rc, "kube-proxy");
  const action = await applyUnit(rc, "kube-proxy", sync.changed.length > 0);
  await waitActive(rc, "kube-proxy");
  return `${sync.changed.length} files changed, ${action}`;
}

export const kubeProxy: StepDef = {
  name: "kube-proxy",
  scope: "host",
  description: "kube-proxy: kubeconfig, config, unit",
  hosts: kubeletHosts,
  deps: [
    { step: "kubelet", on: "same-host", why: "kube-proxy reads its Node object (the node IP), which the kubelet registers: the guide's order" },
    { step: "apiserver-proxy", on: "same-host", why: "its kubeconfig names the node-local apiserver proxy when that is on: the proxy serves first" },
  ],
  group: "node-agent",
  run: runKubeProxy,
  units: ["kube-proxy"],
  binaries: BINARIES.kubeProxy,
  certificates: () => ["kube-proxy"],
  nodeRoll: true,
  files: ({ inv, pki }, host) => [
    ...BINARIES.kubeProxy.map((b) => binary(K8S.bin, b)),
    secret(`${K8S.cfg}/kube-proxy.kubeconfig`, certKubeconfig(inv, pki, "kube-proxy", "system:kube-proxy", nodeApiserverURL(inv))),
    templated(`${K8S.cfg}/kube-proxy.conf`, "kube-proxy/kube-proxy.conf", {}),
    templated(`${K8S.cfg}/kube-proxy-config.yml`, "kube-proxy/kube-proxy-config.yml", {
      name: host.name,
      podCIDR: inv.network.podCIDR,
      conntrackMaxPerCore: inv.kubeProxy.conntrackMaxPerCore,
    }),
    unit("kube-proxy", "kube-proxy/kube-proxy.service"),
  ],
};
