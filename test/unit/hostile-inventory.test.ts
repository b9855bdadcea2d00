// Mistaken and hostile inventories, as a CMDB export or a colleague's copy-paste would bring them:
// each is refused with an error naming the field and the problem, and nothing is written (no pki/,
// no admin.kubeconfig, no render tree). Written apart from inventory.test.ts's table, one class of
// destination at a time: flags files, manifests, remote shells, archives, semantics, encoding.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { openCluster } from "../../src/cluster";
import { InventoryError, parseInventory } from "../../src/inventory/load";
import { writeTree } from "../../src/cli/render-tree";
import { openBinaries } from "../../src/binaries/source";
import { RawInventory, baseInventory, fakeElf, tempDir, writeFakeBinaries } from "../helpers/fixtures";
import "../helpers/test-keys";

type Case = { name: string; field: string; message: RegExp; line?: number } & ({ mutate: (i: RawInventory) => unknown } | { bytes: (yaml: string) => Buffer });

const set = (at: (i: RawInventory) => Record<string, unknown>, key: string, value: unknown) => (i: RawInventory) => {
  at(i)[key] = value;
  return i;
};
const host0 = (i: RawInventory) => i.hosts[0]!;
const label = (k: string, v: string) => set(host0, "labels", { [k]: v });
const kubeletArg = (k: string, v: string) => (i: RawInventory) => ({ ...i, kubelet: { extraArgs: { [k]: v } } });
const image = (k: string, v: string) => (i: RawInventory) => ({ ...i, images: { [k]: v } });
const archive = (files: Record<string, string>, extra: Record<string, unknown> = {}) => (i: RawInventory) => ({
  ...i,
  binaries: { urls: [{ url: "https://downloads.example.invalid/kubernetes-server-linux-amd64.tar.gz", sha256: "a".repeat(64), files, ...extra }] },
});
const network = (n: Record<string, unknown>) => (i: RawInventory) => ({ ...i, network: n });
const url = (u: string) => (i: RawInventory) => ({ ...i, binaries: { urls: [{ url: u, sha256: "a".repeat(64), name: "etcd" }] } });
const endpoint = (e: string) => (i: RawInventory) => ({ ...i, apiserver: { endpoint: e } });
const append = (text: string) => (y: string) => Buffer.from(y + text);
const withLabel = (label: string) => (y: string) => Buffer.from(y.replace("address: 192.168.0.4\n", `address: 192.168.0.4\n    labels:\n      ${label}\n`));
const preload = (file: string) => (i: RawInventory) => ({ ...i, images: { preload: [file] } });
const bindir = (dir: string) => (i: RawInventory) => ({ ...i, binaries: { dir } });

/** What the cases above point at, made beside each case's inventory before it loads. */
function hostileFiles(dir: string): void {
  const put = (f: string, data: string | Buffer, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), data, { mode });
  };
  for (const f of ["a/pause.tar", "b/pause.tar", "-rf.tar"]) put(f, "archive");
  put("pki/ca.key", "-----BEGIN RSA PRIVATE KEY-----\nnot a real key\n-----END RSA PRIVATE KEY-----\n", 0o600);
  put(".binkube/hash-cache.json", "{}");
  put("images/pause.tar.gz", Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]));
  put("images/plain/readme.txt", "not an image");
  execFileSync("tar", ["-cf", path.join(dir, "images/plain.tar"), "-C", path.join(dir, "images/plain"), "readme.txt"]);
  fs.symlinkSync("/etc/passwd", path.join(dir, "images/passwd.tar"));
  fs.symlinkSync("../pki/ca.key", path.join(dir, "images/ca.tar"));
  put("binfile", "not a directory");
  writeFakeBinaries(path.join(dir, "bin-script"));
  put("bin-script/kubelet", "#!/bin/sh\necho Kubernetes v1.17.17\n", 0o755);
  // a group folder's member the catalog never names: the folder is checked whole (containerd/ from its step's declarations)
  writeFakeBinaries(path.join(dir, "bin-group-script"));
  put("bin-group-script/containerd/containerd-stress", "#!/bin/sh\n", 0o755);
  writeFakeBinaries(path.join(dir, "bin-link"));
  fs.rmSync(path.join(dir, "bin-link/etcd"));
  fs.symlinkSync(fs.realpathSync("/proc/self/exe"), path.join(dir, "bin-link/etcd"));
  writeFakeBinaries(path.join(dir, "bin-pki"));
  fs.symlinkSync("../../pki/ca.key", path.join(dir, "bin-pki/cni/ca-key"));
  writeFakeBinaries(path.join(dir, "bin-arm"));
  const arm = fakeElf("Kubernetes v1.17.17");
  arm.writeUInt16LE(183, 18); // EM_AARCH64
  put("bin-arm/kube-proxy", arm, 0o755);
}
const address = (a: string) => set(host0, "address", a);

const cases: Case[] = [
  // values that would reach the kubelet flags file (an EnvironmentFile split on whitespace by systemd)
  { name: "label value that adds kubelet flags", mutate: label("disktype", "ssd --anonymous-auth=true --authorization-mode=AlwaysAllow"), field: "hosts[0].labels.disktype", message: /is not letters, digits/ },
  { name: "label value with a quote and a newline (a new EnvironmentFile line)", mutate: label("disktype", 'ssd"\nLD_PRELOAD=/tmp/x.so\n"'), field: "hosts[0].labels.disktype", message: /contains a newline/ },
  { name: "label key with shell characters", mutate: label("team;id>x", "a"), field: "hosts[0].labels.team;id>x", message: /name part .* is not letters/ },
  { name: "label key claiming a node role", mutate: label("node-role.kubernetes.io/master", ""), field: "hosts[0].labels.node-role.kubernetes.io/master", message: /node role, which a kubelet may not set/ },
  { name: "label key in the reserved kubernetes.io namespace", mutate: label("kubernetes.io/team", "a"), field: "hosts[0].labels.kubernetes.io/team", message: /reserved kubernetes.io namespace/ },
  { name: "label key in a k8s.io subdomain", mutate: label("x.k8s.io/team", "a"), field: "hosts[0].labels.x.k8s.io/team", message: /reserved x.k8s.io namespace/ },
  { name: "label value of 100 characters", mutate: label("rack", "r".repeat(100)), field: "hosts[0].labels.rack", message: /100 characters long \(at most 63\)/ },
  { name: "label key prefix that is not a DNS subdomain", mutate: label("Example_Com/team", "a"), field: "hosts[0].labels.Example_Com/team", message: /prefix "Example_Com" is not a DNS subdomain/ },
  { name: "kubelet flag value with a space", mutate: kubeletArg("max-pods", "60 --anonymous-auth=true"), field: "kubelet.extraArgs.max-pods", message: /contains a space, which .* would split into another flag/ },
  { name: "kubelet flag value with $", mutate: kubeletArg("root-dir", "$HOME/kubelet"), field: "kubelet.extraArgs.root-dir", message: /contains '\$'/ },
  { name: "kubelet flag value with a double quote", mutate: kubeletArg("root-dir", '/var/lib/kubelet"'), field: "kubelet.extraArgs.root-dir", message: /contains a double quote/ },
  { name: "kubelet flag value with a backslash", mutate: kubeletArg("root-dir", "/var/lib/kubelet\\"), field: "kubelet.extraArgs.root-dir", message: /contains a backslash/ },
  { name: "kubelet flag name with its dashes", mutate: kubeletArg("--max-pods", "60"), field: "kubelet.extraArgs.--max-pods", message: /not a flag name/ },
  { name: "kubelet flag binkube sets (config)", mutate: kubeletArg("config", "/tmp/evil.yml"), field: "kubelet.extraArgs.config", message: /--config is set by binkube/ },
  { name: "kubelet flag binkube sets (node-labels)", mutate: kubeletArg("node-labels", "a=b"), field: "kubelet.extraArgs.node-labels", message: /use hosts\[\]\.labels/ },
  // kubelet flags that undo what binkube hardens (v1.17 flags override kubelet-config.yml)
  { name: "kubelet authorization-mode AlwaysAllow", mutate: kubeletArg("authorization-mode", "AlwaysAllow"), field: "kubelet.extraArgs.authorization-mode", message: /would weaken the kubelet: .*AlwaysAllow.*\(fails CIS 4\.2\.2\) — remove it; .*kubelet\.weakened/ },
  { name: "kubelet anonymous-auth true", mutate: kubeletArg("anonymous-auth", "true"), field: "kubelet.extraArgs.anonymous-auth", message: /anonymous requests reach the kubelet API \(fails CIS 4\.2\.1\)/ },
  { name: "kubelet read-only-port 10255", mutate: kubeletArg("read-only-port", "10255"), field: "kubelet.extraArgs.read-only-port", message: /served without authentication \(fails CIS 4\.2\.4\)/ },
  { name: "kubelet manifest-url over plain http", mutate: kubeletArg("manifest-url", "http://203.0.113.5/pods.yaml"), field: "kubelet.extraArgs.manifest-url", message: /runs whatever that URL serves as static pods, outside admission/ },
  { name: "kubelet pod-manifest-path", mutate: kubeletArg("pod-manifest-path", "/etc/kubernetes/manifests"), field: "kubelet.extraArgs.pod-manifest-path", message: /static pods, outside admission and PodSecurityPolicy/ },
  { name: "kubelet protect-kernel-defaults false", mutate: kubeletArg("protect-kernel-defaults", "false"), field: "kubelet.extraArgs.protect-kernel-defaults", message: /fails CIS 4\.2\.6/ },
  { name: "kubelet weak tls-cipher-suites", mutate: kubeletArg("tls-cipher-suites", "TLS_RSA_WITH_RC4_128_SHA"), field: "kubelet.extraArgs.tls-cipher-suites", message: /fails CIS 4\.2\.13/ },
  { name: "kubelet client-ca-file of another CA", mutate: kubeletArg("client-ca-file", "/etc/other-ca.pem"), field: "kubelet.extraArgs.client-ca-file", message: /trusts client certificates from another CA \(fails CIS 4\.2\.3\)/ },
  { name: "kubelet dynamic-config-dir", mutate: kubeletArg("dynamic-config-dir", "/var/lib/kubelet/dynamic"), field: "kubelet.extraArgs.dynamic-config-dir", message: /a ConfigMap in the cluster may replace/ },
  { name: "kubelet flag that sets a field binkube writes (cgroup-driver)", mutate: kubeletArg("cgroup-driver", "systemd"), field: "kubelet.extraArgs.cgroup-driver", message: /set by binkube in its config file \(cgroupDriver\)/ },
  { name: "kubelet node-ip (binkube sets it per host)", mutate: kubeletArg("node-ip", "10.1.2.3"), field: "kubelet.extraArgs.node-ip", message: /--node-ip is set by binkube on its command line.*hosts\[\]\.address/ },
  { name: "kubelet flag that does not exist in v1.17", mutate: kubeletArg("max-podz", "60"), field: "kubelet.extraArgs.max-podz", message: /not a kubelet v1\.17 flag .* did you mean "max-pods"/ },
  { name: "kubelet flag removed before v1.17 (allow-privileged)", mutate: kubeletArg("allow-privileged", "true"), field: "kubelet.extraArgs.allow-privileged", message: /not a kubelet v1\.17 flag/ },
  { name: "kubelet.weakened entry without a reason", mutate: (i) => ({ ...i, kubelet: { extraArgs: { "anonymous-auth": "true" }, weakened: [{ flag: "anonymous-auth", reason: "x" }] } }), field: "kubelet.weakened[0].reason", message: /too short to say why/ },
  { name: "pause image with flags", mutate: image("pause", "k8s.gcr.io/pause:3.1 --anonymous-auth=true"), field: "images.pause", message: /is not an image reference/ },
  { name: "pause image with a command substitution", mutate: image("pause", "pause:$(id)"), field: "images.pause", message: /is not an image reference/ },
  // image references into addon manifests
  { name: "CoreDNS image that adds keys to the pod spec", mutate: image("coredns", "coredns/coredns:1.6.5\n      hostPID: true"), field: "images.coredns", message: /contains a newline/ },
  { name: "flannel image with a YAML comment", mutate: image("flannel", "quay.io/coreos/flannel:v0.12.0-amd64 #"), field: "images.flannel", message: /is not an image reference/ },
  { name: "flannel image with upper-case repository", mutate: image("flannel", "quay.io/CoreOS/flannel:v0.12.0"), field: "images.flannel", message: /is not an image reference/ },
  { name: "image tag of 129 characters", mutate: image("coredns", `coredns/coredns:${"t".repeat(129)}`), field: "images.coredns", message: /is not an image reference/ },
  { name: "image with a flow mapping", mutate: image("coredns", "{hostNetwork: true}"), field: "images.coredns", message: /is not an image reference/ },
  // file names that land in remote shells
  { name: "preload archive named like an option", mutate: (i) => ({ ...i, images: { preload: ["-rf.tar"] } }), field: "images.preload[0]", message: /starts with '-'/ },
  { name: "two preload archives with one file name", mutate: (i) => ({ ...i, images: { preload: ["a/pause.tar", "b/pause.tar"] } }), field: "images.preload[1]", message: /same file name as images.preload\[0\]/ },
  // files reached outside their place (preloaded archives and binaries are shipped to every node)
  { name: "preload of /etc/passwd", mutate: preload("/etc/passwd"), field: "images.preload[0]", message: /outside the inventory's directory and binaries\.dir — preload only docker save archives/ },
  { name: "preload of the cluster CA's key (pki/ca.key)", mutate: preload("pki/ca.key"), field: "images.preload[0]", message: /under pki\/ \(the cluster's keys/ },
  { name: "preload of binkube's state (.binkube/)", mutate: preload(".binkube/hash-cache.json"), field: "images.preload[0]", message: /under \.binkube\// },
  { name: "preload through a link to /etc/passwd", mutate: preload("images/passwd.tar"), field: "images.preload[0]", message: /is a link to \/etc\/passwd, outside/ },
  { name: "preload through a link into pki/", mutate: preload("images/ca.tar"), field: "images.preload[0]", message: /\(a link to .*pki\/ca\.key\) under pki\// },
  { name: "preload of a directory", mutate: preload("images"), field: "images.preload[0]", message: /not a regular file \(a directory\)/ },
  { name: "preload of a tar that is not docker save output", mutate: preload("images/plain.tar"), field: "images.preload[0]", message: /without manifest\.json or repositories.*docker save IMAGE -o FILE/ },
  { name: "preload of a gzip-compressed archive", mutate: preload("images/pause.tar.gz"), field: "images.preload[0]", message: /gzip-compressed.*gunzip it/ },
  { name: "preload of a text file named .tar", mutate: preload("a/pause.tar"), field: "images.preload[0]", message: /is not a tar archive/ },
  { name: "binaries.dir that is a regular file", mutate: bindir("binfile"), field: "binaries.dir", message: /is a regular file — point binaries\.dir at the directory/ },
  { name: "binary that is a shell script", mutate: bindir("bin-script"), field: "binaries.dir", message: /kubelet \(.*\) is a script, not an x86-64 ELF executable/ },
  { name: "a runtime group's extra member that is a shell script", mutate: bindir("bin-group-script"), field: "binaries.dir", message: /containerd\/containerd-stress \(.*\) is a script, not an x86-64 ELF executable/ },
  { name: "binary that is a link out of binaries.dir", mutate: bindir("bin-link"), field: "binaries.dir", message: /etcd \(.*\) is a link to \S+, outside binaries\.dir/ },
  { name: "CNI plugin that is a link into pki/", mutate: bindir("bin-pki"), field: "binaries.dir", message: /cni\/ca-key \(.*\) is \(a link to .*pki\/ca\.key\) under pki\// },
  { name: "binary for another architecture (arm64 ELF)", mutate: bindir("bin-arm"), field: "binaries.dir", message: /kube-proxy .*another architecture \(e_machine 183/ },
  // secrets in the inventory: they would reach render output, Terraform's plan and logs
  { name: "download URL with user:token@", mutate: url("https://ci:glpat-SECRET1234@dl.example.invalid/etcd"), field: "binaries.urls[0].url", message: /"https:\/\/\*\*\*@dl\.example\.invalid\/etcd" carries a credential \(user:password@\).*export BINKUBE_DOWNLOAD_AUTH_DL_EXAMPLE_INVALID=USER:PASSWORD/ },
  { name: "download URL with a bare token@", mutate: url("https://ghp_SECRET@dl.example.invalid/etcd"), field: "binaries.urls[0].url", message: /carries a credential.*BINKUBE_DOWNLOAD_AUTH_DL_EXAMPLE_INVALID/ },
  { name: "download URL with ?access_token=", mutate: url("https://dl.example.invalid/etcd?access_token=SECRET"), field: "binaries.urls[0].url", message: /access_token=\*\*\*" carries a credential \(the query parameter access_token\)/ },
  { name: "pre-signed download URL (X-Amz-Signature)", mutate: url("https://bucket.s3.example.invalid/etcd?X-Amz-Credential=AK%2F1&X-Amz-Signature=abcdef"), field: "binaries.urls[0].url", message: /query parameter X-Amz-Credential/ },
  { name: "apiserver endpoint with credentials", mutate: (i) => ({ ...i, apiserver: { endpoint: "https://admin:SECRET@192.168.0.100:6443" } }), field: "apiserver.endpoint", message: /"https:\/\/\*\*\*@192\.168\.0\.100:6443" is not https:\/\/HOST:PORT \(and carries a credential/ },
  // archive members and binary names
  { name: "archive member that climbs out (..)", mutate: archive({ kubelet: "../../../../etc/passwd" }), field: "binaries.urls[0].files.kubelet", message: /"\.\." path segment/ },
  { name: "archive member that tar reads as an option", mutate: archive({ kubelet: "--checkpoint-action=exec=id" }), field: "binaries.urls[0].files.kubelet", message: /starting with '-'/ },
  { name: "absolute archive member", mutate: archive({ kubelet: "/etc/passwd" }), field: "binaries.urls[0].files.kubelet", message: /absolute path/ },
  { name: "binary name that climbs out", mutate: archive({ "../kubelet": "kubernetes/server/bin/kubelet" }), field: "binaries.urls[0].files.../kubelet", message: /not a binary name/ },
  { name: "single binary with a spaced name", mutate: (i) => ({ ...i, binaries: { urls: [{ url: "https://downloads.example.invalid/etcd", sha256: "a".repeat(64), name: "etcd --x" }] } }), field: "binaries.urls[0].name", message: /not a binary name/ },
  // addresses no host can have
  { name: "host address 0.0.0.0", mutate: address("0.0.0.0"), field: "hosts[0].address", message: /unspecified/ },
  { name: "host address 127.0.0.1", mutate: address("127.0.0.1"), field: "hosts[0].address", message: /loopback/ },
  { name: "host address 255.255.255.255", mutate: address("255.255.255.255"), field: "hosts[0].address", message: /broadcast/ },
  { name: "host address 224.0.0.251 (mDNS)", mutate: address("224.0.0.251"), field: "hosts[0].address", message: /multicast/ },
  { name: "host address 240.0.0.1", mutate: address("240.0.0.1"), field: "hosts[0].address", message: /reserved range/ },
  { name: "bastion at 0.0.0.0", mutate: (i) => ({ ...i, ssh: { bastion: { address: "0.0.0.0" } } }), field: "ssh.bastion.address", message: /unspecified/ },
  // ports
  { name: "node ports covering ssh", mutate: network({ nodePortRange: "1-1000" }), field: "network.nodePortRange", message: /contains 22 \(ssh\)/ },
  { name: "node ports covering etcd", mutate: network({ nodePortRange: "2000-3000" }), field: "network.nodePortRange", message: /2379 \(etcd clients\), 2380 \(etcd peers\)/ },
  { name: "node ports covering the kubelet", mutate: network({ nodePortRange: "10000-11000" }), field: "network.nodePortRange", message: /10250 \(the kubelet API\)/ },
  { name: "apiserver on the kubelet's port", mutate: network({ apiserverPort: 10250 }), field: "network.apiserverPort", message: /10250 is the port of the kubelet API/ },
  { name: "apiserver on etcd's client port", mutate: network({ apiserverPort: 2379 }), field: "network.apiserverPort", message: /port of etcd clients/ },
  { name: "apiserver endpoint port 99999", mutate: (i) => ({ ...i, apiserver: { endpoint: "https://192.168.0.100:99999" } }), field: "apiserver.endpoint", message: /port 99999 is outside 1-65535/ },
  // the apiserver endpoint inside the cluster's own ranges (kubelets and kube-proxy would lose the API)
  { name: "endpoint VIP inside the pod range", mutate: endpoint("https://10.244.0.100:6443"), field: "apiserver.endpoint", message: /10\.244\.0\.100 is inside the pod range 10\.244\.0\.0\/16: .*cni0.*point apiserver\.endpoint at the load balancer/ },
  { name: "endpoint VIP inside the service range", mutate: endpoint("https://10.0.0.100:6443"), field: "apiserver.endpoint", message: /inside the service range 10\.0\.0\.0\/24/ },
  { name: "endpoint on the kubernetes Service IP", mutate: endpoint("https://10.0.0.1:443"), field: "apiserver.endpoint", message: /is the kubernetes Service's ClusterIP/ },
  { name: "endpoint on the cluster DNS IP", mutate: endpoint("https://10.0.0.2:6443"), field: "apiserver.endpoint", message: /is network\.clusterDNS/ },
  { name: "endpoint named after a host whose address is in the pod range", mutate: (i) => ({ ...endpoint("https://k8s-node2:6443")(i), network: { podCIDR: "192.168.0.0/22" } }), field: "apiserver.endpoint", message: /k8s-node2 \(192\.168\.0\.6, the address of host k8s-node2\) is inside the pod range/ },
  { name: "endpoint inside the cluster domain", mutate: endpoint("https://kubernetes.default.svc.cluster.local:443"), field: "apiserver.endpoint", message: /inside the cluster domain cluster\.local: hosts resolve it only through CoreDNS/ },
  // names
  { name: "endpoint 10.10.0.300 (not a DNS name)", mutate: (i) => ({ ...i, apiserver: { endpoint: "https://10.10.0.300:6443" } }), field: "apiserver.endpoint", message: /all-numeric label/ },
  { name: "endpoint on loopback", mutate: (i) => ({ ...i, apiserver: { endpoint: "https://127.0.0.1:6443" } }), field: "apiserver.endpoint", message: /loopback/ },
  { name: "extra SAN 10.10.0.300", mutate: (i) => ({ ...i, apiserver: { extraSANs: ["10.10.0.300"] } }), field: "apiserver.extraSANs[0]", message: /all-numeric label/ },
  { name: "extra SAN *.-bad-..internal", mutate: (i) => ({ ...i, apiserver: { extraSANs: ["*.-bad-..internal"] } }), field: "apiserver.extraSANs[0]", message: /after "\*\." label "-bad-"/ },
  { name: "wildcard SAN over a top-level domain", mutate: (i) => ({ ...i, apiserver: { extraSANs: ["*.com"] } }), field: "apiserver.extraSANs[0]", message: /at least two labels/ },
  { name: "cluster domain with a 64-character label", mutate: network({ clusterDomain: `${"a".repeat(64)}.local` }), field: "network.clusterDomain", message: /64-character label/ },
  // versions and validity
  { name: "Kubernetes patch release that never existed", mutate: (i) => ({ ...i, kubernetes: { version: "v1.17.18" } }), field: "kubernetes.version", message: /never released \(v1.17 ended at v1.17.17\)/ },
  { name: "kubelet certificates outliving the CA", mutate: (i) => ({ ...i, certificates: { caValidityDays: 365, kubeletValidityDays: 3000, validityDays: 365 } }), field: "certificates.kubeletValidityDays", message: /would outlive the CA/ },
  // YAML 1.1/1.2 coercions where a string lands, and limits (line numbers: the base inventory is 21 lines)
  { name: "label value 1.10 (read as the number 1.1)", bytes: withLabel("sw-version: 1.10"), field: "hosts[0].labels.sw-version", line: 7, message: /got number 1\.1 \(written 1\.10\) — quote it: sw-version: "1\.10" \(unquoted, 1\.10 becomes 1\.1\)/ },
  { name: "label value 0x1F (a hex number)", bytes: withLabel("build: 0x1F"), field: "hosts[0].labels.build", line: 7, message: /written 0x1F\) — quote it: build: "0x1F" \(unquoted, 0x1F becomes 31\)/ },
  { name: "label value 1e3 (an exponent)", bytes: withLabel("batch: 1e3"), field: "hosts[0].labels.batch", line: 7, message: /1e3 becomes 1000/ },
  { name: "label value true (a boolean)", bytes: withLabel("gpu: true"), field: "hosts[0].labels.gpu", line: 7, message: /got boolean true — quote it: gpu: "true"/ },
  { name: "pause image 3.10 (a number)", bytes: append("images:\n  pause: 3.10\n"), field: "images.pause", line: 23, message: /got number 3\.1 \(written 3\.10\) — quote it/ },
  { name: "kubelet flag value 60 unquoted", bytes: append("kubelet:\n  extraArgs:\n    max-pods: 60\n"), field: "kubelet.extraArgs.max-pods", line: 24, message: /got number 60 — quote it: max-pods: "60"/ },
  { name: "cluster name .inf", bytes: (y) => Buffer.from(y.replace("name: test", "name: .inf")), field: "cluster.name", line: 2, message: /got YAML's infinity \.inf/ },
  { name: "apiserver port .nan", bytes: append("network:\n  apiserverPort: .nan\n"), field: "network.apiserverPort", line: 23, message: /got YAML's not-a-number \.nan/ },
  { name: "a value nested 5000 deep", bytes: append(`kubelet:\n  extraArgs:\n    x: ${"[".repeat(5000)}${"]".repeat(5000)}\n`), field: "kubelet.extraArgs.x", line: 24, message: /nests more than 20 levels deep/ },
  { name: "a block nested 50 deep", bytes: append(Array.from({ length: 50 }, (_, i) => `${"  ".repeat(i)}k${i}:`).join("\n") + " v\n"), field: `${Array.from({ length: 21 }, (_, i) => `k${i}`).join(".")}`, line: 42, message: /nests more than 20 levels deep/ },
  { name: "a 1 MB value", bytes: append(`images:\n  coredns: ${"c".repeat(1_000_000)}\n`), field: "images.coredns", line: 23, message: /is 1000000 characters long \(at most 4096\)/ },
  { name: "a 2 MB file", bytes: append(`# ${"#".repeat(2_000_000)}\n`), field: "(file)", message: /an inventory is a few kilobytes/ },
  { name: "a long wrong value is shortened in its message", mutate: image("coredns", `${"x".repeat(400)} --privileged`), field: "images.coredns", message: /^"x{38}…\(413 characters\)…x{25} --privileged" is not an image reference/ },
  { name: "an image reference of 3000 characters (once a regex backtracking stall)", mutate: image("coredns", `${"x".repeat(3000)} --privileged`), field: "images.coredns", message: /is 3013 characters long/ },
  // hidden characters and encodings
  { name: "tab inside the cluster name", mutate: (i) => ({ ...i, cluster: { name: "prod\tx" } }), field: "cluster.name", message: /contains a tab/ },
  { name: "bidi override inside a host name", mutate: set(host0, "name", "node\u202e1"), field: "hosts[0].name", message: /U\+202E/ },
  { name: "byte-order mark inside a key", bytes: (y) => Buffer.from(y.replace("hosts:", "\ufeffhosts:").replace("cluster:", "clu\ufeffster:"), "utf8"), field: "clu\\uFEFFster", message: /byte-order mark/ },
  { name: "Latin-1 bytes", bytes: (y) => Buffer.concat([Buffer.from(y.replace("name: test", "name: t"), "utf8"), Buffer.from("# caf\xe9\n", "latin1")]), field: "(file)", message: /not valid UTF-8 \(byte 0xe9 at line \d+/ },
  { name: "UTF-16 file", bytes: (y) => Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(y, "utf16le")]), field: "(file)", message: /UTF-16 .*UTF-8 only/ },
  { name: "YAML alias bomb", bytes: (y) => Buffer.from(`${y}x0: &a0 [v, v, v, v, v, v, v, v, v, v]\n${Array.from({ length: 8 }, (_, k) => `x${k + 1}: &a${k + 1} [${Array(10).fill(`*a${k}`).join(", ")}]`).join("\n")}\n`), field: `(yaml line ${stringify(baseInventory()).split("\n").length + 2})`, message: /aliases expand too far.*anchor that holds aliases itself, at line \d+/ },
  { name: "unknown YAML tag (!env)", bytes: (y) => Buffer.from(y.replace("name: test", "name: !env CLUSTER_NAME")), field: "(yaml line 2)", message: /tag !env is not supported/ },
];

describe("hostile and mistaken inventories", () => {
  test(`at least 100 cases (${cases.length})`, () => assert.ok(cases.length >= 100));

  for (const c of cases) {
    test(`refused, nothing written: ${c.name}`, async () => {
      const dir = tempDir("binkube-hostile-");
      hostileFiles(dir);
      const file = path.join(dir, "cluster.yaml");
      const yaml = stringify(baseInventory());
      fs.writeFileSync(file, "mutate" in c ? stringify(c.mutate(baseInventory())) : c.bytes(yaml));
      const before = fs.readdirSync(dir).sort();
      const out = path.join(dir, "render-out");
      await assert.rejects(
        async () => {
          const cluster = await openCluster(file, { create: true });
          writeTree(cluster.plan, cluster.binaries, out);
        },
        (e: unknown) => {
          assert.ok(e instanceof InventoryError, `expected InventoryError, got ${String(e)}`);
          const hit = e.issues.find((i) => i.field === c.field && c.message.test(`${i.message} — ${i.fix}`));
          assert.ok(hit, `no issue on ${c.field} matching ${c.message}; got:\n${e.message}`);
          if (c.line !== undefined) assert.equal(hit.line, c.line, `the issue names line ${c.line}`);
          assert.ok(hit.fix.length > 5, "every issue carries a fix");
          assert.doesNotMatch(e.message, /SECRET/, "no credential in the message");
          assert.match(e.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: \\d+ problems?, nothing was written`), "the message names the file");
          return true;
        },
      );
      assert.deepEqual(fs.readdirSync(dir).sort(), before, "nothing was written beside the inventory (no pki/, admin.kubeconfig, .binkube/)");
      assert.ok(!fs.existsSync(out), "no render tree");
    });
  }

  test("the binary index refuses to ship a file from pki/ or .binkube/, whatever validation let through", () => {
    const dir = tempDir("binkube-hostile-");
    hostileFiles(dir);
    const { inventory } = parseInventory(stringify(baseInventory()), path.join(dir, "cluster.yaml"));
    const index = openBinaries(inventory);
    assert.throws(() => index.get(path.join(dir, "pki", "ca.key")), /pki\/ca\.key is under pki\/ .*refusing to ship it/);
    assert.throws(() => index.get(path.join(dir, "images", "ca.tar")), /a link to .*pki\/ca\.key\) under pki\//);
    assert.equal(index.get(path.join(dir, "a", "pause.tar")).present, true, "a file beside the inventory is shipped");
  });

  test("a plain-http URL with a checksum is a warning, not an error", () => {
    const raw = { ...baseInventory(), binaries: { urls: [{ url: "http://mirror.example.invalid/etcd", sha256: "a".repeat(64), name: "etcd" }] } };
    const { warnings } = parseInventory(stringify(raw), "/x/cluster.yaml");
    assert.deepEqual(warnings.map((w) => w.field), ["binaries.urls[0].url"]);
    assert.match(warnings[0]!.message, /plain http: the checksum still guards the content/);
  });

  test("a link-local host address is a warning", () => {
    const raw = baseInventory();
    raw.hosts[0]!.address = "169.254.10.4";
    const { warnings } = parseInventory(stringify(raw), "/x/cluster.yaml");
    assert.deepEqual(warnings.map((w) => w.field), ["hosts[0].address"]);
  });

  test("a leading UTF-8 byte-order mark (as some editors save) is accepted", () => {
    const { inventory } = parseInventory(`\ufeff${stringify(baseInventory())}`, "/x/cluster.yaml");
    assert.equal(inventory.clusterName, "test");
  });

  test("anchors and aliases within the bound are fine", () => {
    const text = `${stringify(baseInventory())}ssh: &s {port: 22}\n`.replace("ssh: &s {port: 22}", "ssh: &s\n  port: 22");
    assert.equal(parseInventory(text, "/x/cluster.yaml").inventory.hosts[0]!.ssh.port, 22);
  });

  test("a private key readable by others is refused (as OpenSSH does)", () => {
    const dir = tempDir("binkube-hostile-");
    const key = path.join(dir, "id_test");
    fs.writeFileSync(key, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o644 });
    fs.chmodSync(key, 0o644);
    assert.throws(() => parseInventory(stringify({ ...baseInventory(), ssh: { privateKey: "id_test" } }), path.join(dir, "cluster.yaml")), (e: unknown) => {
      assert.ok(e instanceof InventoryError);
      assert.match(e.message, /ssh\.privateKey: .*id_test is readable by others \(mode 0644\) — fix: chmod 600/);
      return true;
    });
    fs.chmodSync(key, 0o600);
    assert.doesNotThrow(() => parseInventory(stringify({ ...baseInventory(), ssh: { privateKey: "id_test" } }), path.join(dir, "cluster.yaml")));
  });
});
