// Deferred issuance (pki/issuance.ts): synth records what to issue, the first step that ships a
// leaf issues it, and triggers are the same before and after: checked against real openssl.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { openCluster, openStepInstance } from "../../src/cluster";
import { loadInventory } from "../../src/inventory/load";
import { etcdPeerCert, etcdServerCert, leafSpecs } from "../../src/pki/catalog";
import { readRecord } from "../../src/pki/issuance";
import { ensurePki } from "../../src/pki/ensure";
import { LeafIssuer } from "../../src/pki/issue";
import { stepByName } from "../../src/steps";
import { runStep } from "../../src/runner/run-step";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

const ROOT = path.join(__dirname, "..", "..");

function setup() {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, baseInventory());
  return { dir, file, pki: path.join(dir, "pki") };
}
const hashes = (plan: { instances: { id: string; hash: string }[] }) => Object.fromEntries(plan.instances.map((i) => [i.id, i.hash]));
const leafKeys = (pkiDir: string, inv = loadInventory(path.join(pkiDir, "..", "cluster.yaml")).inventory) => leafSpecs(inv).map((s) => s.name).filter((n) => fs.existsSync(path.join(pkiDir, `${n}.key`)));
const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8" });

test("a deferred synth writes records and no leaf key; a step issues only what it ships, with the recorded serial", async () => {
  const { dir, file, pki } = setup();
  const first = await openCluster(file, { create: true, pki: { defer: true } });
  const inv = first.inv;
  assert.deepEqual(leafKeys(pki), [], "no leaf key before a step runs");
  assert.ok(first.pkiChanges.filter((c) => c.deferred).length === leafSpecs(inv).length);
  for (const ca of ["ca", "etcd-ca", "front-proxy-ca"]) assert.ok(fs.existsSync(path.join(pki, `${ca}.key`)), `${ca} is made at synth`);
  assert.equal(fs.existsSync(path.join(dir, "admin.kubeconfig")), false, "no admin.kubeconfig without its certificate");
  // What synth rendered for a leaf is a reference to it (no key exists yet to render).
  assert.match(first.plan.instances.find((i) => i.id === "etcd_k8s_node")!.files.find((f) => f.path === "/opt/etcd/ssl/server-key.pem")!.content!, /^@@binkube-leaf\/[0-9a-f]{16}\/etcd-server-k8s-node\/key\/pem@@$/);

  // A drifted step fails before it makes a key.
  await assert.rejects(runStep(file, "kubelet", "k8s-node", { verbose: false, allowMissingBinaries: false, expectHash: "0".repeat(64), out: () => undefined }), /drift/);
  assert.deepEqual(leafKeys(pki), []);

  const etcd = await openStepInstance(file, stepByName("etcd")!, "k8s-node");
  assert.equal(etcd.inst!.hash, hashes(first.plan)["etcd_k8s_node"], "the step ships what synth planned");
  assert.deepEqual(leafKeys(pki).sort(), [etcdPeerCert({ name: "k8s-node" } as never), etcdServerCert({ name: "k8s-node" } as never), "etcd-healthcheck-client"].sort(), "only the leaves the etcd instance ships");
  const shipped = (p: string) => etcd.inst!.files.find((f) => f.path === `/opt/etcd/ssl/${p}`)!.content!;
  assert.match(shipped("server.pem"), /BEGIN CERTIFICATE/, "the host gets the real certificate, not the record");
  assert.match(shipped("server-key.pem"), /BEGIN RSA PRIVATE KEY/);
  assert.equal(shipped("server.pem"), fs.readFileSync(path.join(pki, "etcd-server-k8s-node.crt"), "utf8"));
  // The certificate is the record's, signed by the etcd CA (real openssl).
  const crt = path.join(pki, "etcd-server-k8s-node.crt");
  const serial = openssl("x509", "-in", crt, "-noout", "-serial").trim().replace(/^serial=/, "").toLowerCase().replace(/^0+/, "");
  assert.equal(serial, readRecord(pki, "etcd-server-k8s-node")!.serial.replace(/^0+/, ""));
  assert.match(openssl("verify", "-CAfile", path.join(pki, "etcd-ca.crt"), crt), /OK/);
  assert.equal(openssl("pkey", "-in", path.join(pki, "etcd-server-k8s-node.key"), "-pubout"), openssl("x509", "-in", crt, "-noout", "-pubkey"));
  assert.equal(fs.statSync(path.join(pki, "etcd-server-k8s-node.key")).mode & 0o777, 0o600);
  // keyWith: the member's peer certificate, issued with its serving one, takes its key.
  const pub = (name: string) => openssl("x509", "-in", path.join(pki, `${name}.crt`), "-noout", "-pubkey");
  assert.equal(pub("etcd-peer-k8s-node"), pub("etcd-server-k8s-node"));
  assert.notEqual(pub("etcd-healthcheck-client"), pub("etcd-server-k8s-node"));

  // The next synth: nothing to create, and every trigger as before (nothing rolls).
  const second = await openCluster(file, { create: true, pki: { defer: true } });
  assert.deepEqual(hashes(second.plan), hashes(first.plan));
  assert.equal(second.pkiChanges.filter((c) => c.name === "etcd-server-k8s-node").length, 0);
  // Issuing everything at once (`certs`) keeps the records' serials, so triggers again do not move.
  const eager = await openCluster(file, { create: true });
  assert.deepEqual(hashes(eager.plan), hashes(first.plan));
  assert.equal(leafKeys(pki).length, leafSpecs(inv).length);
  assert.equal(pub("etcd-peer-k8s-master"), pub("etcd-server-k8s-master"), "issued at once, too");
  assert.notEqual(pub("etcd-server-k8s-master"), pub("etcd-server-k8s-node2"), "members never share one");
  assert.ok(fs.existsSync(path.join(dir, "admin.kubeconfig")));
  assert.match(eager.plan.instances.find((i) => i.id === "apiserver_k8s_master")!.files.find((f) => f.path.endsWith("apiserver.pem"))!.content!, /BEGIN CERTIFICATE/);
});

test("renewing one leaf moves the triggers of exactly the instances that ship it", async () => {
  const { file } = setup();
  const before = hashes((await openCluster(file, { create: true })).plan);
  await openCluster(file, { create: true, pki: { renew: ["kube-proxy"], defer: true } });
  const after = hashes((await openCluster(file, { create: true, pki: { defer: true } })).plan);
  const moved = Object.keys(after).filter((id) => after[id] !== before[id]).sort();
  assert.deepEqual(moved, ["kube_proxy_k8s_master", "kube_proxy_k8s_node", "kube_proxy_k8s_node2"]);
});

test("a leaf replaced by hand is reissued with a new serial: a CA never signs one serial twice", async () => {
  const { file, pki } = setup();
  const { inv } = await openCluster(file, { create: true });
  const old = readRecord(pki, "kube-scheduler")!;
  const other = setup();
  await openCluster(other.file, { create: true });
  for (const ext of ["crt", "key"]) fs.copyFileSync(path.join(other.pki, `kube-scheduler.${ext}`), path.join(pki, `kube-scheduler.${ext}`));
  await assert.rejects(new LeafIssuer().issuePending(inv, ["kube-scheduler"]), /not the certificate binkube issued/);
  const { changes } = await ensurePki(inv);
  assert.deepEqual(changes.map((c) => c.name), ["kube-scheduler"]);
  assert.notEqual(readRecord(pki, "kube-scheduler")!.serial, old.serial);
});

test("concurrent steps (one process and another) issue a shared leaf once", async () => {
  const { file, pki } = setup();
  const { inv } = await openCluster(file, { create: true, pki: { defer: true } });
  // Another process issues the same leaf while this one does, twice over.
  const script = `new (require(${JSON.stringify(path.join(ROOT, "dist", "src", "pki", "issue.js"))}).LeafIssuer)().issuePending(require(${JSON.stringify(path.join(ROOT, "dist", "src", "inventory", "load.js"))}).loadInventory(${JSON.stringify(file)}).inventory, ["etcd-healthcheck-client"]).then((n) => console.log(JSON.stringify(n)))`;
  const child = new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("exit", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}`))));
  });
  const issuer = new LeafIssuer(); // a step server's: its runs share a key being generated
  const here = await Promise.all([issuer.issuePending(inv, ["etcd-healthcheck-client"]), issuer.issuePending(inv, ["etcd-healthcheck-client", "admin"])]);
  const there = JSON.parse(await child) as string[];
  const issuers = [...here, there].filter((names) => names.includes("etcd-healthcheck-client")).length;
  assert.equal(issuers, 1, `issued once: ${JSON.stringify([here, there])}`);
  assert.ok(here[1].includes("admin"));
  const crt = path.join(pki, "etcd-healthcheck-client.crt");
  assert.match(openssl("verify", "-CAfile", path.join(pki, "etcd-ca.crt"), crt), /OK/);
  assert.equal(fs.existsSync(path.join(pki, ".lock")), false, "the lock is released");
});
