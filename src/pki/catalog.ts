// Which certificates a cluster needs, derived from the inventory alone. A node's kubelet client
// certificate comes from TLS bootstrap; its serving certificate is issued here, so the apiserver
// can verify the kubelet it talks to.
import { Host, Inventory, hostsWithRole, kubeletHosts } from "../inventory/types";
import { Subject, Usage } from "./x509";

export type CaName = "ca" | "etcd-ca" | "front-proxy-ca";

export interface CaSpec {
  name: CaName;
  cn: string;
  purpose: string;
}

export interface LeafSpec {
  name: string;
  ca: CaName;
  subject: Subject;
  usages: Usage[];
  dnsNames: string[];
  ips: string[];
  purpose: string;
  /**
   * When both are issued together, this leaf takes that leaf's key. Only for an etcd member's peer
   * and serving certificates: one host, one directory, one owner, the same subject, SANs and
   * usages, so either certificate already stands for the other and separate keys isolate nothing.
   */
  keyWith?: string;
}

export const CAS: CaSpec[] = [
  { name: "ca", cn: "kubernetes-ca", purpose: "Kubernetes cluster CA (API clients, kubelet certificates)" },
  { name: "etcd-ca", cn: "etcd-ca", purpose: "etcd CA (members, peers, etcd clients)" },
  { name: "front-proxy-ca", cn: "front-proxy-ca", purpose: "aggregation layer (front proxy) CA" },
];

/** The apiserver's SANs: every name and address a client may dial. */
export function apiserverSANs(inv: Inventory): string[] {
  const d = inv.network.clusterDomain;
  const names = [
    inv.network.kubernetesServiceIP,
    "127.0.0.1",
    ...hostsWithRole(inv, "master").flatMap((h) => [h.address, h.name]),
    ...endpointHost(inv),
    ...inv.apiserver.extraSANs,
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    `kubernetes.default.svc.${d}`,
    "localhost",
  ];
  return [...new Set(names)];
}

function endpointHost(inv: Inventory): string[] {
  const m = inv.apiserver.endpoint ? /^https:\/\/([^/:]+):\d+$/.exec(inv.apiserver.endpoint) : null;
  return m ? [m[1]!] : [];
}

function etcdMemberNames(h: Host): string[] {
  return [h.name, "localhost", h.address, "127.0.0.1"];
}

function leaf(name: string, ca: CaName, cn: string, o: string[], usages: Usage[], sans: string[], purpose: string): LeafSpec {
  const { dnsNames, ips } = splitNames(sans);
  return { name, ca, subject: { cn, o }, usages, dnsNames, ips, purpose };
}

function splitNames(names: string[]): { dnsNames: string[]; ips: string[] } {
  const ip = /^\d+\.\d+\.\d+\.\d+$/;
  return { dnsNames: names.filter((n) => !ip.test(n)), ips: names.filter((n) => ip.test(n)) };
}

export function etcdServerCert(host: Host): string {
  return `etcd-server-${host.name}`;
}
export function etcdPeerCert(host: Host): string {
  return `etcd-peer-${host.name}`;
}

export function kubeletServerCert(host: Host): string {
  return `kubelet-server-${host.name}`;
}

export function apiserverProxyCert(host: Host): string {
  return `apiserver-proxy-${host.name}`;
}

/**
 * The identity a node's apiserver proxy health-checks the apiservers with: a user of its own per
 * host, in no group. The apiserver refuses nothing it needs: /readyz and /healthz are readable by
 * every authenticated user (the default system:public-info-viewer ClusterRole, bound to
 * system:authenticated and system:unauthenticated since v1.14), and it may do nothing else.
 */
export function apiserverProxyUser(host: Host): string {
  return `system:binkube:apiserver-proxy:${host.name}`;
}

export function leafSpecs(inv: Inventory): LeafSpec[] {
  const specs: LeafSpec[] = [
    leaf("apiserver", "ca", "kube-apiserver", [], ["server"], apiserverSANs(inv), "kube-apiserver serving certificate"),
    leaf("apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client", [], ["client"], [], "kube-apiserver → kubelet (logs, exec, port-forward)"),
    leaf("apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client", [], ["client"], [], "kube-apiserver → etcd"),
    leaf("front-proxy-client", "front-proxy-ca", "front-proxy-client", [], ["client"], [], "kube-apiserver → aggregated API servers"),
    leaf("admin", "ca", "admin", ["system:masters"], ["client"], [], "cluster administrator (admin.kubeconfig)"),
    leaf("kube-controller-manager", "ca", "system:kube-controller-manager", [], ["client"], [], "kube-controller-manager → kube-apiserver"),
    leaf("kube-scheduler", "ca", "system:kube-scheduler", [], ["client"], [], "kube-scheduler → kube-apiserver"),
    leaf("kube-proxy", "ca", "system:kube-proxy", [], ["client"], [], "kube-proxy → kube-apiserver"),
    leaf("etcd-healthcheck-client", "etcd-ca", "kube-etcd-healthcheck-client", [], ["client"], [], "health checks and etcdctl"),
  ];
  // Its APIService names this CA in caBundle, so the apiserver verifies it (upstream's manifest
  // skips TLS verification instead).
  if (inv.addons.metricsServer) specs.push(leaf("metrics-server", "ca", "metrics-server", [], ["server"], ["metrics-server.kube-system.svc", "metrics-server.kube-system", "metrics-server"], "metrics-server serving certificate (its APIService's caBundle)"));
  for (const h of hostsWithRole(inv, "etcd")) {
    specs.push(leaf(etcdServerCert(h), "etcd-ca", h.name, [], ["server", "client"], etcdMemberNames(h), `etcd member ${h.name}: client-facing serving certificate`));
    specs.push({ ...leaf(etcdPeerCert(h), "etcd-ca", h.name, [], ["server", "client"], etcdMemberNames(h), `etcd member ${h.name}: peer certificate`), keyWith: etcdServerCert(h) });
  }
  for (const h of kubeletHosts(inv)) {
    specs.push(leaf(kubeletServerCert(h), "ca", `system:node:${h.name}`, ["system:nodes"], ["server"], [h.name, h.address], `kubelet on ${h.name}: serving certificate (logs, exec, metrics)`));
    if (inv.apiserver.nodeLocalProxy) specs.push(leaf(apiserverProxyCert(h), "ca", apiserverProxyUser(h), [], ["client"], [], `apiserver proxy on ${h.name}: health checks of every apiserver (/readyz)`));
  }
  return specs;
}
