// network: the cluster's address ranges, DNS, node ports, the apiserver's port and flannel's backend.
import { dnsName } from "../grammar";
import type { Obj, Reader } from "../reader";
import type { Inventory } from "../types";
import { Cidr, cidrContains, cidrsOverlap, isIPv4, nthAddress, parseCidr } from "../../util/ip";

const NETWORK_DEFAULTS = {
  serviceCIDR: "10.0.0.0/24",
  podCIDR: "10.244.0.0/16",
  clusterDNS: "10.0.0.2",
  clusterDomain: "cluster.local",
  nodePortRange: "30000-32767",
} as const;

/** The section, and its ranges parsed (undefined where invalid: the error is recorded) for the cross-field rules. */
export interface NetworkSection {
  network: Inventory["network"];
  svc?: Cidr;
  pod?: Cidr;
  nodePorts?: { lo: number; hi: number };
}

export function readNetwork(r: Reader, raw: Obj): NetworkSection {
  const net = r.section(raw, "network", "");
  r.known(net, ["serviceCIDR", "podCIDR", "clusterDNS", "clusterDomain", "nodePortRange", "apiserverPort", "flannelBackend"], "network");
  const serviceCIDR = r.str(net, "serviceCIDR", "network", NETWORK_DEFAULTS.serviceCIDR);
  const podCIDR = r.str(net, "podCIDR", "network", NETWORK_DEFAULTS.podCIDR);
  const clusterDNS = r.str(net, "clusterDNS", "network", NETWORK_DEFAULTS.clusterDNS);
  const clusterDomain = r.str(net, "clusterDomain", "network", NETWORK_DEFAULTS.clusterDomain);
  const nodePortRange = r.str(net, "nodePortRange", "network", NETWORK_DEFAULTS.nodePortRange);
  const apiserverPort = r.int(net, "apiserverPort", "network", 6443, 1, 65535);
  const flannelBackend = r.oneOf(net, "flannelBackend", "network", ["vxlan", "host-gw"] as const, "vxlan");
  const svc = parseCidr(serviceCIDR);
  const pod = parseCidr(podCIDR);
  if (!svc) r.error("network.serviceCIDR", `"${serviceCIDR}" is not an IPv4 CIDR with a clean network address`, "write it like 10.0.0.0/24");
  else if (svc.prefix < 12 || svc.prefix > 28) r.error("network.serviceCIDR", `a /${svc.prefix} service range is out of range`, "kube-apiserver accepts /12 (1M addresses) down to /28: pick e.g. /24 or /16");
  if (!pod) r.error("network.podCIDR", `"${podCIDR}" is not an IPv4 CIDR with a clean network address`, "write it like 10.244.0.0/16");
  else if (pod.prefix > 22) r.error("network.podCIDR", `a /${pod.prefix} pod range leaves room for too few nodes (each gets a /24)`, "use a /16 (flannel's default) or at least a /22");
  if (svc && pod && cidrsOverlap(svc, pod)) r.error("network.podCIDR", `${podCIDR} overlaps the service range ${serviceCIDR}`, "choose disjoint ranges, e.g. service 10.0.0.0/24 and pods 10.244.0.0/16");
  if (!isIPv4(clusterDNS)) r.error("network.clusterDNS", `"${clusterDNS}" is not an IPv4 address`, "use an address inside serviceCIDR, e.g. 10.0.0.2");
  else if (svc && !cidrContains(svc, clusterDNS)) r.error("network.clusterDNS", `${clusterDNS} is outside the service range ${serviceCIDR}`, `use an address inside ${serviceCIDR}, e.g. ${nthAddress(svc, 2)}`);
  else if (svc && clusterDNS === nthAddress(svc, 1)) r.error("network.clusterDNS", `${clusterDNS} is the first service address, which the kubernetes Service takes`, `use ${nthAddress(svc, 2)}`);
  else if (svc && (clusterDNS === nthAddress(svc, 0) || clusterDNS === nthAddress(svc, svc.size - 1))) r.error("network.clusterDNS", `${clusterDNS} is the network or broadcast address of ${serviceCIDR}`, `use ${nthAddress(svc, 2)}`);
  const badDomain = dnsName(clusterDomain);
  if (badDomain) r.error("network.clusterDomain", `"${clusterDomain}" is not a DNS domain: it ${badDomain}`, "use e.g. cluster.local");
  const np = /^(\d+)-(\d+)$/.exec(nodePortRange);
  const nodePorts = np && Number(np[1]) < Number(np[2]) && Number(np[2]) <= 65535 && Number(np[1]) >= 1 ? { lo: Number(np[1]), hi: Number(np[2]) } : undefined;
  if (!nodePorts) r.error("network.nodePortRange", `"${nodePortRange}" is not a port range`, "write it like 30000-32767");
  return {
    network: { serviceCIDR, podCIDR, clusterDNS, clusterDomain, nodePortRange, kubernetesServiceIP: svc ? nthAddress(svc, 1) : "", apiserverPort, flannelBackend },
    svc,
    pod,
    nodePorts,
  };
}
