// kubelet: extraArgs under binkube's policy (inventory/extra-args.ts), the weakenings an operator
// owns up to, swap, and the masters' taint (which must leave workloads a node: rules.ts).
import { FlagPolicy, KUBELET_WEAKENING, checkExtraArgs } from "../extra-args";
import { flagName, shown, visible } from "../grammar";
import { KUBELET_FLAGS } from "../kubelet-flags";
import { Obj, Reader, join } from "../reader";
import type { Inventory } from "../types";
import { kubeletWrites } from "../../steps/kubelet-files";

/** kubelet.extraArgs: v1.17's flags, what binkube writes (rendered), what weakens the kubelet. */
const KUBELET_POLICY: FlagPolicy = {
  component: "kubelet",
  known: KUBELET_FLAGS,
  get writes() {
    return kubeletWrites();
  },
  weakening: KUBELET_WEAKENING,
  // starting values, sized per cluster: the guide's, and binkube's status tick (4s; a cluster of
  // many nodes may want v1.17's 10s back: a tick is a GET of the node per node)
  tunable: ["max-pods", "eviction-hard", "node-status-update-frequency"],
  instead: {
    "node-labels": "use hosts[].labels",
    "pod-infra-container-image": "use images.pause",
    "node-ip": "binkube sets it to each host's hosts[].address (the address in its certificates): change that",
    "hostname-override": "binkube sets it to each host's hosts[].name (its node name and certificate): change that",
    "fail-swap-on": "use kubelet.failSwapOn",
    "cluster-dns": "use network.clusterDNS",
    "cluster-domain": "use network.clusterDomain",
  },
};

export function readKubelet(r: Reader, raw: Obj): Inventory["kubelet"] {
  const kl = r.section(raw, "kubelet", "");
  r.known(kl, ["extraArgs", "weakened", "failSwapOn", "taintMasters"], "kubelet");
  const extraArgs = r.strMap(kl, "extraArgs", "kubelet");
  for (const k of Object.keys(extraArgs)) {
    if (!flagName(k)) continue;
    r.error(join("kubelet.extraArgs", visible(k)), `"${shown(k)}" ${flagName(k)}`, "write the flag without leading dashes, e.g. max-pods: \"60\"");
    delete extraArgs[k];
  }
  const weakened = checkExtraArgs(r, "kubelet.extraArgs", extraArgs, "kubelet.weakened", r.list(kl, "weakened", "kubelet"), KUBELET_POLICY);
  return { extraArgs, weakened, failSwapOn: r.bool(kl, "failSwapOn", "kubelet", true), taintMasters: r.bool(kl, "taintMasters", "kubelet", false) };
}
