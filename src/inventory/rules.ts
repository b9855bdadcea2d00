// Cross-field rules: what no single section can check alone. Each is named (the name says the
// rule) and runs once every section is read, on the values the sections produced.
import type { Reader } from "./reader";
import { Host, Inventory, NODE_LOCAL_PROXY_PORT } from "./types";
import { Cidr, cidrContains, isIPv4, nthAddress } from "../util/ip";
import type { HostEntry } from "./sections/hosts";
import type { NetworkSection } from "./sections/network";

export interface RuleInput {
  inv: Inventory;
  hosts: HostEntry[];
  net: NetworkSection;
  /** The apiserver endpoint's host (address or name), when it parsed. */
  endpointHost?: string;
}

export interface Rule {
  name: string;
  check(r: Reader, i: RuleInput): void;
}

/** Ports that the node port range and the apiserver must stay clear of, with what holds them. */
function reservedPorts(hosts: Host[]): Map<number, string> {
  const m = new Map<number, string>([
    [2379, "etcd clients"], [2380, "etcd peers"], [2381, "etcd metrics"], [8472, "flannel vxlan (udp)"],
    [10248, "kubelet healthz"], [10249, "kube-proxy metrics"], [10250, "the kubelet API"], [10251, "kube-scheduler healthz"],
    [10252, "kube-controller-manager healthz"], [10256, "kube-proxy healthz"], [10257, "kube-controller-manager"], [10259, "kube-scheduler"],
  ]);
  for (const h of hosts) m.set(h.ssh.port, "ssh");
  return m;
}

export const RULES: readonly Rule[] = [
  {
    name: "host addresses are outside the service and pod ranges",
    check: (r, { hosts, net }) => {
      for (const { host, at, addressOk } of hosts) {
        if (!addressOk) continue;
        if (net.svc && cidrContains(net.svc, host.address)) r.error(`${at}.address`, `${host.address} is inside the service range ${net.network.serviceCIDR}`, "move network.serviceCIDR away from the host network");
        if (net.pod && cidrContains(net.pod, host.address)) r.error(`${at}.address`, `${host.address} is inside the pod range ${net.network.podCIDR}`, "move network.podCIDR away from the host network");
      }
    },
  },
  {
    name: "the apiserver port and the node port range keep clear of the cluster's own ports",
    check: (r, { inv, net }) => {
      const { apiserverPort, nodePortRange } = inv.network;
      const reserved = reservedPorts(inv.hosts);
      const apiClash = reserved.get(apiserverPort);
      if (apiClash) r.error("network.apiserverPort", `${apiserverPort} is the port of ${apiClash}`, "use 6443, the apiserver's usual port");
      const nodePorts = net.nodePorts;
      if (!nodePorts) return;
      const taken = [...reserved, [apiserverPort, "the apiserver"] as [number, string]].filter(([port]) => nodePorts.lo <= port && port <= nodePorts.hi).sort(([a], [b]) => a - b);
      if (taken.length > 0) r.error("network.nodePortRange", `${nodePortRange} contains ${taken.map(([port, what]) => `${port} (${what})`).join(", ")}: kube-proxy would hold those ports on every node`, "keep the node port range clear of the cluster's own ports, e.g. 30000-32767");
    },
  },
  {
    name: "the apiserver endpoint is outside the cluster's own ranges and names",
    check: (r, { inv, net, endpointHost }) => {
      if (endpointHost !== undefined) checkEndpointAddress(r, endpointHost, inv, net);
    },
  },
  {
    name: "several masters without an endpoint have the node-local proxy",
    check: (r, { inv }) => {
      const masters = inv.hosts.filter((h) => h.roles.includes("master"));
      if (inv.apiserver.endpoint !== undefined || masters.length < 2 || inv.apiserver.nodeLocalProxy) return;
      r.warn("apiserver.nodeLocalProxy", `is false with ${masters.length} masters and no endpoint: kubelets, kube-proxy and admin.kubeconfig talk to ${masters[0]!.name} only, so the nodes lose the API whenever it is down`, "remove nodeLocalProxy: false (each node then balances over every master), or put a load balancer or VIP in front of the masters and set apiserver.endpoint to it");
    },
  },
  {
    name: "the node-local proxy's port is free",
    check: (r, { inv, net }) => {
      if (!inv.apiserver.nodeLocalProxy) return;
      const { apiserverPort, nodePortRange } = inv.network;
      if (apiserverPort === NODE_LOCAL_PROXY_PORT) r.error("network.apiserverPort", `${apiserverPort} is the port of the node-local apiserver proxy (127.0.0.1:${NODE_LOCAL_PROXY_PORT} on every node), which is on`, "use 6443, the apiserver's usual port");
      if (net.nodePorts && net.nodePorts.lo <= NODE_LOCAL_PROXY_PORT && NODE_LOCAL_PROXY_PORT <= net.nodePorts.hi) r.error("network.nodePortRange", `${nodePortRange} contains ${NODE_LOCAL_PROXY_PORT}, the port of the node-local apiserver proxy: kube-proxy would hold it on every node`, "keep the node port range clear of the cluster's own ports, e.g. 30000-32767");
    },
  },
  {
    name: "tainted masters leave workloads a node",
    check: (r, { inv }) => {
      const nodes = inv.hosts.filter((h) => h.roles.includes("node"));
      if (inv.kubelet.taintMasters && inv.hosts.length > 0 && nodes.every((h) => h.roles.includes("master")))
        r.error("kubelet.taintMasters", "every node is a master: with the masters tainted NoSchedule, CoreDNS and every workload would have nowhere to run", "add a host with the node role only, or set taintMasters: false");
    },
  },
];

export function checkRules(r: Reader, input: RuleInput): void {
  for (const rule of RULES) rule.check(r, input);
}

/**
 * Where kubelets, kube-proxy and admin.kubeconfig send API traffic must be outside the cluster's
 * own ranges: an address in the pod range goes into one node's cni0, one in the service range (the
 * kubernetes Service, the DNS Service) is only reachable through the kube-proxy rules that need
 * the API first. A name is checked through the inventory's hosts (no DNS lookup here).
 */
function checkEndpointAddress(r: Reader, host: string, inv: Inventory, n: { svc?: Cidr; pod?: Cidr }): void {
  const fix = "point apiserver.endpoint at the load balancer or VIP on the hosts' network (outside network.podCIDR and network.serviceCIDR)";
  if (!isIPv4(host)) {
    if (host === inv.network.clusterDomain || host.endsWith(`.${inv.network.clusterDomain}`)) return r.error("apiserver.endpoint", `${host} is a name inside the cluster domain ${inv.network.clusterDomain}: hosts resolve it only through CoreDNS, which needs the API first`, fix);
  }
  const ip = isIPv4(host) ? host : inv.hosts.find((h) => h.name === host)?.address;
  if (!ip) return;
  const label = ip === host ? ip : `${host} (${ip}, the address of host ${host})`;
  if (n.svc && ip === nthAddress(n.svc, 1)) r.error("apiserver.endpoint", `${label} is the kubernetes Service's ClusterIP (the first address of ${inv.network.serviceCIDR})`, fix);
  else if (ip === inv.network.clusterDNS) r.error("apiserver.endpoint", `${label} is network.clusterDNS, the DNS Service's ClusterIP`, fix);
  else if (n.svc && cidrContains(n.svc, ip)) r.error("apiserver.endpoint", `${label} is inside the service range ${inv.network.serviceCIDR}: only kube-proxy's rules, which need the API, make it reachable`, fix);
  else if (n.pod && cidrContains(n.pod, ip)) r.error("apiserver.endpoint", `${label} is inside the pod range ${inv.network.podCIDR}: API traffic would go into one node's cni0 (a cluster-wide outage)`, fix);
}
