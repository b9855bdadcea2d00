// apiserver: extra certificate names, an optional endpoint (load balancer or VIP), anonymous
// access, and the node-local proxy (its default depends on the masters: resolved here). The
// endpoint's and the proxy port's clashes with the cluster's ranges and ports: rules.ts.
import { dnsName, hostAddress, sanName, shown, urlCredential } from "../grammar";
import type { Obj, Reader } from "../reader";
import type { Host, Inventory } from "../types";
import { isIPv4 } from "../../util/ip";

export function readApiserver(r: Reader, raw: Obj, hosts: Host[]): Inventory["apiserver"] & { endpointHost?: string } {
  const api = r.section(raw, "apiserver", "");
  r.known(api, ["extraSANs", "endpoint", "anonymousAuth", "nodeLocalProxy"], "apiserver");
  const extraSANs = r.strList(api, "extraSANs", "apiserver");
  extraSANs.forEach((san, i) => {
    const bad = sanName(san);
    if (bad) r.error(`apiserver.extraSANs[${i}]`, `"${san}" is neither an IPv4 address nor a DNS name: it ${bad}`, "use e.g. 10.0.0.100, k8s.example.com or *.k8s.example.com");
  });
  const endpoint = r.str(api, "endpoint", "apiserver");
  let endpointHost: string | undefined;
  if (endpoint !== undefined) {
    const m = /^https:\/\/([^/:]+):(\d+)$/.exec(endpoint);
    if (!m) r.error("apiserver.endpoint", `"${shown(endpoint)}" is not https://HOST:PORT${urlCredential(endpoint) ? " (and carries a credential: clients authenticate with their certificates)" : ""}`, "write it like https://10.0.0.100:6443 (the load balancer or VIP)");
    else if (isIPv4(m[1]!) ? hostAddress(m[1]!) : dnsName(m[1]!)) r.error("apiserver.endpoint", `"${m[1]}" ${isIPv4(m[1]!) ? hostAddress(m[1]!) : `is not an address or DNS name: it ${dnsName(m[1]!)}`}`, "use the VIP's IP or DNS name");
    else if (Number(m[2]) < 1 || Number(m[2]) > 65535) r.error("apiserver.endpoint", `port ${m[2]} is outside 1-65535`, "use the load balancer's port, usually 6443");
    else endpointHost = m[1]!;
  }
  const masters = hosts.filter((h) => h.roles.includes("master"));
  // Several masters and nothing in front of them: each node balances over them itself.
  const nodeLocalProxy = api.nodeLocalProxy === undefined ? endpoint === undefined && masters.length > 1 : r.bool(api, "nodeLocalProxy", "apiserver", false);
  return { extraSANs, endpoint, anonymousAuth: r.bool(api, "anonymousAuth", "apiserver", true), nodeLocalProxy, endpointHost };
}
