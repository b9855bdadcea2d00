// What each host receives: the guide's defects are fixed, secrets go only where needed,
// Handlebars refuses missing data, and the render tree matches the plan.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { parse } from "yaml";
import { Cluster, openCluster } from "../../src/cluster";
import { listTemplates, render, templatesRenderedBy } from "../../src/render/engine";
import { buildPlan, findInstance } from "../../src/plan";
import { bootstrapKubeconfig } from "../../src/pki/kubeconfig";
import { needsRestartFor } from "../../src/steps/etcd";
import { nodeRole } from "../../src/steps/kubelet";
import { LeafSource, loadPki } from "../../src/pki/load";
import { currentLeaf } from "../../src/pki/disk";
import { X509Certificate } from "node:crypto";
import { writeTree } from "../../src/cli/render-tree";
import { tempDir, writeFakeBinaries } from "../helpers/fixtures";
import "../helpers/test-keys";

const EXAMPLES = path.join(__dirname, "..", "..", "examples");

function copyExample(name: string, edit: (text: string) => string = (t) => t): string {
  const dir = tempDir();
  const text = edit(fs.readFileSync(path.join(EXAMPLES, name), "utf8").replace("dir: /opt/binkube/bin", "dir: bin"));
  fs.writeFileSync(path.join(dir, "cluster.yaml"), text);
  writeFakeBinaries(path.join(dir, "bin"));
  return path.join(dir, "cluster.yaml");
}

function file(c: Cluster, step: string, host: string, p: string): string {
  const inst = findInstance(c.plan, step, host);
  assert.ok(inst, `no ${step} on ${host}`);
  const f = inst.files.find((x) => x.path === p);
  assert.ok(f, `${step} on ${host} ships no ${p}`);
  return f.content!;
}

/** Flags of a KUBE_*_OPTS="--a=b \ --c=d" file as a map (repeated flags keep all values). */
function flags(conf: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const match of conf.matchAll(/--([a-z0-9-]+)(?:=([^\s"\\]*))?/g)) m.set(match[1]!, [...(m.get(match[1]!) ?? []), match[2] ?? "true"]);
  return m;
}

describe("rendered files", () => {
  let guide: Cluster;
  let ha: Cluster;
  /** The HA example without its load balancer: every node balances over the masters itself. */
  let haLocal: Cluster;
  before(async () => {
    guide = await openCluster(copyExample("guide-two-hosts.yaml"), { create: true });
    ha = await openCluster(copyExample("ha-three-masters.yaml"), { create: true });
    haLocal = await openCluster(
      copyExample("ha-three-masters.yaml", (t) => t.replace(/^  endpoint: .*\n/m, "")),
      { create: true, pki: { defer: true } },
    );
  });

  test("flannel's install-cni copies the very bytes the kubelet step ships to /etc/cni/net.d (one content, no drift)", () => {
    const manifest = file(guide, "addons", "k8s-master", "/opt/kubernetes/manifests/kube-flannel.yaml");
    const cm = manifest.split(/^---$/m).map((d) => parse(d) as { kind?: string; data?: Record<string, string> }).find((d) => d?.kind === "ConfigMap")!;
    for (const node of ["k8s-master", "k8s-node"]) assert.equal(cm.data!["cni-conf.json"], file(guide, "kubelet", node, "/etc/cni/net.d/10-flannel.conflist"));
  });

  test("flannel and kube-router reach the apiserver as the node's kube-proxy does (the node-local proxy, else the master), not through the kubernetes Service", () => {
    for (const [c, want] of [[guide, ["192.168.0.4", "6443"]], [haLocal, ["127.0.0.1", "6444"]]] as const) {
      const master = c.inv.hosts.find((h) => h.roles.includes("master"))!.name;
      const proxy = file(c, "kube-proxy", c.inv.hosts.find((h) => h.roles.includes("node"))!.name, "/opt/kubernetes/cfg/kube-proxy.kubeconfig");
      assert.match(proxy, new RegExp(`^ +server: https://${want[0]}:${want[1]}$`, "m"));
      for (const [manifest, container] of [["kube-flannel.yaml", "kube-flannel"], ["kube-router.yaml", "kube-router"]]) {
        const ds = file(c, "addons", master, `/opt/kubernetes/manifests/${manifest}`).split(/^---$/m).map((d) => parse(d) as { kind?: string; spec?: { template: { spec: { containers: { name: string; env: { name: string; value?: string }[] }[] } } } }).find((d) => d?.kind === "DaemonSet")!;
        const env = ds.spec!.template.spec.containers.find((x) => x.name === container)!.env;
        const value = (n: string) => env.find((e) => e.name === n)?.value;
        assert.deepEqual([value("KUBERNETES_SERVICE_HOST"), value("KUBERNETES_SERVICE_PORT")], want, `${manifest} of ${c.inv.clusterName}`);
      }
    }
  });

  test("apiserver: every etcd member once, no insecure port, dedicated client certs and SA key", () => {
    const f = flags(file(guide, "apiserver", "k8s-master", "/opt/kubernetes/cfg/kube-apiserver.conf"));
    assert.deepEqual(f.get("etcd-servers"), ["https://192.168.0.4:2379,https://192.168.0.5:2379"]);
    assert.deepEqual(f.get("insecure-port"), ["0"]);
    assert.deepEqual(f.get("etcd-certfile"), ["/opt/kubernetes/ssl/apiserver-etcd-client.pem"]);
    assert.deepEqual(f.get("kubelet-client-certificate"), ["/opt/kubernetes/ssl/apiserver-kubelet-client.pem"]);
    assert.deepEqual(f.get("service-account-key-file"), ["/opt/kubernetes/ssl/sa.pub"]);
    assert.deepEqual(f.get("audit-policy-file"), ["/opt/kubernetes/cfg/audit-policy.yaml"]);
    assert.deepEqual(f.get("authorization-mode"), ["Node,RBAC"]);
    for (const [k, v] of f) assert.equal(v.length, 1, `--${k} appears ${v.length} times`);
    const haFlags = flags(file(ha, "apiserver", "cp2", "/opt/kubernetes/cfg/kube-apiserver.conf"));
    assert.deepEqual(haFlags.get("etcd-servers"), ["https://10.10.0.11:2379,https://10.10.0.12:2379,https://10.10.0.13:2379"]);
    assert.deepEqual(haFlags.get("advertise-address"), ["10.10.0.12"]);
  });

  test("controller-manager and scheduler use kubeconfigs with client certs, not --master", () => {
    for (const [step, conf] of [["controller-manager", "kube-controller-manager"], ["scheduler", "kube-scheduler"]] as const) {
      const f = flags(file(guide, step, "k8s-master", `/opt/kubernetes/cfg/${conf}.conf`));
      assert.ok(!f.has("master"), `${conf} must not use the insecure port`);
      assert.deepEqual(f.get("kubeconfig"), [`/opt/kubernetes/cfg/${conf}.kubeconfig`]);
      assert.deepEqual(f.get("port"), ["0"], "the insecure port is off");
      assert.ok(!f.has("address"), "no insecure bind address (nothing listens there)");
      assert.deepEqual(f.get("bind-address"), ["127.0.0.1"], "the secure port on localhost only");
      const kc = parse(file(guide, step, "k8s-master", `/opt/kubernetes/cfg/${conf}.kubeconfig`));
      assert.ok(kc.users[0].user["client-certificate-data"]);
    }
    const cm = flags(file(guide, "controller-manager", "k8s-master", "/opt/kubernetes/cfg/kube-controller-manager.conf"));
    assert.deepEqual(cm.get("service-account-private-key-file"), ["/opt/kubernetes/ssl/sa.key"]);
    assert.deepEqual(cm.get("cluster-cidr"), ["10.244.0.0/16"]);
  });

  test("kube-proxy: clusterCIDR is the pod range; metrics on localhost", () => {
    const cfg = parse(file(guide, "kube-proxy", "k8s-node", "/opt/kubernetes/cfg/kube-proxy-config.yml"));
    assert.equal(cfg.clusterCIDR, "10.244.0.0/16");
    assert.equal(cfg.hostnameOverride, "k8s-node");
    assert.equal(cfg.metricsBindAddress, "127.0.0.1:10249");
    assert.equal(cfg.kind, "KubeProxyConfiguration");
  });

  test("kubelet: read-only port off, webhook auth, real pause image, only v1beta1 fields", () => {
    const cfg = parse(file(guide, "kubelet", "k8s-node", "/opt/kubernetes/cfg/kubelet-config.yml"));
    assert.equal(cfg.readOnlyPort, 0);
    assert.equal(cfg.authentication.anonymous.enabled, false);
    assert.equal(cfg.authorization.mode, "Webhook");
    assert.deepEqual(cfg.clusterDNS, ["10.0.0.2"]);
    assert.equal(cfg.failSwapOn, true);
    assert.equal(cfg.protectKernelDefaults, true);
    // a faster status tick, and the report frequency at its default (set beside the tick, v1.17
    // would default it to the tick: a full node status every 4 s)
    assert.equal(cfg.nodeStatusUpdateFrequency, "4s");
    assert.equal(cfg.nodeStatusReportFrequency, "5m0s");
    assert.equal(cfg.tlsCertFile, "/opt/kubernetes/ssl/kubelet-server.pem");
    assert.ok(cfg.tlsCipherSuites.length >= 3 && cfg.tlsCipherSuites.every((c: string) => /^TLS_ECDHE_(RSA|ECDSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305)$/.test(c)));
    // kubelet v1.17 decodes this file strictly: an unknown field is fatal.
    const v1beta1 = new Set(["kind", "apiVersion", "address", "port", "readOnlyPort", "healthzBindAddress", "healthzPort", "cgroupDriver", "clusterDNS", "clusterDomain", "failSwapOn", "rotateCertificates", "nodeStatusUpdateFrequency", "nodeStatusReportFrequency", "tlsCertFile", "tlsPrivateKeyFile", "tlsCipherSuites", "protectKernelDefaults", "authentication", "authorization", "evictionHard", "maxOpenFiles", "maxPods"]);
    for (const k of Object.keys(cfg)) assert.ok(v1beta1.has(k), `unexpected kubelet config field ${k}`);
    const f = flags(file(guide, "kubelet", "k8s-node", "/opt/kubernetes/cfg/kubelet.conf"));
    assert.deepEqual(f.get("hostname-override"), ["k8s-node"]);
    assert.deepEqual(f.get("node-ip"), ["192.168.0.5"]);
    assert.deepEqual(f.get("pod-infra-container-image"), ["k8s.gcr.io/pause:3.1"]);
    const labels = flags(file(ha, "kubelet", "worker3", "/opt/kubernetes/cfg/kubelet.conf")).get("node-labels");
    assert.deepEqual(labels, ["disktype=ssd"]);
  });

  test("kubelet and kube-proxy kubeconfigs point at the external endpoint when there is one", () => {
    const boot = parse(bootstrapKubeconfig(ha.inv, ha.pki.cas.ca.certPem, "abcdef.0123456789abcdef"));
    assert.equal(boot.clusters[0].cluster.server, "https://10.10.0.100:6443");
    assert.equal(boot.users[0].name, "kubelet-bootstrap");
    assert.equal(boot.users[0].user.token, "abcdef.0123456789abcdef");
    // no static token is shipped: the kubelet step makes one per join, the apiserver reads them from Secrets
    assert.equal(findInstance(ha.plan, "kubelet", "worker1")!.files.find((f) => f.path.endsWith("bootstrap.kubeconfig")), undefined);
    const api = flags(file(ha, "apiserver", "cp1", "/opt/kubernetes/cfg/kube-apiserver.conf"));
    assert.deepEqual(api.get("enable-bootstrap-token-auth"), ["true"]);
    assert.equal(api.get("token-auth-file"), undefined);
    const proxy = parse(file(guide, "kube-proxy", "k8s-node", "/opt/kubernetes/cfg/kube-proxy.kubeconfig"));
    assert.equal(proxy.clusters[0].cluster.server, "https://192.168.0.4:6443");
  });

  test("etcd: mutual TLS for clients and peers, separate peer certificate, all members listed", () => {
    const conf = file(guide, "etcd", "k8s-node", "/opt/etcd/cfg/etcd.conf");
    assert.match(conf, /ETCD_CLIENT_CERT_AUTH="true"/);
    assert.match(conf, /ETCD_PEER_CLIENT_CERT_AUTH="true"/);
    assert.match(conf, /ETCD_PEER_CERT_FILE="\/opt\/etcd\/ssl\/peer.pem"/);
    assert.match(conf, /ETCD_INITIAL_CLUSTER="k8s-master=https:\/\/192.168.0.4:2380,k8s-node=https:\/\/192.168.0.5:2380"/);
    assert.match(conf, /ETCD_NAME="k8s-node"/);
    const unit = file(guide, "etcd", "k8s-node", "/usr/lib/systemd/system/etcd.service");
    assert.match(unit, /^ExecStart=\/opt\/etcd\/bin\/etcd$/m, "settings only in the env file (etcd rejects flag + env duplicates)");
  });

  test("etcd: a member whose config changed only in the bootstrap peer list is not restarted; any other change restarts it", async () => {
    // the guide's two members, then a third one added to the same inventory
    const file3 = copyExample("guide-two-hosts.yaml");
    const text = fs.readFileSync(file3, "utf8");
    const grown = text.replace(/(hosts:\n)/, "$1  - name: k8s-etcd3\n    address: 192.168.0.9\n    roles: [etcd]\n");
    assert.notEqual(grown, text);
    fs.writeFileSync(file3, grown);
    const three = await openCluster(file3, { create: true });
    const before = file(guide, "etcd", "k8s-master", "/opt/etcd/cfg/etcd.conf");
    const after = file(three, "etcd", "k8s-master", "/opt/etcd/cfg/etcd.conf");
    assert.notEqual(before, after, "the peer list changed");
    assert.equal(needsRestartFor(before, after), false);
    assert.equal(needsRestartFor(before, before.replace('ETCD_LOGGER="zap"', 'ETCD_LOGGER="capnslog"')), true);
    assert.equal(needsRestartFor(before, before.replace(/ETCD_INITIAL_CLUSTER_STATE="new"/, 'ETCD_INITIAL_CLUSTER_STATE="existing"')), true);
    assert.equal(needsRestartFor("", after), true, "no readable old config: restart");
  });

  test("docker: no third-party registry mirror, cgroup driver matches the kubelet", () => {
    const d = JSON.parse(file(guide, "runtime", "k8s-node", "/etc/docker/daemon.json"));
    assert.equal(d["registry-mirrors"], undefined);
    assert.deepEqual(d["exec-opts"], ["native.cgroupdriver=cgroupfs"]);
    const cfg = parse(file(guide, "kubelet", "k8s-node", "/opt/kubernetes/cfg/kubelet-config.yml"));
    assert.equal(cfg.cgroupDriver, "cgroupfs");
  });

  test("addons: flannel on the pod range, CoreDNS on the cluster DNS address", () => {
    const docs = (t: string) => t.split(/^---$/m).map((d) => parse(d)).filter(Boolean);
    const flannel = docs(file(guide, "addons", "k8s-master", "/opt/kubernetes/manifests/kube-flannel.yaml"));
    const cm = flannel.find((d) => d.kind === "ConfigMap");
    assert.equal(JSON.parse(cm.data["net-conf.json"]).Network, "10.244.0.0/16");
    const dns = docs(file(guide, "addons", "k8s-master", "/opt/kubernetes/manifests/coredns.yaml"));
    assert.equal(dns.find((d) => d.kind === "Service").spec.clusterIP, "10.0.0.2");
    assert.match(dns.find((d) => d.kind === "ConfigMap").data.Corefile, /kubernetes cluster\.local in-addr\.arpa/);
    const rbac = docs(file(guide, "bootstrap", "k8s-master", "/opt/kubernetes/manifests/bootstrap-rbac.yaml"));
    const roles = rbac.filter((d) => d.kind === "ClusterRoleBinding").map((d) => d.roleRef.name);
    assert.ok(roles.includes("system:certificates.k8s.io:certificatesigningrequests:nodeclient"));
    assert.ok(roles.includes("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"));
    assert.equal(rbac.find((d) => d.metadata.name === "system:kube-apiserver").subjects[0].name, "kube-apiserver-kubelet-client");
  });

  test("metrics-server: an APIService that verifies it (caBundle = the cluster CA, no insecureSkipTLSVerify), kubelets verified against the same CA, its key only in a 0600 secret file", async () => {
    const inst = findInstance(guide.plan, "addons", "k8s-master")!;
    const f = inst.files.find((x) => x.path === "/opt/kubernetes/manifests/metrics-server.yaml")!;
    assert.equal(f.mode, 0o600);
    assert.equal(f.secret, true);
    const docs = f.content!.split(/^---$/m).map((d) => parse(d)).filter(Boolean);
    const api = docs.find((d) => d.kind === "APIService");
    assert.equal(Buffer.from(api.spec.caBundle, "base64").toString(), guide.pki.cas.ca.certPem);
    assert.equal(api.spec.insecureSkipTLSVerify, undefined);
    const tls = docs.find((d) => d.kind === "Secret");
    const serving = currentLeaf(guide.pki.dir, "metrics-server")!;
    assert.equal(tls.stringData["tls.crt"], serving.certPem);
    assert.equal(tls.stringData["tls.key"], serving.keyPem);
    const container = docs.find((d) => d.kind === "Deployment").spec.template.spec.containers[0];
    assert.ok(container.args.includes("--kubelet-certificate-authority=/etc/metrics-server/ca.crt"));
    assert.ok(!container.args.some((a: string) => /insecure/.test(a)), container.args.join(" "));
    assert.equal(container.image, "k8s.gcr.io/metrics-server/metrics-server:v0.4.4");
    for (const d of docs) assert.equal(d.metadata.labels["k8s-app"], "metrics-server", `${d.kind} ${d.metadata.name} lacks the label the off switch deletes by`);
    // the serving certificate names the Service's DNS names
    assert.equal(new X509Certificate(serving.certPem).subjectAltName, "DNS:metrics-server.kube-system.svc, DNS:metrics-server.kube-system, DNS:metrics-server");
    // addons.metricsServer: false ships no manifest and issues no certificate
    const offFile = copyExample("guide-two-hosts.yaml");
    fs.appendFileSync(offFile, "addons:\n  metricsServer: false\n");
    const off = await openCluster(offFile, { create: true });
    assert.equal(findInstance(off.plan, "addons", "k8s-master")!.files.some((x) => x.path.endsWith("metrics-server.yaml")), false);
    assert.equal(currentLeaf(off.pki.dir, "metrics-server"), undefined);
  });

  test("addons.networkPolicy: on ships kube-router as a firewall only, with the cluster's ranges and read-only RBAC; off ships its cleanup instead", async () => {
    const on = findInstance(guide.plan, "addons", "k8s-master")!;
    const f = on.files.find((x) => x.path === "/opt/kubernetes/manifests/kube-router.yaml")!;
    assert.ok(f, "on by default");
    assert.ok(!on.files.some((x) => x.path.endsWith("kube-router-cleanup.yaml")));
    const docs = f.content!.split(/^---$/m).map((d) => parse(d)).filter(Boolean);
    const args: string[] = docs.find((d) => d.kind === "DaemonSet").spec.template.spec.containers[0].args;
    for (const a of ["--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--health-port=0", "--netpol-default-deny=true", `--service-cluster-ip-range=${guide.inv.network.serviceCIDR}`, `--service-node-port-range=${guide.inv.network.nodePortRange}`]) assert.ok(args.includes(a), a);
    const verbs = docs.find((d) => d.kind === "ClusterRole").rules.flatMap((r: { verbs: string[] }) => r.verbs);
    assert.deepEqual([...new Set(verbs)].sort(), ["get", "list", "watch"], "it writes nothing in the API");
    for (const d of docs) assert.equal(d.metadata.labels["k8s-app"], "kube-router", `${d.kind} lacks the label the off switch deletes by`);
    const offFile = copyExample("guide-two-hosts.yaml");
    fs.appendFileSync(offFile, "addons:\n  networkPolicy: false\n");
    const off = await openCluster(offFile, { create: true });
    const offFiles = findInstance(off.plan, "addons", "k8s-master")!.files;
    assert.ok(!offFiles.some((x) => x.path.endsWith("/kube-router.yaml")));
    const cleanup = parse(offFiles.find((x) => x.path.endsWith("/kube-router-cleanup.yaml"))!.content!);
    const init = cleanup.spec.template.spec.initContainers[0];
    assert.deepEqual(init.command, ["/usr/local/bin/kube-router", "--cleanup-config"]);
    assert.equal(init.image, off.inv.images.kubeRouter);
    assert.equal(cleanup.spec.template.spec.automountServiceAccountToken, false, "the cleanup needs no API access");
  });

  test("a node-only host receives no CA key, SA key, token file, apiserver key or etcd key", () => {
    for (const host of ["worker1", "worker2", "worker3"]) {
      const paths = ha.plan.instances.filter((i) => i.host.name === host).flatMap((i) => i.files.filter((f) => f.secret).map((f) => f.path));
      assert.deepEqual(paths.sort(), ["/opt/kubernetes/cfg/kube-proxy.kubeconfig", "/opt/kubernetes/ssl/kubelet-server-key.pem"], host);
      // its own kubelet serving key only
      const own = ha.plan.instances.find((i) => i.step === "kubelet" && i.host.name === host)!.files.find((f) => f.path.endsWith("kubelet-server-key.pem"))!.content!;
      for (const other of ["worker1", "worker2", "worker3"].filter((h) => h !== host)) assert.notEqual(own, ha.plan.instances.find((i) => i.step === "kubelet" && i.host.name === other)!.files.find((f) => f.path.endsWith("kubelet-server-key.pem"))!.content);
      const all = ha.plan.instances.filter((i) => i.host.name === host).flatMap((i) => i.files.map((f) => f.content ?? ""));
      for (const ca of Object.values(ha.pki.cas)) assert.ok(!all.some((c) => c.includes(ca.keyPem.split("\n")[1]!)), `${host} has a CA key`);
      assert.ok(!all.some((c) => c.includes(ha.pki.serviceAccount.privateKeyPem.split("\n")[1]!)));
    }
  });

  test("a master that is not a node still runs docker, kubelet and kube-proxy (its apiserver must reach Service and pod IPs), joined tainted NoSchedule", () => {
    for (const host of ["cp1", "cp2", "cp3"]) {
      for (const step of ["runtime", "kubelet", "kube-proxy"]) assert.ok(findInstance(ha.plan, step, host), `${step} on ${host}`);
      const h = ha.inv.hosts.find((x) => x.name === host)!;
      assert.deepEqual(nodeRole({ host: h, inv: ha.inv }), { role: "master", taint: true });
    }
    // a master that is also a node stays schedulable unless kubelet.taintMasters says otherwise
    const m = guide.inv.hosts.find((x) => x.roles.includes("master"))!;
    assert.deepEqual(nodeRole({ host: m, inv: guide.inv }), { role: "master", taint: false });
    assert.deepEqual(nodeRole({ host: ha.inv.hosts.find((x) => x.name === "worker1")!, inv: ha.inv }), { role: "node", taint: false });
  });

  test("apiserver.anonymousAuth: false adds --anonymous-auth=false; the default leaves anonymous requests to RBAC", () => {
    const data = { etcdServers: "https://1.2.3.4:2379", address: "1.2.3.4", apiserverPort: 6443, serviceCIDR: "10.0.0.0/24", nodePortRange: "30000-32767", cipherSuites: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", auditLog: "/opt/kubernetes/logs/k8s-audit.log" };
    assert.deepEqual(flags(render("kube-apiserver/kube-apiserver.conf", { ...data, anonymousAuth: false })).get("anonymous-auth"), ["false"]);
    assert.equal(flags(render("kube-apiserver/kube-apiserver.conf", { ...data, anonymousAuth: true })).get("anonymous-auth"), undefined);
    assert.equal(flags(file(guide, "apiserver", "k8s-master", "/opt/kubernetes/cfg/kube-apiserver.conf")).get("anonymous-auth"), undefined);
  });

  test("handlebars: strict and validated — a missing value is an error, never an empty string", () => {
    assert.throws(() => render("etcd/etcd.conf", { name: "x" }), /"etcdVersion" not defined|missing/);
    assert.throws(() => render("kubelet/kubelet.conf", { name: "a", address: "1.2.3.4", pauseImage: "p", nodeLabels: undefined, extraArgs: {} }), /value "nodeLabels" is missing/);
  });

  test("the HA example behind its load balancer has no node-local proxy; without the load balancer every kubelet host gets one, listing the three masters", () => {
    assert.ok(!ha.plan.instances.some((i) => i.step === "apiserver-proxy"));
    const hosts = haLocal.plan.instances.filter((i) => i.step === "apiserver-proxy").map((i) => i.host.name);
    assert.deepEqual(hosts, ["cp1", "cp2", "cp3", "worker1", "worker2", "worker3"]);
    const cfg = file(haLocal, "apiserver-proxy", "worker3", "/opt/kubernetes/cfg/apiserver-proxy.cfg");
    assert.deepEqual(cfg.match(/^    server .*$/gm), ["    server cp1 10.10.0.11:6443", "    server cp2 10.10.0.12:6443", "    server cp3 10.10.0.13:6443"]);
  });

  test("addons: a first deploy applies them while the nodes join; once applied, they wait for every kube-proxy (a changed manifest rolls after the nodes)", () => {
    const ctx = { inv: guide.inv, pki: loadPki(guide.inv), binaries: guide.binaries, gone: [], leafIdentity: new LeafSource(guide.inv.pkiDir).identity };
    const proxies = guide.plan.instances.filter((i) => i.step === "kube-proxy").map((i) => i.id).sort();
    assert.equal(proxies.length, 2);
    const first = findInstance(buildPlan(ctx), "addons")!;
    assert.equal(first.firstBringUp, true);
    assert.deepEqual(first.dependsOn.filter((d) => proxies.includes(d) || d.startsWith("kubelet_")), []);
    assert.ok(first.dependsOn.includes("bootstrap") && first.dependsOn.includes("controller_manager_k8s_master"), first.dependsOn.join(" "));
    const later = findInstance(buildPlan(ctx, { applied: new Map([["addons", []]]) }), "addons")!;
    assert.equal(later.firstBringUp, false);
    assert.deepEqual(later.dependsOn.filter((d) => proxies.includes(d)).sort(), proxies);
    // the edge is not a trigger: the resource is not replaced when it comes back
    assert.equal(later.hash, first.hash);
  });

  test("every template is used by some step", async () => {
    // addons.networkPolicy: false is the only way its cleanup manifest is shipped; containerd's
    // templates are only rendered with runtime: containerd
    const offFile = copyExample("guide-two-hosts.yaml");
    fs.appendFileSync(offFile, "addons:\n  networkPolicy: false\nruntime: containerd\n");
    const policyOff = await openCluster(offFile, { create: true });
    // the steps' own renders of these clusters, not what other tests rendered directly
    const used = templatesRenderedBy(() => {
      // leaves as triggers see them: haLocal's are still pending (pki.defer)
      for (const c of [guide, ha, haLocal, policyOff]) buildPlan({ inv: c.inv, pki: loadPki(c.inv), binaries: c.binaries, gone: [], leafIdentity: new LeafSource(c.inv.pkiDir).identity });
    });
    for (const t of listTemplates()) assert.ok(used.includes(t), `template ${t} is never rendered by a step`);
  });

  test("render --out writes the tree with file modes, secrets 0600, binaries linked", () => {
    const out = tempDir();
    const s = writeTree(guide.plan, guide.binaries, out);
    assert.equal(s.hosts, 2);
    assert.deepEqual(s.binariesMissing, []);
    const st = (p: string) => fs.statSync(path.join(out, p)).mode & 0o777;
    assert.equal(st("k8s-master/opt/kubernetes/ssl/ca-key.pem"), 0o600);
    assert.equal(st("k8s-master/opt/kubernetes/ssl/apiserver-key.pem"), 0o600);
    assert.equal(st("k8s-master/opt/kubernetes/ssl/ca.pem"), 0o644);
    assert.ok(fs.lstatSync(path.join(out, "k8s-node/opt/kubernetes/bin/kubelet")).isSymbolicLink());
    assert.ok(!fs.existsSync(path.join(out, "k8s-node/opt/kubernetes/ssl/ca-key.pem")));
    assert.ok(!fs.existsSync(path.join(out, "k8s-node/opt/kubernetes/ssl/apiserver-key.pem")));
  });
});
