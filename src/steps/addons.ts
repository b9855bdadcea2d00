// addons: flannel (pod network) and CoreDNS, applied once from the first master.
import { REQUIRED_CNI } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef, RunContext } from "./types";
import { waitFor } from "../util/wait";
import { KUBECTL, kubectl } from "./actions";

async function runAddons(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await rc.sh(`${KUBECTL} apply -f ${K8S.manifests}/kube-flannel.yaml -f ${K8S.manifests}/coredns.yaml`);
  const nodes = hostsWithRole(rc.inv, "node").map((h) => h.name);
  await waitFor(
    `nodes Ready (${nodes.join(", ")})`,
    async () => {
      const out = await kubectl(rc.remote, `get nodes -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}'`, { allowFail: true });
      const ready = nodes.filter((n) => out.includes(`${n}=True`));
      return ready.length === nodes.length ? true : `${ready.length}/${nodes.length} Ready`;
    },
    { timeoutMs: 300_000, intervalMs: 3000, log: rc.log, fix: "check the flannel pods: kubectl -n kube-system get pods -o wide; images must be pullable or preloaded" },
  );
  // Nodes turn Ready as soon as the CNI config exists; flannel running on every node is what
  // makes pod traffic cross hosts.
  await waitFor(
    `flannel running on ${nodes.length} nodes`,
    async () => {
      const ready = Number(await kubectl(rc.remote, "-n kube-system get ds kube-flannel-ds-amd64 -o jsonpath={.status.numberReady}", { allowFail: true }));
      return ready === nodes.length ? true : `${ready}/${nodes.length} flannel pods ready`;
    },
    { timeoutMs: 300_000, intervalMs: 3000, log: rc.log, fix: "check kubectl -n kube-system logs -l app=flannel; the flannel image must be pullable or preloaded (images.preload)" },
  );
  await waitFor(
    "CoreDNS available",
    async () => (Number(await kubectl(rc.remote, "-n kube-system get deploy coredns -o jsonpath={.status.availableReplicas}", { allowFail: true })) >= 1 ? true : "no replica available"),
    { timeoutMs: 180_000, intervalMs: 3000, log: rc.log, fix: "check kubectl -n kube-system describe pods -l k8s-app=kube-dns" },
  );
  return `${sync.changed.length} files changed, flannel + CoreDNS running, ${nodes.length} nodes Ready`;
}

export const addons: StepDef = {
  name: "addons",
  scope: "once",
  description: "flannel and CoreDNS manifests",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "bootstrap", on: "all" },
    { step: "scheduler", on: "all" },
    { step: "kube-proxy", on: "all" },
  ],
  run: runAddons,
  // Its gate waits for Ready nodes: without kubelet and the CNI plugins it could only time out.
  usesBinaries: ["kubectl", "kube-apiserver", "kubelet", ...REQUIRED_CNI],
  files: ({ inv }) => [
    templated(`${K8S.manifests}/kube-flannel.yaml`, "addons/kube-flannel.yaml", {
      podCIDR: inv.network.podCIDR,
      flannelBackend: inv.network.flannelBackend,
      flannelImage: inv.images.flannel,
    }),
    templated(`${K8S.manifests}/coredns.yaml`, "addons/coredns.yaml", {
      clusterDomain: inv.network.clusterDomain,
      clusterDNS: inv.network.clusterDNS,
      corednsImage: inv.images.coredns,
      corednsReplicas: 2,
    }),
  ],
};
