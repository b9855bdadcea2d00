// The node-local apiserver proxy: when it is on, what every kubelet host receives (haproxy.cfg to
// the byte, the unit, the libraries, its own health-check certificate), where every kubeconfig
// points, the plan's edges, and, with Debian's haproxy from the fixture cache, the rendered
// configuration run for real against two TLS apiservers of this test.
import assert from "node:assert/strict";
import { ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as https from "node:https";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { after, before, describe, test } from "node:test";
import { parse } from "yaml";
import { Cluster, adminKubeconfigPath, openCluster } from "../../src/cluster";
import { parseInventory } from "../../src/inventory/load";
import { NODE_LOCAL_PROXY_PORT } from "../../src/inventory/types";
import { findInstance } from "../../src/plan";
import { versionProblem } from "../../src/binaries/release";
import { bootstrapKubeconfig } from "../../src/pki/kubeconfig";
import { proxyConfig } from "../../src/steps/apiserver-proxy";
import { PROXY, PROXY_CHECK, parseServerStates, proxyCli, proxyFailureWindowMs, serving } from "../../src/steps/node-proxy";
import { pointKubeconfigAt } from "../../src/steps/kubelet";
import { stepLines } from "../../src/log";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";
import type { RawInventory } from "../helpers/fixtures";

const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** Two masters (no endpoint), one etcd + node, one node: the layout. */
function twoMasters(): RawInventory {
  return {
    cluster: { name: "ha" },
    hosts: [
      { name: "m1", address: "192.168.0.11", roles: ["etcd", "master"] },
      { name: "m2", address: "192.168.0.12", roles: ["etcd", "master"] },
      { name: "n1", address: "192.168.0.21", roles: ["etcd", "node"] },
      { name: "n2", address: "192.168.0.22", roles: ["node"] },
    ],
    binaries: { dir: "bin" },
  };
}

const load = (raw: unknown) => parseInventory(JSON.stringify(raw), path.join(tempDir(), "cluster.yaml"));

/** `defer`: triggers only (no key is made: much faster). */
async function openTwoMasters(edit: (raw: RawInventory) => void = () => undefined, defer = false): Promise<Cluster> {
  const dir = tempDir("binkube-proxy-");
  const raw = twoMasters();
  edit(raw);
  writeFakeBinaries(path.join(dir, "bin"));
  return openCluster(writeInventory(dir, raw), { create: true, pki: { defer } });
}
/** One cluster with every key made, shared by the tests that read certificates. */
let shared: Promise<Cluster> | undefined;
const issuedTwoMasters = () => (shared ??= openTwoMasters());

function shipped(c: Cluster, step: string, host: string, p: string): string {
  const inst = findInstance(c.plan, step, host);
  assert.ok(inst, `no ${step} on ${host}`);
  const f = inst.files.find((x) => x.path === p);
  assert.ok(f, `${step} on ${host} ships no ${p}`);
  return f.content!;
}

const serverOf = (kubeconfig: string) => (parse(kubeconfig) as { clusters: { cluster: { server: string } }[] }).clusters.map((c) => c.cluster.server);

describe("inventory: when the node-local proxy is on", () => {
  test("several masters and no endpoint: on, and the single-master warning is gone", () => {
    const { inventory, warnings } = load(twoMasters());
    assert.equal(inventory.apiserver.nodeLocalProxy, true);
    assert.deepEqual(warnings, []);
  });

  test("one master and no endpoint: off (nothing to balance); an endpoint: off, the endpoint is used", () => {
    assert.equal(load(baseInventory()).inventory.apiserver.nodeLocalProxy, false);
    const vip = { ...twoMasters(), apiserver: { endpoint: "https://192.168.0.100:6443" } };
    const { inventory, warnings } = load(vip);
    assert.equal(inventory.apiserver.nodeLocalProxy, false);
    assert.deepEqual(warnings, []);
  });

  test("apiserver.nodeLocalProxy forces it either way; false with several masters and no endpoint warns", () => {
    assert.equal(load({ ...baseInventory(), apiserver: { nodeLocalProxy: true } }).inventory.apiserver.nodeLocalProxy, true);
    assert.equal(load({ ...twoMasters(), apiserver: { endpoint: "https://192.168.0.100:6443", nodeLocalProxy: true } }).inventory.apiserver.nodeLocalProxy, true);
    const off = load({ ...twoMasters(), apiserver: { nodeLocalProxy: false } });
    assert.equal(off.inventory.apiserver.nodeLocalProxy, false);
    assert.equal(off.warnings.length, 1);
    assert.equal(off.warnings[0]!.field, "apiserver.nodeLocalProxy");
    assert.match(off.warnings[0]!.message, /is false with 2 masters and no endpoint: kubelets, kube-proxy and admin.kubeconfig talk to m1 only/);
  });

  test("a value that is not a boolean, and ports that would collide with the proxy's, are errors", () => {
    assert.throws(() => load({ ...twoMasters(), apiserver: { nodeLocalProxy: "yes" } }), /apiserver\.nodeLocalProxy/);
    assert.throws(() => load({ ...twoMasters(), network: { apiserverPort: NODE_LOCAL_PROXY_PORT } }), /network\.apiserverPort: 6444 is the port of the node-local apiserver proxy/);
    assert.throws(() => load({ ...twoMasters(), network: { nodePortRange: "6444-7000" } }), /network\.nodePortRange: 6444-7000 contains 6444, the port of the node-local apiserver proxy/);
    // the same ports are fine with the proxy off
    assert.equal(load({ ...baseInventory(), network: { nodePortRange: "6444-7000" } }).inventory.network.nodePortRange, "6444-7000");
  });
});

describe("what the hosts receive with the proxy on", () => {
  let c: Cluster;
  before(async () => {
    c = await issuedTwoMasters();
  });

  test("haproxy.cfg, byte for byte: loopback only, TCP passthrough, every master, authenticated /readyz checks", () => {
    const want = `# The node-local apiserver proxy (binkube, docs/apiserver-proxy.md): kubelet and kube-proxy on
# this host reach every master through 127.0.0.1. TCP passthrough: TLS stays end to end between
# the clients and the apiservers; haproxy only checks each apiserver's /readyz itself.
global
    # Server state changes and errors only, to the journal (connections are not logged).
    log stderr format short local0 notice
    # A few clients per node (kubelet, kube-proxy, host-network pods): one thread is plenty.
    nbthread 1
    maxconn 2000
    # Root's only (the directory is 0700): it can take an apiserver out of rotation (remove step).
    stats socket /run/apiserver-proxy/admin.sock mode 600 level admin expose-fd listeners
    # A reload's old worker keeps serving its connections until they end, at most this long: the
    # longest an apiserver keeps a watch open (2 x --min-request-timeout, 1800 s by default).
    hard-stop-after 1h

defaults
    log global
    mode tcp
    timeout connect 1000ms
    # Watches are quiet for minutes; the apiserver ends each within an hour.
    timeout client 1h
    timeout server 1h
    # A connection that failed to connect is tried again on another apiserver.
    retries 3
    option redispatch 1
    option tcpka

frontend apiserver
    bind 127.0.0.1:6444
    default_backend kube-apiservers

backend kube-apiservers
    # Long-lived connections (watches): spread by count, not by turn.
    balance leastconn
    # /readyz (v1.17): 200 once the apiserver serves (etcd reachable, informers synced), failing
    # again as soon as it begins to shut down. Authenticated with this host's own certificate.
    option httpchk GET /readyz
    http-check expect status 200
    # A check connects within the interval (haproxy's cap), then may wait 5000 ms for the answer:
    # a dead master (no connection) is told quickly from a busy one (connected, answering late),
    # which a 1 s limit took out of rotation in the lab, both masters at once, during a deploy.
    timeout check 5000ms
    # A check every 1000 ms; 2 failures in a row take an apiserver out, 2 passes bring
    # it back. Connections to one marked down are closed at once, so their clients reconnect
    # through a healthy one instead of waiting on a dead peer.
    default-server check check-ssl verify required ca-file /opt/kubernetes/ssl/ca.pem crt /opt/kubernetes/ssl/apiserver-proxy-client.pem verifyhost kubernetes inter 1000ms fall 2 rise 2 on-marked-down shutdown-sessions
    server m1 192.168.0.11:6443
    server m2 192.168.0.12:6443
`;
    for (const host of ["m1", "m2", "n1", "n2"]) assert.equal(shipped(c, "apiserver-proxy", host, PROXY.config), want, host);
  });

  test("the unit points the loader at the private library directory, checks the config before a start or reload, and reloads with USR2 (master-worker)", () => {
    const svc = shipped(c, "apiserver-proxy", "n1", "/usr/lib/systemd/system/apiserver-proxy.service");
    assert.match(svc, /^Environment=LD_LIBRARY_PATH=\/opt\/apiserver-proxy\/lib$/m);
    assert.match(svc, /^ExecStartPre=\/opt\/apiserver-proxy\/bin\/haproxy -c -q -f \/opt\/kubernetes\/cfg\/apiserver-proxy\.cfg$/m);
    assert.match(svc, /^ExecStart=\/opt\/apiserver-proxy\/bin\/haproxy -Ws -f \/opt\/kubernetes\/cfg\/apiserver-proxy\.cfg$/m);
    assert.deepEqual(svc.match(/^ExecReload=.*$/gm), ["ExecReload=/opt/apiserver-proxy/bin/haproxy -c -q -f /opt/kubernetes/cfg/apiserver-proxy.cfg", "ExecReload=/bin/kill -USR2 $MAINPID"]);
    assert.match(svc, /^Type=notify$/m);
    assert.match(svc, /^RuntimeDirectory=apiserver-proxy$/m);
    assert.match(svc, /^RuntimeDirectoryMode=0700$/m);
    assert.match(svc, /^CapabilityBoundingSet=$/m);
  });

  test("the step ships haproxy, every library of binaries haproxy/ (0644) into its own directory, the CA and a key+certificate file of the host's own (0600)", () => {
    const inst = findInstance(c.plan, "apiserver-proxy", "n2")!;
    const byPath = new Map(inst.files.map((f) => [f.path, f]));
    assert.equal(byPath.get("/opt/apiserver-proxy/bin/haproxy")?.binary, "haproxy/haproxy");
    for (const lib of ["liblua5.3.so.0", "libopentracing-c-wrapper.so.0", "libopentracing.so.1"]) {
      const f = byPath.get(`/opt/apiserver-proxy/lib/${lib}`);
      assert.equal(f?.binary, `haproxy/${lib}`, lib);
      assert.equal(f?.mode, 0o644, lib);
    }
    const client = byPath.get(PROXY.clientCert)!;
    assert.equal(client.mode, 0o600);
    assert.equal(client.secret, true);
    assert.match(client.content!, /^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\r?\n-----BEGIN (RSA )?PRIVATE KEY-----[\s\S]+-----END (RSA )?PRIVATE KEY-----\r?\n$/);
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, "client.pem"), client.content!);
    assert.match(openssl("x509", "-in", path.join(dir, "client.pem"), "-noout", "-subject"), /^subject=CN ?= ?system:binkube:apiserver-proxy:n2$/m);
    // the key in the file is the certificate's
    const mod = (kind: "x509" | "rsa") => openssl(kind, "-in", path.join(dir, "client.pem"), "-noout", "-modulus");
    assert.equal(mod("rsa"), mod("x509"));
    assert.equal(shipped(c, "apiserver-proxy", "n2", PROXY.ca), fs.readFileSync(path.join(c.inv.pkiDir, "ca.crt"), "utf8"));
    assert.deepEqual(
      c.plan.instances.filter((i) => i.step === "apiserver-proxy").map((i) => i.host.name),
      ["m1", "m2", "n1", "n2"],
      "every host that runs a kubelet, masters included",
    );
  });

  test("the health-check certificate: a client certificate of the cluster CA, in no group (openssl)", () => {
    const crt = path.join(c.inv.pkiDir, "apiserver-proxy-n1.crt");
    assert.match(openssl("verify", "-x509_strict", "-CAfile", path.join(c.inv.pkiDir, "ca.crt"), crt), /: OK/);
    const text = openssl("x509", "-in", crt, "-noout", "-text");
    assert.match(text, /Subject: CN ?= ?system:binkube:apiserver-proxy:n1\n/);
    assert.doesNotMatch(text, /Subject:.*O ?=/);
    assert.match(text, /X509v3 Extended Key Usage: (critical)?\s*\n\s*TLS Web Client Authentication\n/);
  });

  test("the apiserver certificate names 127.0.0.1 (kubelets dial the proxy on loopback with TLS passthrough) and 'kubernetes' (the checks' verifyhost) (openssl)", () => {
    const text = openssl("x509", "-in", path.join(c.inv.pkiDir, "apiserver.crt"), "-noout", "-text");
    const sans = /X509v3 Subject Alternative Name: *\n\s*(.*)\n/.exec(text)?.[1] ?? "";
    assert.ok(sans.split(", ").includes("IP Address:127.0.0.1"), sans);
    assert.ok(sans.split(", ").includes("DNS:kubernetes"), sans);
    for (const a of ["192.168.0.11", "192.168.0.12"]) assert.ok(sans.split(", ").includes(`IP Address:${a}`), sans);
  });

  test("kubeconfigs: kubelet bootstrap and kube-proxy dial the proxy; controller-manager and scheduler their own master; admin.kubeconfig one context per master", () => {
    assert.deepEqual(serverOf(bootstrapKubeconfig(c.inv, "CA", "abcdef.0123456789abcdef")), ["https://127.0.0.1:6444"]);
    for (const h of ["m1", "n2"]) assert.deepEqual(serverOf(shipped(c, "kube-proxy", h, "/opt/kubernetes/cfg/kube-proxy.kubeconfig")), ["https://127.0.0.1:6444"], h);
    assert.deepEqual(serverOf(shipped(c, "controller-manager", "m2", "/opt/kubernetes/cfg/kube-controller-manager.kubeconfig")), ["https://192.168.0.12:6443"]);
    assert.deepEqual(serverOf(shipped(c, "scheduler", "m2", "/opt/kubernetes/cfg/kube-scheduler.kubeconfig")), ["https://192.168.0.12:6443"]);
    assert.deepEqual(serverOf(shipped(c, "apiserver", "m2", "/opt/kubernetes/cfg/admin.kubeconfig")), ["https://192.168.0.12:6443"]);
    const admin = parse(fs.readFileSync(adminKubeconfigPath(c.inv), "utf8")) as { clusters: { name: string; cluster: { server: string } }[]; contexts: { name: string; context: { cluster: string; user: string } }[]; "current-context": string };
    assert.deepEqual(admin.clusters.map((x) => [x.name, x.cluster.server]), [["ha", "https://192.168.0.11:6443"], ["via-m1", "https://192.168.0.11:6443"], ["via-m2", "https://192.168.0.12:6443"]]);
    assert.deepEqual(admin.contexts.map((x) => [x.name, x.context.cluster, x.context.user]), [["admin@ha", "ha", "admin"], ["via-m1", "via-m1", "admin"], ["via-m2", "via-m2", "admin"]]);
    assert.equal(admin["current-context"], "admin@ha");
  });

  test("plan edges: each proxy after its host's prepare and every apiserver; kubelet and kube-proxy after their host's proxy", () => {
    const deps = (id: string) => [...(c.plan.instances.find((i) => i.id === id)?.dependsOn ?? [])].sort();
    for (const h of ["m1", "m2", "n1", "n2"]) {
      assert.deepEqual(deps(`apiserver_proxy_${h}`), ["apiserver_m1", "apiserver_m2", `prepare_${h}`], h);
      assert.ok(deps(`kubelet_${h}`).includes(`apiserver_proxy_${h}`), `kubelet_${h}`);
      assert.ok(deps(`kube_proxy_${h}`).includes(`apiserver_proxy_${h}`), `kube_proxy_${h}`);
    }
    // nothing of the removal waits for a proxy (remove → etcd → apiserver → proxy would be a cycle)
    assert.ok(!c.plan.instances.some((i) => i.step === "remove"));
  });

  test("applied proxies roll one host at a time, in the order recorded; new ones start together", async () => {
    const applied = new Map(["m1", "m2", "n1", "n2"].map((h, i, all) => [`apiserver_proxy_${h}`, i > 0 ? [`terraform_data.apiserver_proxy_${all[i - 1]}`] : []]));
    const { buildPlan } = await import("../../src/plan");
    const plan = buildPlan({ inv: c.inv, pki: c.pki, binaries: c.binaries, gone: [], leafIdentity: c.leaves.identity }, { applied });
    const chained = (h: string) => plan.instances.find((i) => i.id === `apiserver_proxy_${h}`)!.dependsOn.filter((d) => d.startsWith("apiserver_proxy_"));
    assert.deepEqual(["m1", "m2", "n1", "n2"].map(chained), [[], ["apiserver_proxy_m1"], ["apiserver_proxy_m2"], ["apiserver_proxy_n1"]]);
    const fresh = c.plan.instances.filter((i) => i.step === "apiserver-proxy").flatMap((i) => i.dependsOn.filter((d) => d.startsWith("apiserver_proxy_")));
    assert.deepEqual(fresh, []);
  });

  test("a changed master list changes every proxy's trigger; a change elsewhere (a node label) does not", async () => {
    const base = await openTwoMasters(undefined, true);
    const more = await openTwoMasters((raw) => raw.hosts.push({ name: "m3", address: "192.168.0.13", roles: ["master"] }), true);
    const labelled = await openTwoMasters((raw) => (raw.hosts[3]!.labels = { disk: "ssd" }), true);
    assert.match(shipped(more, "apiserver-proxy", "n1", PROXY.config), /    server m2 192\.168\.0\.12:6443\n    server m3 192\.168\.0\.13:6443\n$/);
    const hashOf = (x: Cluster, h: string) => findInstance(x.plan, "apiserver-proxy", h)!.triggers[PROXY.config];
    for (const h of ["n1", "n2"]) {
      assert.notEqual(hashOf(more, h), hashOf(base, h), h);
      assert.equal(hashOf(labelled, h), hashOf(base, h), h);
    }
  });
});

test("with the proxy off (one master), no proxy step, and kubelets and kube-proxy dial the master as before", async () => {
  const dir = tempDir("binkube-proxy-off-");
  writeFakeBinaries(path.join(dir, "bin"));
  const c = await openCluster(writeInventory(dir, baseInventory()), { create: true, pki: { defer: true } });
  assert.ok(!c.plan.instances.some((i) => i.step === "apiserver-proxy"));
  assert.ok(!c.plan.instances.find((i) => i.id === "kubelet_k8s_node")!.dependsOn.some((d) => d.startsWith("apiserver_proxy")));
  assert.deepEqual(serverOf(bootstrapKubeconfig(c.inv, "CA", "abcdef.0123456789abcdef")), ["https://192.168.0.4:6443"]);
  assert.ok(!fs.readdirSync(c.inv.pkiDir).some((f) => f.startsWith("apiserver-proxy-")), "no proxy certificate is planned");
});

test("haproxy's version: the 2.6 line binkube's configuration is written for, nothing else", () => {
  const inv = { kubernetesVersion: "v1.17.17", etcdVersion: "v3.4.3" };
  assert.equal(versionProblem("haproxy/haproxy", "/x/haproxy", "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/\n", inv), undefined);
  assert.match(versionProblem("haproxy/haproxy", "/x/haproxy", "HAProxy version 2.8.3-1 2023/09/08\n", inv) ?? "", /is 2\.8\.3-1, but binkube's apiserver proxy configuration is written for haproxy 2\.6\.x/);
  assert.match(versionProblem("haproxy/haproxy", "/x/haproxy", "haproxy: error while loading shared libraries: liblua5.3.so.0\n", inv) ?? "", /binkube cannot tell which release it is/);
});

test("the failure window the e2e holds the node-side poller to follows from the check settings", () => {
  assert.deepEqual(PROXY_CHECK, { intervalMs: 1000, fall: 2, rise: 2, connectTimeoutMs: 1000, checkTimeoutMs: 5000 });
  assert.equal(proxyFailureWindowMs(), 4000);
  assert.equal(proxyFailureWindowMs({ intervalMs: 2000, fall: 3 }), 2000 + 6000 + 4000);
});

test("show stat: servers of the backend with their status and last check; serving means UP after a check that passed", () => {
  const csv = [
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration",
    "apiserver,FRONTEND,,,0,1,2000,3,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,1,,,",
    "kube-apiservers,m1,0,0,0,1,,2,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,10,0,,1,3,1,,2,,2,0,,1,L7OK,200,3",
    "kube-apiservers,m2,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,5,5,,1,3,2,,0,,2,0,,0,* L4CON,,1000",
    "kube-apiservers,m3,0,0,0,0,,0,0,0,,0,,0,0,0,0,UP,1,1,0,0,0,1,0,,1,3,3,,0,,2,0,,0,INI,,0",
    "kube-apiservers,BACKEND,0,0,0,1,200,2,0,0,0,0,,0,0,0,0,UP,2,2,0,,0,10,0,,1,3,0,,2,,1,0,,1,,,",
    "",
  ].join("\n");
  const states = parseServerStates(csv);
  assert.deepEqual(states, [
    { name: "m1", status: "UP", check: "L7OK" },
    { name: "m2", status: "DOWN", check: "L4CON" },
    { name: "m3", status: "UP", check: "INI" },
  ]);
  assert.deepEqual(states.filter(serving).map((s) => s.name), ["m1"], "an UP server no check has passed yet does not count");
});

test("kubelet.kubeconfig, written by the kubelet at its bootstrap, is pointed at the proxy once (a real sed on a real file)", async () => {
  const dir = tempDir();
  const file = path.join(dir, "kubelet.kubeconfig");
  const text = (server: string) => `apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: /opt/kubernetes/ssl/ca.pem\n    server: ${server}\n  name: default-cluster\nusers:\n- name: default-auth\n  user:\n    client-certificate: /opt/kubernetes/ssl/kubelet-client-current.pem\n`;
  fs.writeFileSync(file, text("https://192.168.0.11:6443"), { mode: 0o600 });
  const logs: string[] = [];
  const rc = {
    note: stepLines("kubelet", "n1", (l: string) => logs.push(l)).note,
    sh: (command: string) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) =>
        execFile("bash", ["-c", command], (e, stdout, stderr) => (e ? reject(new Error(`${command}: ${stderr}`)) : resolve({ code: 0, stdout, stderr }))),
      ),
  };
  assert.equal(await pointKubeconfigAt(rc, "https://127.0.0.1:6444", file), true);
  assert.equal(fs.readFileSync(file, "utf8"), text("https://127.0.0.1:6444"));
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.match(logs.join("\n"), /^step kubelet on n1: kubelet\.kubeconfig now points at https:\/\/127\.0\.0\.1:6444 \(was https:\/\/192\.168\.0\.11:6443\)/);
  assert.equal(await pointKubeconfigAt(rc, "https://127.0.0.1:6444", file), false, "already there: nothing to do, no restart");
  assert.equal(await pointKubeconfigAt(rc, "https://127.0.0.1:6444", path.join(dir, "absent")), false, "a node that has not joined has none");
});

// ---- the rendered configuration run by Debian's haproxy ----------------------------------------

const UNPACKED = path.join(process.env.BINKUBE_FIXTURE_CACHE ?? "/var/cache/binkube/fixtures", "unpacked");
/** haproxy and the folders of its libraries in the fixture cache (debian-binaries.sh unpacks them there). */
function cachedHaproxy(): { binary: string; libs: string } | undefined {
  const dirs = fs.existsSync(UNPACKED) ? fs.readdirSync(UNPACKED) : [];
  const newest = (pkg: string) => dirs.filter((d) => d.startsWith(`${pkg}_`)).sort().pop();
  const pkgs = ["haproxy", "liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1"].map(newest);
  if (pkgs.some((p) => p === undefined)) return undefined;
  return { binary: path.join(UNPACKED, pkgs[0]!, "usr/sbin/haproxy"), libs: pkgs.slice(1).map((p) => path.join(UNPACKED, p!, "usr/lib/x86_64-linux-gnu")).join(":") };
}
const haproxy = cachedHaproxy();

describe("Debian's haproxy 2.6 runs the rendered configuration", { skip: haproxy ? undefined : `haproxy is not in ${UNPACKED}: run bash test/fixtures/debian-binaries.sh DIR once` }, () => {
  const dir = tempDir("binkube-haproxy-");
  let c: Cluster;
  let proc: ChildProcess | undefined;
  const servers: https.Server[] = [];
  const socket = path.join(dir, "admin.sock");
  let listenPort = 0;
  const env = () => ({ ...process.env, LD_LIBRARY_PATH: haproxy!.libs });
  const cli = (command: string) => execFileSync("bash", ["-c", proxyCli(command, socket)], { encoding: "utf8" });
  const states = () => parseServerStates(cli("show stat"));
  const until = async (what: string, ok: () => boolean, ms = 10_000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(states())}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  /** An apiserver stand-in: the apiserver's certificate, /readyz `readyz` (after `delayMs`) only for a client certificate of the CA. */
  const apiserver = (readyz: number, body: string, delayMs = 0) =>
    new Promise<number>((resolve) => {
      const read = (n: string) => fs.readFileSync(path.join(c.inv.pkiDir, n));
      const s = https.createServer({ key: read("apiserver.key"), cert: read("apiserver.crt"), ca: read("ca.crt"), requestCert: true, rejectUnauthorized: false }, (req, res) => {
        const peer = (req.socket as tls.TLSSocket).getPeerCertificate();
        if (req.url === "/readyz") {
          const who = (req.socket as tls.TLSSocket).authorized ? peer.subject?.CN : undefined;
          setTimeout(() => res.writeHead(who === "system:binkube:apiserver-proxy:n1" ? readyz : 401).end(who ? "ok" : "Unauthorized"), delayMs);
        } else res.writeHead(200).end(body);
      });
      servers.push(s);
      s.listen(0, "127.0.0.1", () => resolve((s.address() as AddressInfo).port));
    });

  before(async () => {
    c = await issuedTwoMasters();
    const ready = await apiserver(200, "from-a");
    const failing = await apiserver(500, "from-b");
    const slow = await apiserver(200, "from-c", 2 * PROXY_CHECK.intervalMs);
    // a free port for the proxy
    listenPort = await new Promise<number>((resolve) => {
      const s = https.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const clientPem = path.join(dir, "client.pem");
    fs.writeFileSync(clientPem, findInstance(c.plan, "apiserver-proxy", "n1")!.files.find((f) => f.path === PROXY.clientCert)!.content!, { mode: 0o600 });
    const cfg = proxyConfig(
      [
        { name: "a", address: "127.0.0.1", port: ready },
        { name: "b", address: "127.0.0.1", port: failing },
        { name: "c", address: "127.0.0.1", port: slow },
      ],
      { adminSocket: socket, caFile: path.join(c.inv.pkiDir, "ca.crt"), clientCertFile: clientPem, listenAddress: "127.0.0.1", listenPort },
    ).content!;
    fs.writeFileSync(path.join(dir, "haproxy.cfg"), cfg);
    proc = spawn(haproxy!.binary, ["-db", "-f", path.join(dir, "haproxy.cfg")], { env: env(), stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    proc.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    proc.on("exit", (code) => code && code !== 0 && console.error(`haproxy exited ${code}: ${stderr}`));
    await until("the admin socket", () => fs.existsSync(socket));
  });

  after(() => {
    proc?.kill("SIGKILL");
    for (const s of servers) s.close();
  });

  test("haproxy -c accepts it", () => {
    const out = execFileSync(haproxy!.binary, ["-c", "-f", path.join(dir, "haproxy.cfg")], { env: env(), encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    assert.match(out, /Configuration file is valid/);
  });

  test("the checks authenticate with the host's certificate and verify the apiserver's: the ready one is UP (L7OK), the other DOWN (L7STS)", async () => {
    await until("a UP and b DOWN", () => {
      const s = states();
      // b's last check must be a status one: on a loaded machine one check can time out first (L6TOUT)
      return s.find((x) => x.name === "a")?.check === "L7OK" && s.find((x) => x.name === "b")?.status === "DOWN" && s.find((x) => x.name === "b")?.check === "L7STS";
    });
    const s = states();
    assert.deepEqual(s.map((x) => [x.name, x.status, x.check]).slice(0, 2), [["a", "UP", "L7OK"], ["b", "DOWN", "L7STS"]]);
  });

  test("a master that answers its checks late (busy, not gone) stays in rotation", async () => {
    await new Promise((r) => setTimeout(r, 4 * PROXY_CHECK.intervalMs));
    const c3 = states().find((x) => x.name === "c")!;
    assert.deepEqual([c3.status, c3.check], ["UP", "L7OK"], "a check answered after 2 intervals took it out");
  });

  test("TLS passes through: a client of the proxy sees the apiserver's own certificate and its answer", async () => {
    const body = await new Promise<{ text: string; cn: string }>((resolve, reject) => {
      const req = https.get({ host: "127.0.0.1", port: listenPort, path: "/version", servername: "kubernetes", ca: fs.readFileSync(path.join(c.inv.pkiDir, "ca.crt")), agent: false }, (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ text, cn: (res.socket as tls.TLSSocket).getPeerCertificate().subject.CN as string }));
      });
      req.on("error", reject);
    });
    assert.deepEqual(body, { text: "from-a", cn: "kube-apiserver" });
  });

  test("the remove step's commands take a master out: MAINT, no longer serving", async () => {
    cli("disable server kube-apiservers/b; shutdown sessions server kube-apiservers/b");
    await until("b in maintenance", () => states().find((x) => x.name === "b")?.status === "MAINT");
    assert.deepEqual(states().filter(serving).map((x) => x.name), ["a", "c"]);
  });

  test("a master that stops answering is marked down within the failure window, and the connections it carried are closed", async () => {
    // a connection through the proxy to a (the only server left in rotation), kept open
    cli("disable server kube-apiservers/c");
    await until("c in maintenance", () => states().find((x) => x.name === "c")?.status === "MAINT");
    const conn = tls.connect({ host: "127.0.0.1", port: listenPort, servername: "kubernetes", ca: fs.readFileSync(path.join(c.inv.pkiDir, "ca.crt")) });
    await new Promise<void>((resolve, reject) => conn.once("secureConnect", () => resolve()).once("error", reject));
    const closed = new Promise<number>((resolve) => conn.once("close", () => resolve(Date.now())));
    conn.on("error", () => undefined);
    // a stops accepting (its listening socket closes; the open connection stays, as with a hung peer)
    const t0 = Date.now();
    servers[0]!.close();
    await until("a DOWN", () => states().find((x) => x.name === "a")?.status === "DOWN", proxyFailureWindowMs() + 2000);
    const down = Date.now() - t0;
    const closedAt = await Promise.race([closed, new Promise<number>((r) => setTimeout(() => r(0), 3000))]);
    assert.ok(closedAt > 0, "the connection to the master marked down was not closed");
    assert.ok(down <= proxyFailureWindowMs(), `marked down after ${down} ms`);
    console.log(`# haproxy 2.6: a master that stopped answering was marked down after ${down} ms (window ${proxyFailureWindowMs()} ms); its connection closed ${closedAt - t0} ms after`);
  });
});
