// The optional parts of the cluster and the choices between implementations: the container
// runtime, the CNI, Terraform's resource type, the addons and kube-proxy's conntrack sizing.
import type { Obj, Reader } from "../reader";
import { ENGINES, Inventory, RUNTIMES } from "../types";

export function readComponents(r: Reader, raw: Obj): Pick<Inventory, "runtime" | "cni" | "engine" | "addons" | "kubeProxy"> {
  const runtime = r.oneOf(raw, "runtime", "", RUNTIMES, "docker");
  const cni = r.oneOf(raw, "cni", "", ["flannel"] as const, "flannel");
  const engine = r.oneOf(raw, "engine", "", ENGINES, "terraform_data");

  const ad = r.section(raw, "addons", "");
  r.known(ad, ["metricsServer", "networkPolicy"], "addons");
  const addons = { metricsServer: r.bool(ad, "metricsServer", "addons", true), networkPolicy: r.bool(ad, "networkPolicy", "addons", true) };
  if (!addons.networkPolicy) r.warn("addons.networkPolicy", "is false: the API still accepts NetworkPolicy objects, and nothing enforces them (every pod can reach every pod)", "leave it on (kube-router's firewall enforces them) unless another enforcer runs in the cluster");

  const kp = r.section(raw, "kubeProxy", "");
  r.known(kp, ["conntrackMaxPerCore"], "kubeProxy");
  const kubeProxy = { conntrackMaxPerCore: r.int(kp, "conntrackMaxPerCore", "kubeProxy", 32768, 0, 1 << 24) };
  return { runtime, cni, engine, addons, kubeProxy };
}
