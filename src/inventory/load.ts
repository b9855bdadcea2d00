// Parses and validates cluster.yaml into a normalized Inventory. Every mistake in the file is
// reported at once (field, problem, fix) and nothing is written before validation passes.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isNode, parseDocument, visit } from "yaml";
import { Cidr, cidrContains, cidrsOverlap, isIPv4, nthAddress, parseCidr } from "../util/ip";
import { Check, archiveMember, calendarEvent, binaryName, dnsName, fileName, flagName, hostAddress, imageRef, kubeletLabel, labelKey, labelValue, noInvisible, sanName, shown, urlCredential, downloadAuthVar, visible, DNS_LABEL } from "./grammar";
import { Obj, Reader, isObj, join } from "./reader";
import { MAX_DEPTH, MAX_FILE, MAX_VALUE, bombLine, sources, tooDeep } from "./yaml-source";
import { FlagPolicy, KUBELET_WEAKENING, checkExtraArgs } from "./extra-args";
import { KUBELET_FLAGS } from "./kubelet-flags";
import { kubeletWrites } from "../steps/kubelet-files";
import { dockerArchive, elfX64, forbiddenDirs, placed, shipRoots } from "./placed";
import { BINARIES } from "../binaries/catalog";
import { BinaryUrl, ENGINES, Host, Inventory, InventoryIssue, NODE_LOCAL_PROXY_PORT, ROLES, Role, SshSettings } from "./types";

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
    // v0.4.4: the metrics-server for 1.17 that the module proxy serves (0.3.x is refused; 0.4.x
    // supports Kubernetes 1.8+, same metrics.k8s.io/v1beta1 API)
    metricsServer: "k8s.gcr.io/metrics-server/metrics-server:v0.4.4",
    // v1.3.2: the newest v1 release the module proxy serves (v1.0–v1.2 are refused, v2.1.0 has
    // reported security flaws); NetworkPolicy networking.k8s.io/v1 as v1.17 serves it
    kubeRouter: "cloudnativelabs/kube-router:v1.3.2",
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
  const lines = issues.map((i) => `  ${kind}: ${i.line ? `line ${i.line}: ` : ""}${i.field}: ${i.message} — fix: ${i.fix}`);
  const head = kind === "error" ? `${file}: ${issues.length} problem${issues.length === 1 ? "" : "s"}, nothing was written:` : `${file}:`;
  return [head, ...lines].join("\n");
}

const TOP = ["cluster", "kubernetes", "etcd", "ssh", "hosts", "network", "binaries", "runtime", "cni", "certificates", "apiserver", "engine", "images", "kubelet", "kubeProxy", "rolling", "state", "addons"] as const;
const SSH_FIELDS = ["user", "port", "privateKey", "knownHosts", "hostKeyFingerprints", "sudo", "bastion"] as const;
/** The last v1.17 patch release (v1.17.17, 2021-01-13): a later "v1.17.N" was never published. */
const LAST_1_17_PATCH = 17;
/** Aliases a document may expand: enough for shared ssh settings, far too few for an alias bomb. */
const MAX_ALIASES = 100;
/** kubelet.extraArgs: v1.17's flags, what binkube writes (rendered), what weakens the kubelet. */
const KUBELET_POLICY: FlagPolicy = {
  component: "kubelet",
  known: KUBELET_FLAGS,
  get writes() {
    return kubeletWrites();
  },
  weakening: KUBELET_WEAKENING,
  // the guide's starting values, sized per cluster
  tunable: ["max-pods", "eviction-hard"],
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
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(abs);
  } catch (e) {
    throw new InventoryError(abs, [{ field: "(file)", message: `cannot read: ${(e as Error).message}`, fix: "set BINKUBE_CONFIG or --config to an existing cluster.yaml (see examples/)" }]);
  }
  return parseInventory(decodeUtf8(bytes, abs), abs);
}

/** The inventory is UTF-8, nothing else: a UTF-16 file or stray Latin-1 bytes are named, not guessed at. */
function decodeUtf8(bytes: Buffer, file: string): string {
  const fail = (message: string, fix: string) => new InventoryError(file, [{ field: "(file)", message, fix }]);
  const utf16 = (bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes.length > 1 && (bytes[0] === 0 || bytes[1] === 0));
  if (utf16) throw fail("is UTF-16 (or UTF-32) encoded; binkube reads UTF-8 only", `convert it: iconv -f UTF-16 -t UTF-8 ${path.basename(file)} > cluster.utf8.yaml`);
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const line = bytes.subarray(0, at).toString("latin1").split("\n").length;
    throw fail(`is not valid UTF-8 (byte 0x${bytes[at]?.toString(16)} at line ${line}, offset ${at}); binkube reads UTF-8 only`, "save the file as UTF-8 (e.g. iconv -f LATIN1 -t UTF-8), or remove the non-ASCII byte");
  }
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i]!;
    const len = b < 0x80 ? 1 : b >= 0xc2 && b <= 0xdf ? 2 : b >= 0xe0 && b <= 0xef ? 3 : b >= 0xf0 && b <= 0xf4 ? 4 : 0;
    if (len === 0) return i;
    for (let k = 1; k < len; k++) if (i + k >= bytes.length || (bytes[i + k]! & 0xc0) !== 0x80) return i;
    i += len;
  }
  return bytes.length - 1;
}

export function parseInventory(text: string, file: string): LoadResult {
  if (text.length > MAX_FILE) throw new InventoryError(file, [{ field: "(file)", message: `is ${text.length} characters long; an inventory is a few kilobytes (at most ${MAX_FILE})`, fix: "check that this is the inventory, not a file pasted into it" }]);
  const deep = tooDeep(text);
  if (deep) throw new InventoryError(file, [{ field: deep.field || "(yaml)", line: deep.line, message: `nests more than ${MAX_DEPTH} levels deep (no inventory field is deeper than 5)`, fix: "remove the nesting: a value here is a string, a list of strings or a mapping of them" }]);
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  const lineOf = (pos?: { line: number }[]) => `(yaml line ${pos?.[0]?.line ?? "?"})`;
  const yamlIssues: InventoryIssue[] = doc.errors.map((e) => ({ field: lineOf(e.linePos), message: e.message.split("\n")[0]!, fix: "fix the YAML syntax" }));
  // An unknown tag (!env, !!binary …) would be dropped or reinterpreted silently: none is supported.
  visit(doc, (_key, node) => {
    if (isNode(node) && node.tag && node.range) {
      const line = text.slice(0, node.range[0]).split("\n").length;
      yamlIssues.push({ field: `(yaml line ${line})`, message: `the tag ${node.tag} is not supported (binkube reads plain YAML: no tags, no environment lookups)`, fix: "remove the tag and write the value itself" });
    }
  });
  for (const w of doc.warnings) yamlIssues.push({ field: lineOf(w.linePos), message: w.message.split("\n")[0]!, fix: "write plain YAML without tags" });
  if (yamlIssues.length > 0) throw new InventoryError(file, yamlIssues);
  let raw: unknown;
  try {
    raw = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (e) {
    const line = bombLine(doc, text);
    throw new InventoryError(file, [{ field: line ? `(yaml line ${line})` : "(yaml)", line, message: `aliases expand too far (${(e as Error).message.split("\n")[0]}; the limit is ${MAX_ALIASES})`, fix: `write the repeated settings out, or use fewer *alias references${line ? ` (an alias of an anchor that holds aliases itself, at line ${line}, multiplies them)` : ""}` }]);
  }
  const { at, tooLong } = sources(doc, text);
  if (tooLong) throw new InventoryError(file, [{ field: tooLong.field, line: tooLong.line, message: `is ${tooLong.length} characters long (at most ${MAX_VALUE})`, fix: "check the value: no inventory field holds more than a URL or a flag list" }]);
  const r = new Reader(at);
  checkInvisible(r, raw, "");
  if (!isObj(raw)) {
    r.error("(top)", "the inventory must be a mapping with at least a hosts: list", "start from examples/guide-two-hosts.yaml");
    throw new InventoryError(file, r.issues);
  }
  const inv = validate(raw, file, r);
  if (r.issues.length > 0) throw new InventoryError(file, r.issues);
  return { inventory: inv, warnings: r.warnings };
}

/** Every key and string value, however deep: no control characters, byte-order marks or bidi overrides. */
function checkInvisible(r: Reader, v: unknown, at: string): void {
  if (typeof v === "string") {
    const bad = noInvisible(v);
    if (bad) r.error(at || "(top)", `the value ${bad}`, "retype the value: no field of the inventory holds control or invisible characters");
  } else if (Array.isArray(v)) v.forEach((x, i) => checkInvisible(r, x, `${at}[${i}]`));
  else if (isObj(v)) {
    for (const [k, x] of Object.entries(v)) {
      const bad = noInvisible(k);
      if (bad) r.error(join(at, visible(k)), `the key ${bad}`, "retype the key (a byte-order mark or control character hides inside it)");
      else checkInvisible(r, x, join(at, k));
    }
  }
}

/** Records `check`'s problem with `value` as an error on `field`. Returns true when the value fits. */
function fits(r: Reader, field: string, value: string, check: Check, fix: string): boolean {
  const bad = check(value);
  if (bad) r.error(field, `"${shown(value)}" ${bad}`, fix);
  return !bad;
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
    checkReadableFile(r, join(p, "privateKey"), privateKey!, "private key", "point privateKey at a readable key file (chmod 600); binkube connects with a key file, not ssh-agent");
    try {
      const head = fs.readFileSync(privateKey!, "utf8").slice(0, 80);
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(head)) r.error(join(p, "privateKey"), `${privateKey} does not look like a private key`, "use the private half of the key pair (not the .pub file)");
      checkKeyMode(r, join(p, "privateKey"), privateKey!);
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
    if (address && (isIPv4(address) ? hostAddress(address) : dnsName(address))) r.error(join(bp, "address"), `"${address}" ${isIPv4(address) ? hostAddress(address) : `is not an address or DNS name: it ${dnsName(address)}`}`, "set the jump host's address or DNS name");
    const bkey = r.str(b, "privateKey", bp);
    if (bkey !== undefined) {
      checkReadableFile(r, join(bp, "privateKey"), expandPath(bkey, baseDir), "private key", "point privateKey at a readable key file (chmod 600)");
      if (fs.existsSync(expandPath(bkey, baseDir))) checkKeyMode(r, join(bp, "privateKey"), expandPath(bkey, baseDir));
    }
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

/** As OpenSSH does: a private key that others can read is refused. */
function checkKeyMode(r: Reader, field: string, file: string): void {
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) r.error(field, `${file} is readable by others (mode ${mode.toString(8).padStart(4, "0")})`, `chmod 600 ${file}`);
}

/** Ports that the node port range and the apiserver must stay clear of, with what holds them. */
function reservedPorts(sshPorts: number[]): Map<number, string> {
  const m = new Map<number, string>([
    [2379, "etcd clients"], [2380, "etcd peers"], [2381, "etcd metrics"], [8472, "flannel vxlan (udp)"],
    [10248, "kubelet healthz"], [10249, "kube-proxy metrics"], [10250, "the kubelet API"], [10251, "kube-scheduler healthz"],
    [10252, "kube-controller-manager healthz"], [10256, "kube-proxy healthz"], [10257, "kube-controller-manager"], [10259, "kube-scheduler"],
  ]);
  for (const p of sshPorts) m.set(p, "ssh");
  return m;
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
  const patch = /^v1\.17\.(0|[1-9]\d*)$/.exec(kubernetesVersion);
  if (!patch) r.error("kubernetes.version", `"${kubernetesVersion}" is not a v1.17 release`, "binkube installs Kubernetes v1.17 only: use e.g. v1.17.17");
  else if (Number(patch[1]) > LAST_1_17_PATCH) r.error("kubernetes.version", `${kubernetesVersion} was never released (v1.17 ended at v1.17.${LAST_1_17_PATCH})`, `use v1.17.${LAST_1_17_PATCH}`);

  const etcd = r.section(raw, "etcd", "");
  r.known(etcd, ["version", "backup"], "etcd");
  const etcdVersion = r.str(etcd, "version", "etcd", DEFAULTS.etcdVersion);
  // Scheduled snapshots on every member (steps/etcd-backup.ts): a cluster that runs for months
  // without a binkube change still has a recent backup. Daily and 7 kept by default.
  const eb = r.section(etcd, "backup", "etcd");
  r.known(eb, ["schedule", "keep"], "etcd.backup");
  const etcdBackup = { schedule: r.str(eb, "schedule", "etcd.backup", "daily"), keep: r.int(eb, "keep", "etcd.backup", 7, 1, 1000) };
  const badSchedule = calendarEvent(etcdBackup.schedule);
  if (badSchedule) r.error("etcd.backup.schedule", `"${shown(etcdBackup.schedule)}" ${badSchedule}`, 'give a systemd calendar event (systemd.time(7)): daily, hourly, or e.g. "*-*-* 02:30:00"');
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
  const badDomain = dnsName(clusterDomain);
  if (badDomain) r.error("network.clusterDomain", `"${clusterDomain}" is not a DNS domain: it ${badDomain}`, "use e.g. cluster.local");
  const np = /^(\d+)-(\d+)$/.exec(nodePortRange);
  const nodePorts = np && Number(np[1]) < Number(np[2]) && Number(np[2]) <= 65535 && Number(np[1]) >= 1 ? { lo: Number(np[1]), hi: Number(np[2]) } : undefined;
  if (!nodePorts) r.error("network.nodePortRange", `"${nodePortRange}" is not a port range`, "write it like 30000-32767");

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
    else if (hostAddress(address)) r.error(`${p}.address`, `${address} ${hostAddress(address)}`, "use the address the host has on the network the other hosts reach it by");
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
    for (const [k, v] of Object.entries(labels)) {
      const lp = join(`${p}.labels`, k);
      if (fits(r, lp, k, labelKey, "a label key is [prefix/]name: a DNS subdomain, '/', and 1-63 letters, digits, '-', '_', '.'")) {
        fits(r, lp, k, kubeletLabel, "drop it; node roles and other reserved labels are set through the API (kubectl label node …), not by the kubelet");
      }
      fits(r, lp, v, labelValue, "a label value is at most 63 letters, digits and inner '-', '_', '.' (no spaces)");
    }
    if (address.startsWith("169.254.")) r.warn(`${p}.address`, `${address} is link-local: it may change on reboot and is not routed`, "use the host's address on its real network, unless this link-local network is deliberate");
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
  const reserved = reservedPorts(hosts.map((h) => h.ssh.port));
  const apiClash = reserved.get(apiserverPort);
  if (apiClash) r.error("network.apiserverPort", `${apiserverPort} is the port of ${apiClash}`, "use 6443, the apiserver's usual port");
  if (nodePorts) {
    const taken = [...reserved, [apiserverPort, "the apiserver"] as [number, string]].filter(([port]) => nodePorts.lo <= port && port <= nodePorts.hi).sort(([a], [b]) => a - b);
    if (taken.length > 0) r.error("network.nodePortRange", `${nodePortRange} contains ${taken.map(([port, what]) => `${port} (${what})`).join(", ")}: kube-proxy would hold those ports on every node`, "keep the node port range clear of the cluster's own ports, e.g. 30000-32767");
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
    const secret = urlCredential(url);
    if (secret) {
      const host = /^[a-z]+:\/\/(?:[^/?#]*@)?([^/:?#]+)/i.exec(url)?.[1] ?? "HOST";
      r.error(`${p}.url`, `"${shown(url)}" carries a credential (${secret}); it would reach the render output, Terraform's plan and logs`, `remove it from the URL and export ${downloadAuthVar(host)}=USER:PASSWORD (HTTP basic) or =TOKEN (a bearer token) in the shell that runs binkube: it is sent to ${host} only, over https`);
    } else if (!/^https?:\/\/[^\s/]+\/\S+$/.test(url)) r.error(`${p}.url`, `"${shown(url)}" is not an http(s) URL`, "write the full download URL");
    else if (url.startsWith("http:")) r.warn(`${p}.url`, "is plain http: the checksum still guards the content, but anyone on the path sees what is fetched", "use https unless this is a mirror on a trusted network");
    if (!sha256 && !sha512) r.error(p, "has no checksum", "add sha256: or sha512: with the published checksum (downloads are verified before any upload)");
    if (sha256 && !HEX(64).test(sha256)) r.error(`${p}.sha256`, "is not 64 hex digits", "copy the published sha256");
    if (sha512 && !HEX(128).test(sha512)) r.error(`${p}.sha512`, "is not 128 hex digits", "copy the published sha512");
    const files = u.files === undefined ? undefined : r.strMap(u, "files", p);
    const name = r.str(u, "name", p);
    if (name !== undefined) fits(r, `${p}.name`, name, binaryName, "name the binary as binkube lays it out: etcd, kube-apiserver, cni/bridge, docker/dockerd …");
    for (const [bin, member] of Object.entries(files ?? {})) {
      if (fits(r, join(`${p}.files`, bin), bin, binaryName, "name the binary as binkube lays it out: etcd, kube-apiserver, cni/bridge, docker/dockerd …")) {
        fits(r, join(`${p}.files`, bin), member, archiveMember, "write the member's path inside the archive, e.g. kubernetes/server/bin/kube-apiserver");
      }
    }
    if (!files && !name) r.error(p, "says neither which binary it is (name:) nor which archive members to take (files:)", "add name: etcd, or files: {kube-apiserver: kubernetes/server/bin/kube-apiserver}");
    urls.push({ url, sha256, sha512, files, name });
  });
  if (!dirText && urls.length === 0) r.error("binaries", "no binary source", "set binaries.dir to a directory holding etcd, kube-apiserver, … or list binaries.urls with checksums");
  const binDir = dirText ? expandPath(dirText, baseDir) : undefined;
  if (binDir) checkBinariesDir(r, binDir, baseDir);
  const cacheDir = expandPath(r.str(bin, "cacheDir", "binaries", path.join(os.homedir(), ".cache", "binkube")), baseDir);

  const runtime = r.oneOf(raw, "runtime", "", ["docker", "containerd"] as const, "docker");
  const cni = r.oneOf(raw, "cni", "", ["flannel"] as const, "flannel");
  const engine = r.oneOf(raw, "engine", "", ENGINES, "terraform_data");

  const state = readState(r, raw, clusterName);

  const rolling = r.section(raw, "rolling", "");
  r.known(rolling, ["maxUnavailable", "drainTimeoutSeconds"], "rolling");
  const maxUnavailable = readMaxUnavailable(r, rolling);
  const drainTimeoutSeconds = r.int(rolling, "drainTimeoutSeconds", "rolling", 300, 10, 3600);

  const certs = r.section(raw, "certificates", "");
  r.known(certs, ["validityDays", "caValidityDays", "kubeletValidityDays"], "certificates");
  const validityDays = r.int(certs, "validityDays", "certificates", 365, 1, 3650);
  const caValidityDays = r.int(certs, "caValidityDays", "certificates", 3650, 30, 36500);
  const kubeletValidityDays = r.int(certs, "kubeletValidityDays", "certificates", 365, 1, 3650);
  if (caValidityDays < validityDays) r.error("certificates.caValidityDays", `the CAs (${caValidityDays} d) would expire before the certificates they sign (${validityDays} d)`, "make caValidityDays at least validityDays");
  if (caValidityDays < kubeletValidityDays) r.error("certificates.kubeletValidityDays", `kubelet certificates (${kubeletValidityDays} d) would outlive the CA that signs them (${caValidityDays} d)`, "make kubeletValidityDays at most caValidityDays");

  const api = r.section(raw, "apiserver", "");
  r.known(api, ["extraSANs", "endpoint", "anonymousAuth", "nodeLocalProxy"], "apiserver");
  const extraSANs = r.strList(api, "extraSANs", "apiserver");
  extraSANs.forEach((san, i) => {
    const bad = sanName(san);
    if (bad) r.error(`apiserver.extraSANs[${i}]`, `"${san}" is neither an IPv4 address nor a DNS name: it ${bad}`, "use e.g. 10.0.0.100, k8s.example.com or *.k8s.example.com");
  });
  const endpoint = r.str(api, "endpoint", "apiserver");
  if (endpoint !== undefined) {
    const m = /^https:\/\/([^/:]+):(\d+)$/.exec(endpoint);
    if (!m) r.error("apiserver.endpoint", `"${shown(endpoint)}" is not https://HOST:PORT${urlCredential(endpoint) ? " (and carries a credential: clients authenticate with their certificates)" : ""}`, "write it like https://10.0.0.100:6443 (the load balancer or VIP)");
    else if (isIPv4(m[1]!) ? hostAddress(m[1]!) : dnsName(m[1]!)) r.error("apiserver.endpoint", `"${m[1]}" ${isIPv4(m[1]!) ? hostAddress(m[1]!) : `is not an address or DNS name: it ${dnsName(m[1]!)}`}`, "use the VIP's IP or DNS name");
    else if (Number(m[2]) < 1 || Number(m[2]) > 65535) r.error("apiserver.endpoint", `port ${m[2]} is outside 1-65535`, "use the load balancer's port, usually 6443");
    else checkEndpointAddress(r, m[1]!, { svc, pod, serviceCIDR, podCIDR, clusterDNS, clusterDomain, hosts });
  }
  const masters = hosts.filter((h) => h.roles.includes("master"));
  // Several masters and nothing in front of them: each node balances over them itself.
  const nodeLocalProxy = api.nodeLocalProxy === undefined ? endpoint === undefined && masters.length > 1 : r.bool(api, "nodeLocalProxy", "apiserver", false);
  if (endpoint === undefined && masters.length > 1 && !nodeLocalProxy) {
    r.warn("apiserver.nodeLocalProxy", `is false with ${masters.length} masters and no endpoint: kubelets, kube-proxy and admin.kubeconfig talk to ${masters[0]!.name} only, so the nodes lose the API whenever it is down`, "remove nodeLocalProxy: false (each node then balances over every master), or put a load balancer or VIP in front of the masters and set apiserver.endpoint to it");
  }
  if (nodeLocalProxy) {
    if (apiserverPort === NODE_LOCAL_PROXY_PORT) r.error("network.apiserverPort", `${apiserverPort} is the port of the node-local apiserver proxy (127.0.0.1:${NODE_LOCAL_PROXY_PORT} on every node), which is on`, "use 6443, the apiserver's usual port");
    if (nodePorts && nodePorts.lo <= NODE_LOCAL_PROXY_PORT && NODE_LOCAL_PROXY_PORT <= nodePorts.hi) r.error("network.nodePortRange", `${nodePortRange} contains ${NODE_LOCAL_PROXY_PORT}, the port of the node-local apiserver proxy: kube-proxy would hold it on every node`, "keep the node port range clear of the cluster's own ports, e.g. 30000-32767");
  }

  const img = r.section(raw, "images", "");
  r.known(img, ["pause", "flannel", "coredns", "metricsServer", "kubeRouter", "preload"], "images");
  const images = {
    pause: r.str(img, "pause", "images", DEFAULTS.images.pause),
    flannel: r.str(img, "flannel", "images", DEFAULTS.images.flannel),
    coredns: r.str(img, "coredns", "images", DEFAULTS.images.coredns),
    metricsServer: r.str(img, "metricsServer", "images", DEFAULTS.images.metricsServer),
    kubeRouter: r.str(img, "kubeRouter", "images", DEFAULTS.images.kubeRouter),
  };
  for (const [k, v] of Object.entries(images)) fits(r, `images.${k}`, v, imageRef, "write an image reference such as registry.local:5000/pause:3.1");
  const preload = r.strList(img, "preload", "images").map((p) => expandPath(p, baseDir));
  const archiveNames = new Map<string, number>();
  preload.forEach((p, i) => {
    const base = path.basename(p);
    if (!fits(r, `images.preload[${i}]`, base, fileName, "rename the archive (it keeps its file name on every node)")) return;
    if (archiveNames.has(base)) return r.error(`images.preload[${i}]`, `has the same file name as images.preload[${archiveNames.get(base)}] (${base}); both would land at one path on the nodes`, "rename one of them");
    archiveNames.set(base, i);
    const where = placed(p, shipRoots(baseDir, binDir), forbiddenDirs(baseDir));
    if ("problem" in where) return r.error(`images.preload[${i}]`, `image archive ${shown(p)} ${where.problem}`, "preload only docker save archives kept beside the inventory (e.g. images/pause.tar) or in binaries.dir");
    const notArchive = dockerArchive(where.real);
    if (notArchive) r.error(`images.preload[${i}]`, `${shown(p)} ${notArchive}`, "create it with `docker save IMAGE -o FILE`");
  });

  const kl = r.section(raw, "kubelet", "");
  r.known(kl, ["extraArgs", "weakened", "failSwapOn", "taintMasters"], "kubelet");
  const extraArgs = r.strMap(kl, "extraArgs", "kubelet");
  for (const k of Object.keys(extraArgs)) {
    if (!flagName(k)) continue;
    r.error(join("kubelet.extraArgs", visible(k)), `"${shown(k)}" ${flagName(k)}`, "write the flag without leading dashes, e.g. max-pods: \"60\"");
    delete extraArgs[k];
  }
  const weakened = checkExtraArgs(r, "kubelet.extraArgs", extraArgs, "kubelet.weakened", r.list(kl, "weakened", "kubelet"), KUBELET_POLICY);

  const taintMasters = r.bool(kl, "taintMasters", "kubelet", false);
  if (taintMasters && hosts.length > 0 && hosts.filter((h) => h.roles.includes("node")).every((h) => h.roles.includes("master")))
    r.error("kubelet.taintMasters", "every node is a master: with the masters tainted NoSchedule, CoreDNS and every workload would have nowhere to run", "add a host with the node role only, or set taintMasters: false");

  const ad = r.section(raw, "addons", "");
  r.known(ad, ["metricsServer", "networkPolicy"], "addons");
  const addons = { metricsServer: r.bool(ad, "metricsServer", "addons", true), networkPolicy: r.bool(ad, "networkPolicy", "addons", true) };
  if (!addons.networkPolicy) r.warn("addons.networkPolicy", "is false: the API still accepts NetworkPolicy objects, and nothing enforces them (every pod can reach every pod)", "leave it on (kube-router's firewall enforces them) unless another enforcer runs in the cluster");

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
    etcdBackup,
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
    binaries: { dir: binDir, urls, cacheDir },
    runtime,
    cni,
    certificates: { validityDays, caValidityDays, kubeletValidityDays },
    apiserver: { extraSANs, endpoint, anonymousAuth: r.bool(api, "anonymousAuth", "apiserver", true), nodeLocalProxy },
    engine,
    images: { ...images, preload },
    addons,
    kubeProxy: { conntrackMaxPerCore },
    rolling: { maxUnavailable, drainTimeoutSeconds },
    state,
    kubelet: { extraArgs, weakened, failSwapOn: r.bool(kl, "failSwapOn", "kubelet", true), taintMasters },
  };
}

/**
 * Where kubelets, kube-proxy and admin.kubeconfig send API traffic must be outside the cluster's
 * own ranges: an address in the pod range goes into one node's cni0, one in the service range (the
 * kubernetes Service, the DNS Service) is only reachable through the kube-proxy rules that need
 * the API first. A name is checked through the inventory's hosts (no DNS lookup here).
 */
function checkEndpointAddress(r: Reader, host: string, n: { svc?: Cidr; pod?: Cidr; serviceCIDR: string; podCIDR: string; clusterDNS: string; clusterDomain: string; hosts: Host[] }): void {
  const fix = "point apiserver.endpoint at the load balancer or VIP on the hosts' network (outside network.podCIDR and network.serviceCIDR)";
  if (!isIPv4(host)) {
    if (host === n.clusterDomain || host.endsWith(`.${n.clusterDomain}`)) return r.error("apiserver.endpoint", `${host} is a name inside the cluster domain ${n.clusterDomain}: hosts resolve it only through CoreDNS, which needs the API first`, fix);
  }
  const ip = isIPv4(host) ? host : n.hosts.find((h) => h.name === host)?.address;
  if (!ip) return;
  const label = ip === host ? ip : `${host} (${ip}, the address of host ${host})`;
  if (n.svc && ip === nthAddress(n.svc, 1)) r.error("apiserver.endpoint", `${label} is the kubernetes Service's ClusterIP (the first address of ${n.serviceCIDR})`, fix);
  else if (ip === n.clusterDNS) r.error("apiserver.endpoint", `${label} is network.clusterDNS, the DNS Service's ClusterIP`, fix);
  else if (n.svc && cidrContains(n.svc, ip)) r.error("apiserver.endpoint", `${label} is inside the service range ${n.serviceCIDR}: only kube-proxy's rules, which need the API, make it reachable`, fix);
  else if (n.pod && cidrContains(n.pod, ip)) r.error("apiserver.endpoint", `${label} is inside the pod range ${n.podCIDR}: API traffic would go into one node's cni0 (a cluster-wide outage)`, fix);
}

/**
 * binaries.dir, when it exists, is a directory, and every binary binkube would take from it (by
 * name, and all of docker/, containerd/, cni/ and haproxy/) is an x86-64 ELF executable inside it (after links), not
 * under pki/ or .binkube/. A missing directory is only a warning at synth (filled later).
 */
function checkBinariesDir(r: Reader, dir: string, baseDir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) return r.error("binaries.dir", `${shown(dir)} is ${st.isFile() ? "a regular file" : "not a directory"}`, "point binaries.dir at the directory holding etcd, kube-apiserver, …, docker/ and cni/ (an archive goes in binaries.urls)");
  const forbidden = forbiddenDirs(baseDir);
  const group = (g: string) => {
    try {
      return fs.readdirSync(path.join(dir, g)).map((n) => `${g}/${n}`);
    } catch {
      return [];
    }
  };
  for (const name of [...Object.values(BINARIES).flat(), ...group("docker"), ...group("containerd"), ...group("cni"), ...group("haproxy")]) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file) && !isLink(file)) continue;
    const where = placed(file, [{ dir, what: "binaries.dir" }], forbidden);
    const bad = "problem" in where ? where.problem : elfX64(where.real);
    if (bad) r.error("binaries.dir", `${name} (${shown(file)}) ${bad}`, "binaries.dir holds the linux-amd64 binaries themselves (copies, or links within binaries.dir)");
  }
}

const isLink = (p: string): boolean => {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/** rolling.maxUnavailable: a count (>= 1) or a percentage of the nodes ("25%", 1-100). */
function readMaxUnavailable(r: Reader, rolling: Obj): number | `${number}%` {
  const v = rolling.maxUnavailable;
  if (v === undefined || v === null) return 1;
  if (typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= 10_000) return v;
  if (typeof v === "string" && /^(100|[1-9][0-9]?)%$/.test(v)) return v as `${number}%`;
  r.error("rolling.maxUnavailable", `must be a whole number of nodes (1 or more) or a percentage such as "25%", got ${JSON.stringify(v)}`, "set 1 (the default: one node at a time) or a percentage of the nodes");
  return 1;
}

/** state: { backend: local | pg, schema }; a pg schema defaults to binkube_<cluster name>. */
function readState(r: Reader, raw: Obj, clusterName: string): Inventory["state"] {
  const st = r.section(raw, "state", "");
  r.known(st, ["backend", "schema"], "state");
  if ("connStr" in st || "conn_str" in st) r.error("state", "the connection string does not go in the inventory (it would land in cdktf.out)", "export PG_CONN_STR=postgres://USER@HOST/DB?sslmode=require in the shell that runs cdktf deploy");
  const backend = r.oneOf(st, "backend", "state", ["local", "pg"] as const, "local");
  if (backend === "local") {
    if (st.schema !== undefined) r.error("state.schema", "only means something with backend: pg", "remove it, or set backend: pg");
    return { backend };
  }
  const schema = r.str(st, "schema", "state", `binkube_${clusterName.toLowerCase().replace(/[^a-z0-9_]/g, "_")}`);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) r.error("state.schema", `"${schema}" is not a plain PostgreSQL schema name`, "use lowercase letters, digits and _ (at most 63), starting with a letter or _");
  return { backend, schema };
}
