// kubeconfig files with the CA and credentials embedded, as `kubectl config set-* --embed-certs`
// would write them.
import { Inventory, hostsWithRole } from "../inventory/types";
import { Pki, leaf } from "./store";

const b64 = (s: string) => Buffer.from(s).toString("base64");

export type Credentials = { certPem: string; keyPem: string } | { token: string };

export function kubeconfig(clusterName: string, server: string, caPem: string, user: string, creds: Credentials): string {
  const userLines =
    "token" in creds
      ? [`    token: ${creds.token}`]
      : [`    client-certificate-data: ${b64(creds.certPem)}`, `    client-key-data: ${b64(creds.keyPem)}`];
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: ${clusterName}`,
    "  cluster:",
    `    certificate-authority-data: ${b64(caPem)}`,
    `    server: ${server}`,
    "users:",
    `- name: ${user}`,
    "  user:",
    ...userLines,
    "contexts:",
    `- name: ${user}@${clusterName}`,
    "  context:",
    `    cluster: ${clusterName}`,
    `    user: ${user}`,
    `current-context: ${user}@${clusterName}`,
    "",
  ].join("\n");
}

/** The apiserver URL that clients outside the masters use: the external endpoint, else the first master. */
export function apiserverURL(inv: Inventory): string {
  if (inv.apiserver.endpoint) return inv.apiserver.endpoint;
  const first = hostsWithRole(inv, "master")[0];
  return `https://${first?.address ?? "127.0.0.1"}:${inv.network.apiserverPort}`;
}

export function certKubeconfig(inv: Inventory, pki: Pki, certName: string, user: string, server = apiserverURL(inv)): string {
  const l = leaf(pki, certName);
  return kubeconfig(inv.clusterName, server, pki.cas.ca.certPem, user, { certPem: l.certPem, keyPem: l.keyPem });
}

/** The kubelet's bootstrap kubeconfig with a bootstrap token ("<id>.<secret>", made per join). */
export function bootstrapKubeconfig(inv: Inventory, caPem: string, token: string): string {
  return kubeconfig(inv.clusterName, apiserverURL(inv), caPem, "kubelet-bootstrap", { token });
}
