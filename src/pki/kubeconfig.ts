// kubeconfig files with the CA and credentials embedded, as `kubectl config set-* --embed-certs`
// would write them.
import { Inventory, NODE_LOCAL_PROXY_PORT, hostsWithRole } from "../inventory/types";
import type { Pki } from "./load";
import { encodedRef, leafRef } from "./refs";

/** base64 of a PEM, or of a leaf reference (refs.ts): the same reference, resolved to base64. */
const b64 = (s: string) => encodedRef(s, "base64") ?? Buffer.from(s).toString("base64");

export type Credentials = { certPem: string; keyPem: string } | { token: string };

/** One more way to reach the cluster in a kubeconfig: a context of its own on a cluster entry of its own. */
export interface ExtraContext {
  /** The context's name (and its cluster entry's). */
  name: string;
  server: string;
}

export function kubeconfig(clusterName: string, server: string, caPem: string, user: string, creds: Credentials, extra: ExtraContext[] = []): string {
  const userLines =
    "token" in creds
      ? [`    token: ${creds.token}`]
      : [`    client-certificate-data: ${b64(creds.certPem)}`, `    client-key-data: ${b64(creds.keyPem)}`];
  const clusters = [{ name: clusterName, server }, ...extra];
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    ...clusters.flatMap((c) => [`- name: ${c.name}`, "  cluster:", `    certificate-authority-data: ${b64(caPem)}`, `    server: ${c.server}`]),
    "users:",
    `- name: ${user}`,
    "  user:",
    ...userLines,
    "contexts:",
    `- name: ${user}@${clusterName}`,
    "  context:",
    `    cluster: ${clusterName}`,
    `    user: ${user}`,
    ...extra.flatMap((c) => [`- name: ${c.name}`, "  context:", `    cluster: ${c.name}`, `    user: ${user}`]),
    `current-context: ${user}@${clusterName}`,
    "",
  ].join("\n");
}

/** A master's own apiserver. */
export function masterURL(inv: Inventory, address: string): string {
  return `https://${address}:${inv.network.apiserverPort}`;
}

/** The apiserver URL that clients outside the cluster's hosts use: the external endpoint, else the first master. */
export function apiserverURL(inv: Inventory): string {
  if (inv.apiserver.endpoint) return inv.apiserver.endpoint;
  return masterURL(inv, hostsWithRole(inv, "master")[0]?.address ?? "127.0.0.1");
}

/**
 * The apiserver URL of the kubelets, kube-proxy and the bootstrap kubeconfig: the node-local proxy
 * on loopback when it is on (every master behind it; the apiserver certificate names 127.0.0.1),
 * else what clients outside use.
 */
export function nodeApiserverURL(inv: Inventory): string {
  return inv.apiserver.nodeLocalProxy ? `https://127.0.0.1:${NODE_LOCAL_PROXY_PORT}` : apiserverURL(inv);
}

/**
 * nodeApiserverURL as the host and port in-cluster clients take from KUBERNETES_SERVICE_HOST and
 * _PORT (client-go's rest.InClusterConfig): the pod network's DaemonSets reach the apiserver as
 * the node's agents do, not through the kubernetes Service, which needs kube-proxy's rules first.
 */
export function nodeApiserverHostPort(inv: Inventory): { host: string; port: string } {
  const url = new URL(nodeApiserverURL(inv));
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port || "443" };
}

export function certKubeconfig(inv: Inventory, pki: Pki, certName: string, user: string, server: string): string {
  const l = leafRef(certName);
  return kubeconfig(inv.clusterName, server, pki.cas.ca.certPem, user, { certPem: l.certPem, keyPem: l.keyPem });
}

/**
 * The operator's admin.kubeconfig: the default context as apiserverURL says, and with several
 * masters one context per master, named `via-<host>`, so kubectl still reaches the cluster when
 * the first master (or the load balancer) is down: `kubectl --context via-lab2 …`.
 */
export function adminKubeconfig(inv: Inventory, pki: Pki): string {
  const masters = hostsWithRole(inv, "master");
  const extra = masters.length > 1 ? masters.map((h) => ({ name: `via-${h.name}`, server: masterURL(inv, h.address) })) : [];
  const l = leafRef("admin");
  return kubeconfig(inv.clusterName, apiserverURL(inv), pki.cas.ca.certPem, "admin", { certPem: l.certPem, keyPem: l.keyPem }, extra);
}

/** The kubelet's bootstrap kubeconfig with a bootstrap token ("<id>.<secret>", made per join). */
export function bootstrapKubeconfig(inv: Inventory, caPem: string, token: string): string {
  return kubeconfig(inv.clusterName, nodeApiserverURL(inv), caPem, "kubelet-bootstrap", { token });
}
