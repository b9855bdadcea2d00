// hosts: each machine's name, address, roles, labels and ssh; then what the list as a whole needs
// (every role present, an odd etcd count). Addresses against the cluster's ranges: rules.ts.
import * as os from "node:os";
import * as path from "node:path";
import { hostAddress, kubeletLabel, labelKey, labelValue, DNS_LABEL } from "../grammar";
import { Obj, Reader, isObj, join } from "../reader";
import { Host, ROLES, Role, SshSettings } from "../types";
import { isIPv4 } from "../../util/ip";
import { LocalFile, fits } from "./common";
import { readSsh } from "./ssh";

/** A host and where it is in the file; `addressOk`: a well-formed address no other host has (the rules check those). */
export interface HostEntry {
  host: Host;
  at: string;
  addressOk: boolean;
}

export function readHosts(r: Reader, raw: Obj, sshDefaults: SshSettings, baseDir: string, files: LocalFile[]): HostEntry[] {
  const hostsRaw = r.list(raw, "hosts", "");
  if (raw.hosts === undefined) r.error("hosts", "is required", "list the machines: - name: …, address: …, roles: [etcd, master, node]");
  const entries: HostEntry[] = [];
  const byName = new Map<string, number>();
  const byAddress = new Map<string, number>();
  hostsRaw.forEach((h, i) => {
    const p = `hosts[${i}]`;
    if (!isObj(h)) {
      r.error(p, "must be a mapping with name, address and roles", "write - name: k8s-master");
      return;
    }
    r.known(h, ["name", "address", "roles", "ssh", "labels"], p);
    const name = r.str(h, "name", p, "");
    const address = r.str(h, "address", p, "");
    if (!name) r.error(`${p}.name`, "is required", "give every host a unique name (it becomes the Kubernetes node name)");
    else if (!DNS_LABEL.test(name)) r.error(`${p}.name`, `"${name}" is not a valid node name`, "use lower-case letters, digits and '-' (RFC 1123 label)");
    else if (byName.has(name)) r.error(`${p}.name`, `duplicate host name "${name}" (also hosts[${byName.get(name)}])`, "host names must be unique");
    else byName.set(name, i);
    let addressOk = false;
    if (!address) r.error(`${p}.address`, "is required", "set the host's IPv4 address");
    else if (!isIPv4(address)) r.error(`${p}.address`, `"${address}" is not an IPv4 address`, "write a dotted quad such as 192.168.0.4 (host names are not supported: certificates need the IP)");
    else if (hostAddress(address)) r.error(`${p}.address`, `${address} ${hostAddress(address)}`, "use the address the host has on the network the other hosts reach it by");
    else if (byAddress.has(address)) r.error(`${p}.address`, `duplicate address ${address} (also hosts[${byAddress.get(address)}])`, "every host needs its own address");
    else {
      byAddress.set(address, i);
      addressOk = true;
    }
    const roles: Role[] = [];
    if (h.roles === undefined) r.error(`${p}.roles`, "is required", "list at least one of: etcd, master, node");
    r.strList(h, "roles", p).forEach((role, j) => {
      if (!(ROLES as readonly string[]).includes(role)) r.error(`${p}.roles[${j}]`, `unknown role "${role}"`, `use etcd, master or node`);
      else if (roles.includes(role as Role)) r.error(`${p}.roles[${j}]`, `role "${role}" listed twice`, "list each role once");
      else roles.push(role as Role);
    });
    if (h.roles !== undefined && Array.isArray(h.roles) && h.roles.length === 0) r.error(`${p}.roles`, "is empty", "list at least one of: etcd, master, node");
    const ssh = h.ssh === undefined ? sshDefaults : readSsh(r, r.section(h, "ssh", p), `${p}.ssh`, baseDir, files, sshDefaults);
    const labels = r.strMap(h, "labels", p);
    for (const [k, v] of Object.entries(labels)) {
      const lp = join(`${p}.labels`, k);
      if (fits(r, lp, k, labelKey, "a label key is [prefix/]name: a DNS subdomain, '/', and 1-63 letters, digits, '-', '_', '.'")) {
        fits(r, lp, k, kubeletLabel, "drop it; node roles and other reserved labels are set through the API (kubectl label node …), not by the kubelet");
      }
      fits(r, lp, v, labelValue, "a label value is at most 63 letters, digits and inner '-', '_', '.' (no spaces)");
    }
    if (address.startsWith("169.254.")) r.warn(`${p}.address`, `${address} is link-local: it may change on reboot and is not routed`, "use the host's address on its real network, unless this link-local network is deliberate");
    entries.push({ host: { name, address, roles, ssh, labels }, at: p, addressOk });
  });
  if (raw.hosts !== undefined && hostsRaw.length === 0) r.error("hosts", "is empty", "list at least one host");
  const hosts = entries.map((e) => e.host);
  if (hostsRaw.length > 0) {
    const count = (role: Role) => hosts.filter((h) => h.roles.includes(role)).length;
    if (count("etcd") === 0) r.error("hosts", "no host has the etcd role", "add etcd to the roles of 1, 3 or 5 hosts");
    if (count("master") === 0) r.error("hosts", "no host has the master role", "add master to the roles of at least one host");
    if (count("node") === 0) r.error("hosts", "no host has the node role", "add node to the roles of at least one host (a master can also be a node)");
    const etcdCount = count("etcd");
    if (etcdCount > 0 && etcdCount % 2 === 0) r.warn("hosts", `${etcdCount} etcd members tolerate ${(etcdCount - 2) / 2} failure(s), no more than ${etcdCount - 1} would`, `use an odd number of etcd members (${etcdCount - 1} or ${etcdCount + 1})`);
  }
  // no known_hosts and no pinned keys: the operator's own known_hosts, as ssh does
  for (const h of hosts) {
    if (!h.ssh.knownHosts && h.ssh.hostKeyFingerprints.length === 0) h.ssh.knownHosts = path.join(os.homedir(), ".ssh", "known_hosts");
  }
  return entries;
}
