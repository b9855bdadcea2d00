// Parses and validates cluster.yaml into a normalized Inventory. Every mistake in the file is
// reported at once (field, problem, fix) and nothing is written before validation passes.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseDocument } from "yaml";
import { cidrContains, cidrsOverlap, isIPv4, nthAddress, parseCidr } from "../util/ip";
import { Obj, Reader, isObj, join } from "./reader";
import { BinaryUrl, ENGINES, Host, Inventory, InventoryIssue, ROLES, Role, SshSettings } from "./types";

export const DEFAULT_CONFIG = "./cluster.yaml";

export const DEFAULTS = {
  kubernetesVersion: "v1.17.17",
  etcdVersion: "v3.4.3",
  serviceCIDR: "10.0.0.0/24",
  podCIDR: "10.244.0.0/16",
  clusterDNS: "10.0.0.2",
  clusterDomain: "cluster.local",
  nodePortRange: "30000-32767",
  images: {
    pause: "k8s.gcr.io/pause:3.1",
    flannel: "quay.io/coreos/flannel:v0.12.0-amd64",
    coredns: "coredns/coredns:1.6.5",
  },
} as const;

export class InventoryError extends Error {
  constructor(
    readonly file: string,
    readonly issues: InventoryIssue[],
  ) {
    super(formatIssues(file, issues));
    this.name = "InventoryError";
  }
}

export function formatIssues(file: string, issues: InventoryIssue[], kind = "error"): string {
  const lines = issues.map((i) => `  ${kind}: ${i.field}: ${i.message} — fix: ${i.fix}`);
  const head = kind === "error" ? `${file}: ${issues.length} problem${issues.length === 1 ? "" : "s"}, nothing was written:` : `${file}:`;
  return [head, ...lines].join("\n");
}

const TOP = ["cluster", "kubernetes", "etcd", "ssh", "hosts", "network", "binaries", "runtime", "cni", "certificates", "apiserver", "engine", "images", "kubelet", "kubeProxy"] as const;
const SSH_FIELDS = ["user", "port", "privateKey", "knownHosts", "hostKeyFingerprints", "sudo", "bastion"] as const;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);

export interface LoadResult {
  inventory: Inventory;
  warnings: InventoryIssue[];
}

/** Reads the inventory path from BINKUBE_CONFIG (default ./cluster.yaml). */
export function configPathFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.BINKUBE_CONFIG || DEFAULT_CONFIG);
}

export function loadInventory(file: string): LoadResult {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = fs.readFileSync(abs, "utf8");
  } catch (e) {
    throw new InventoryError(abs, [{ field: "(file)", message: `cannot read: ${(e as Error).message}`, fix: "set BINKUBE_CONFIG or --config to an existing cluster.yaml (see examples/)" }]);
  }
  return parseInventory(text, abs);
}

export function parseInventory(text: string, file: string): LoadResult {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => ({ field: `(yaml line ${e.linePos?.[0]?.line ?? "?"})`, message: e.message.split("\n")[0]!, fix: "fix the YAML syntax" }));
    throw new InventoryError(file, issues);
  }
  const raw: unknown = doc.toJS();
  const r = new Reader();
  if (!isObj(raw)) {
    r.error("(top)", "the inventory must be a mapping with at least a hosts: list", "start from examples/guide-two-hosts.yaml");
    throw new InventoryError(file, r.issues);
  }
  const inv = validate(raw, file, r);
  if (r.issues.length > 0) throw new InventoryError(file, r.issues);
  return { inventory: inv, warnings: r.warnings };
}

function expandPath(p: string, baseDir: string): string {
  if (p === "~" || p.startsWith("~/")) return path.join(os.homedir(), p.slice(1));
  return path.resolve(baseDir, p);
}

function checkReadableFile(r: Reader, field: string, file: string, what: string, fix: string): void {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (!fs.statSync(file).isFile()) r.error(field, `${file} is not a file`, fix);
  } catch {
    r.error(field, `${what} ${file} is missing or unreadable`, fix);
  }
}

function readSsh(r: Reader, obj: Obj, p: string, baseDir: string, base?: SshSettings): SshSettings {
  r.known(obj, SSH_FIELDS, p);
  const keyText = r.str(obj, "privateKey", p);
  const khText = r.str(obj, "knownHosts", p);
  const privateKey = keyText !== undefined ? expandPath(keyText, baseDir) : base?.privateKey;
  const knownHosts = khText !== undefined ? expandPath(khText, baseDir) : base?.knownHosts;
  if (keyText !== undefined) {
    checkReadableFile(r, join(p, "privateKey"), privateKey!, "private key", "point privateKey at a readable key file (chmod 600), or remove it to use ssh-agent");
    try {
      const head = fs.readFileSync(privateKey!, "utf8").slice(0, 80);
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(head)) r.error(join(p, "privateKey"), `${privateKey} does not look like a private key`, "use the private half of the key pair (not the .pub file)");
    } catch {
      /* reported above */
    }
  }
  if (khText !== undefined) checkReadableFile(r, join(p, "knownHosts"), knownHosts!, "known_hosts file", "create it with ssh-keyscan after checking the fingerprints, or pin hostKeyFingerprints");
  const fingerprints = obj.hostKeyFingerprints !== undefined ? r.strList(obj, "hostKeyFingerprints", p) : base?.hostKeyFingerprints ?? [];
  fingerprints.forEach((f, i) => {
    if (!/^SHA256:[A-Za-z0-9+/]{43}=?$/.test(f)) r.error(`${join(p, "hostKeyFingerprints")}[${i}]`, `"${f}" is not a SHA256 fingerprint`, "copy it from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` (SHA256:…)");
  });
  let bastion = base?.bastion;
  if (obj.bastion !== undefined) {
    const b = r.section(obj, "bastion", p);
    const bp = join(p, "bastion");
    r.known(b, ["address", "port", "user", "privateKey"], bp);
    const address = r.str(b, "address", bp, "");
    if (!address) r.error(join(bp, "address"), "is required", "set the jump host's address");
    const bkey = r.str(b, "privateKey", bp);
    bastion = { address, port: r.int(b, "port", bp, 22, 1, 65535), user: r.str(b, "user", bp, base?.user ?? "root"), privateKey: bkey ? expandPath(bkey, baseDir) : privateKey };
  }
  const user = r.str(obj, "user", p, base?.user ?? "root");
  if (!/^[a-z_][a-z0-9_-]*[$]?$/.test(user)) r.error(join(p, "user"), `"${user}" is not a valid user name`, "use a POSIX login name such as root or ubuntu");
  return {
    user,
    port: r.int(obj, "port", p, base?.port ?? 22, 1, 65535),
    privateKey,
    knownHosts,
    hostKeyFingerprints: fingerprints,
    // A host that overrides the user gets that user's sudo default, not the inherited one.
    sudo: r.bool(obj, "sudo", p, obj.user === undefined && base ? base.sudo : user !== "root"),
    bastion,
  };
}

function validate(raw: Obj, file: string, r: Reader): Inventory {
  const baseDir = path.dirname(file);
  r.known(raw, TOP, "");

  const cluster = r.section(raw, "cluster", "");
  r.known(cluster, ["name"], "cluster");
  const clusterName = r.str(cluster, "name", "cluster", "kubernetes");
  if (!DNS_LABEL.test(clusterName)) r.error("cluster.name", `"${clusterName}" is not a DNS label`, "use lower-case letters, digits and '-'");

  const k8s = r.section(raw, "kubernetes", "");
  r.known(k8s, ["version"], "kubernetes");
  const kubernetesVersion = r.str(k8s, "version", "kubernetes", DEFAULTS.kubernetesVersion);
  if (!/^v1\.17\.\d+$/.test(kubernetesVersion)) r.error("kubernetes.version", `"${kubernetesVersion}" is not a v1.17 release`, "binkube installs Kubernetes v1.17 only: use e.g. v1.17.17");

  const etcd = r.section(raw, "etcd", "");
  r.known(etcd, ["version"], "etcd");
  const etcdVersion = r.str(etcd, "version", "etcd", DEFAULTS.etcdVersion);
  if (!/^v3\.4\.\d+$/.test(etcdVersion)) r.error("etcd.version", `"${etcdVersion}" is not an etcd v3.4 release`, "Kubernetes v1.17 is validated with etcd v3.4.x: use e.g. v3.4.3");

  const sshDefaults = readSsh(r, r.section(raw, "ssh", ""), "ssh", baseDir);

  // network
  const net = r.section(raw, "network", "");
  r.known(net, ["serviceCIDR", "podCIDR", "clusterDNS", "clusterDomain", "nodePortRange", "apiserverPort", "flannelBackend"], "network");
  const serviceCIDR = r.str(net, "serviceCIDR", "network", DEFAULTS.serviceCIDR);
  const podCIDR = r.str(net, "podCIDR", "network", DEFAULTS.podCIDR);
  const clusterDNS = r.str(net, "clusterDNS", "network", DEFAULTS.clusterDNS);
  const clusterDomain = r.str(net, "clusterDomain", "network", DEFAULTS.clusterDomain);
  const nodePortRange = r.str(net, "nodePortRange", "network", DEFAULTS.nodePortRange);
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
  if (!DNS_NAME.test(clusterDomain)) r.error("network.clusterDomain", `"${clusterDomain}" is not a DNS domain`, "use e.g. cluster.local");
  const np = /^(\d+)-(\d+)$/.exec(nodePortRange);
  if (!np || Number(np[1]) >= Number(np[2]) || Number(np[2]) > 65535 || Number(np[1]) < 1) r.error("network.nodePortRange", `"${nodePortRange}" is not a port range`, "write it like 30000-32767");
  else if (Number(np[1]) <= apiserverPort && apiserverPort <= Number(np[2])) r.error("network.nodePortRange", `${nodePortRange} contains the apiserver port ${apiserverPort}`, "keep the node port range clear of 6443, e.g. 30000-32767");

  // hosts
  const hostsRaw = r.list(raw, "hosts", "");
  if (raw.hosts === undefined) r.error("hosts", "is required", "list the machines: - name: …, address: …, roles: [etcd, master, node]");
  const hosts: Host[] = [];
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
    if (!address) r.error(`${p}.address`, "is required", "set the host's IPv4 address");
    else if (!isIPv4(address)) r.error(`${p}.address`, `"${address}" is not an IPv4 address`, "write a dotted quad such as 192.168.0.4 (host names are not supported: certificates need the IP)");
    else if (byAddress.has(address)) r.error(`${p}.address`, `duplicate address ${address} (also hosts[${byAddress.get(address)}])`, "every host needs its own address");
    else {
      byAddress.set(address, i);
      if (svc && cidrContains(svc, address)) r.error(`${p}.address`, `${address} is inside the service range ${serviceCIDR}`, "move network.serviceCIDR away from the host network");
      if (pod && cidrContains(pod, address)) r.error(`${p}.address`, `${address} is inside the pod range ${podCIDR}`, "move network.podCIDR away from the host network");
    }
    const roles: Role[] = [];
    if (h.roles === undefined) r.error(`${p}.roles`, "is required", "list at least one of: etcd, master, node");
    r.strList(h, "roles", p).forEach((role, j) => {
      if (!(ROLES as readonly string[]).includes(role)) r.error(`${p}.roles[${j}]`, `unknown role "${role}"`, `use etcd, master or node`);
      else if (roles.includes(role as Role)) r.error(`${p}.roles[${j}]`, `role "${role}" listed twice`, "list each role once");
      else roles.push(role as Role);
    });
    if (h.roles !== undefined && Array.isArray(h.roles) && h.roles.length === 0) r.error(`${p}.roles`, "is empty", "list at least one of: etcd, master, node");
    const ssh = h.ssh === undefined ? sshDefaults : readSsh(r, r.section(h, "ssh", p), `${p}.ssh`, baseDir, sshDefaults);
    const labels = r.strMap(h, "labels", p);
    hosts.push({ name, address, roles, ssh, labels });
  });
  if (raw.hosts !== undefined && hostsRaw.length === 0) r.error("hosts", "is empty", "list at least one host");
  if (hostsRaw.length > 0) {
    const count = (role: Role) => hosts.filter((h) => h.roles.includes(role)).length;
    if (count("etcd") === 0) r.error("hosts", "no host has the etcd role", "add etcd to the roles of 1, 3 or 5 hosts");
    if (count("master") === 0) r.error("hosts", "no host has the master role", "add master to the roles of at least one host");
    if (count("node") === 0) r.error("hosts", "no host has the node role", "add node to the roles of at least one host (a master can also be a node)");
    const etcdCount = count("etcd");
    if (etcdCount > 0 && etcdCount % 2 === 0) r.warn("hosts", `${etcdCount} etcd members tolerate ${(etcdCount - 2) / 2} failure(s), no more than ${etcdCount - 1} would`, `use an odd number of etcd members (${etcdCount - 1} or ${etcdCount + 1})`);
  }
  for (const h of hosts) {
    if (!h.ssh.knownHosts && h.ssh.hostKeyFingerprints.length === 0) h.ssh.knownHosts = path.join(os.homedir(), ".ssh", "known_hosts");
  }

  // binaries
  const bin = r.section(raw, "binaries", "");
  r.known(bin, ["dir", "urls", "cacheDir"], "binaries");
  const dirText = r.str(bin, "dir", "binaries");
  const urls: BinaryUrl[] = [];
  r.list(bin, "urls", "binaries").forEach((u, i) => {
    const p = `binaries.urls[${i}]`;
    if (!isObj(u)) return r.error(p, "must be a mapping with url and sha256 or sha512", "write - url: https://…  sha256: …");
    r.known(u, ["url", "sha256", "sha512", "files", "name"], p);
    const url = r.str(u, "url", p, "");
    const sha256 = r.str(u, "sha256", p)?.toLowerCase();
    const sha512 = r.str(u, "sha512", p)?.toLowerCase();
    if (!/^https?:\/\/[^\s/]+\/\S+$/.test(url)) r.error(`${p}.url`, `"${url}" is not an http(s) URL`, "write the full download URL");
    if (!sha256 && !sha512) r.error(p, "has no checksum", "add sha256: or sha512: with the published checksum (downloads are verified before any upload)");
    if (sha256 && !HEX(64).test(sha256)) r.error(`${p}.sha256`, "is not 64 hex digits", "copy the published sha256");
    if (sha512 && !HEX(128).test(sha512)) r.error(`${p}.sha512`, "is not 128 hex digits", "copy the published sha512");
    const files = u.files === undefined ? undefined : r.strMap(u, "files", p);
    const name = r.str(u, "name", p);
    if (!files && !name) r.error(p, "says neither which binary it is (name:) nor which archive members to take (files:)", "add name: etcd, or files: {kube-apiserver: kubernetes/server/bin/kube-apiserver}");
    urls.push({ url, sha256, sha512, files, name });
  });
  if (!dirText && urls.length === 0) r.error("binaries", "no binary source", "set binaries.dir to a directory holding etcd, kube-apiserver, … or list binaries.urls with checksums");
  const cacheDir = expandPath(r.str(bin, "cacheDir", "binaries", path.join(os.homedir(), ".cache", "binkube")), baseDir);

  const runtime = r.oneOf(raw, "runtime", "", ["docker"] as const, "docker");
  const cni = r.oneOf(raw, "cni", "", ["flannel"] as const, "flannel");
  const engine = r.oneOf(raw, "engine", "", ENGINES, "terraform_data");

  const certs = r.section(raw, "certificates", "");
  r.known(certs, ["validityDays", "caValidityDays", "kubeletValidityDays"], "certificates");
  const validityDays = r.int(certs, "validityDays", "certificates", 365, 1, 3650);
  const caValidityDays = r.int(certs, "caValidityDays", "certificates", 3650, 30, 36500);
  const kubeletValidityDays = r.int(certs, "kubeletValidityDays", "certificates", 365, 1, 3650);
  if (caValidityDays < validityDays) r.error("certificates.caValidityDays", `the CAs (${caValidityDays} d) would expire before the certificates they sign (${validityDays} d)`, "make caValidityDays at least validityDays");

  const api = r.section(raw, "apiserver", "");
  r.known(api, ["extraSANs", "endpoint"], "apiserver");
  const extraSANs = r.strList(api, "extraSANs", "apiserver");
  extraSANs.forEach((san, i) => {
    if (!isIPv4(san) && !DNS_NAME.test(san) && !/^\*\.[a-z0-9.-]+$/.test(san)) r.error(`apiserver.extraSANs[${i}]`, `"${san}" is neither an IPv4 address nor a DNS name`, "use e.g. 10.0.0.100 or k8s.example.com");
  });
  const endpoint = r.str(api, "endpoint", "apiserver");
  if (endpoint !== undefined) {
    const m = /^https:\/\/([^/:]+):(\d+)$/.exec(endpoint);
    if (!m) r.error("apiserver.endpoint", `"${endpoint}" is not https://HOST:PORT`, "write it like https://10.0.0.100:6443 (the load balancer or VIP)");
    else if (!isIPv4(m[1]!) && !DNS_NAME.test(m[1]!)) r.error("apiserver.endpoint", `"${m[1]}" is not an address or DNS name`, "use the VIP's IP or DNS name");
  }
  const masters = hosts.filter((h) => h.roles.includes("master"));
  if (endpoint === undefined && masters.length > 1) {
    r.warn("apiserver.endpoint", `${masters.length} masters but no endpoint: kubelets, kube-proxy and admin.kubeconfig talk to ${masters[0]!.name} only, so the nodes lose the API whenever it is down`, "put a load balancer or VIP in front of the masters and set apiserver.endpoint to it");
  }

  const img = r.section(raw, "images", "");
  r.known(img, ["pause", "flannel", "coredns", "preload"], "images");
  const preload = r.strList(img, "preload", "images").map((p) => expandPath(p, baseDir));
  preload.forEach((p, i) => checkReadableFile(r, `images.preload[${i}]`, p, "image archive", "create it with `docker save IMAGE -o FILE`"));

  const kl = r.section(raw, "kubelet", "");
  r.known(kl, ["extraArgs", "failSwapOn"], "kubelet");
  const extraArgs = r.strMap(kl, "extraArgs", "kubelet");
  for (const k of Object.keys(extraArgs)) if (!/^[a-z][a-z0-9-]*$/.test(k)) r.error(`kubelet.extraArgs.${k}`, "is not a flag name", "write the flag without leading dashes, e.g. node-ip: 10.0.0.5");

  const kp = r.section(raw, "kubeProxy", "");
  r.known(kp, ["conntrackMaxPerCore"], "kubeProxy");
  const conntrackMaxPerCore = r.int(kp, "conntrackMaxPerCore", "kubeProxy", 32768, 0, 1 << 24);

  return {
    file,
    baseDir,
    pkiDir: path.join(baseDir, "pki"),
    clusterName,
    kubernetesVersion,
    etcdVersion,
    hosts,
    network: {
      serviceCIDR,
      podCIDR,
      clusterDNS,
      clusterDomain,
      nodePortRange,
      kubernetesServiceIP: svc ? nthAddress(svc, 1) : "",
      apiserverPort,
      flannelBackend,
    },
    binaries: { dir: dirText ? expandPath(dirText, baseDir) : undefined, urls, cacheDir },
    runtime,
    cni,
    certificates: { validityDays, caValidityDays, kubeletValidityDays },
    apiserver: { extraSANs, endpoint },
    engine,
    images: {
      pause: r.str(img, "pause", "images", DEFAULTS.images.pause),
      flannel: r.str(img, "flannel", "images", DEFAULTS.images.flannel),
      coredns: r.str(img, "coredns", "images", DEFAULTS.images.coredns),
      preload,
    },
    kubeProxy: { conntrackMaxPerCore },
    kubelet: { extraArgs, failSwapOn: r.bool(kl, "failSwapOn", "kubelet", true) },
  };
}
