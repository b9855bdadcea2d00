// addons: flannel (pod network) and CoreDNS, applied once from the first master.
import { hostsWithRole } from "../inventory/types";
import { K8S, templated } from "./files";
import { StepDef } from "./types";

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
