// PKI checked with the real openssl: chain, SANs, key usage, extended key usage, key match.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { loadInventory } from "../../src/inventory/load";
import { Inventory } from "../../src/inventory/types";
import { CAS, apiserverSANs, leafSpecs } from "../../src/pki/catalog";
import { checkRows } from "../../src/pki/check";
import { ensurePki } from "../../src/pki/ensure";
import { Pki, loadPki } from "../../src/pki/load";
import { currentLeaf } from "../../src/pki/disk";
import forge from "node-forge";
import { certFacts, createCA, issueLeaf } from "../../src/pki/x509";
import { baseInventory, tempDir, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

function ext(file: string, name: string): string {
  return openssl("x509", "-in", file, "-noout", "-ext", name);
}

describe("pki", () => {
  const dir = tempDir();
  /** Each leaf's serial as issued on disk now. */
  const serials = () => new Map(leafSpecs(inv).map((s) => [s.name, currentLeaf(path.join(dir, "pki"), s.name)!.cert.serialNumber]));
  let inv: Inventory;
  let pki: Pki;
  before(async () => {
    const raw = baseInventory();
    raw.apiserver = { endpoint: "https://10.9.9.9:6443", extraSANs: ["k8s.example.internal"] };
    inv = loadInventory(writeInventory(dir, raw)).inventory;
    const result = await ensurePki(inv);
    pki = result.pki;
    assert.ok(result.changes.length >= CAS.length + leafSpecs(inv).length, "everything is created on first run");
  });

  test("every leaf verifies against its own CA with openssl, and not against another CA", () => {
    for (const spec of leafSpecs(inv)) {
      const leafFile = path.join(dir, "pki", `${spec.name}.crt`);
      const caFile = path.join(dir, "pki", `${spec.ca}.crt`);
      assert.match(openssl("verify", "-x509_strict", "-CAfile", caFile, leafFile), /: OK/, spec.name);
      const other = spec.ca === "ca" ? "etcd-ca" : "ca";
      assert.throws(() => openssl("verify", "-CAfile", path.join(dir, "pki", `${other}.crt`), leafFile), /error|fail/i, `${spec.name} must not verify against ${other}`);
    }
  });

  test("each key matches its certificate (openssl modulus) and keys are 0600", () => {
    for (const name of [...CAS.map((c) => c.name), ...leafSpecs(inv).map((s) => s.name)]) {
      const crt = path.join(dir, "pki", `${name}.crt`);
      const key = path.join(dir, "pki", `${name}.key`);
      assert.equal(openssl("x509", "-in", crt, "-noout", "-modulus"), openssl("rsa", "-in", key, "-noout", "-modulus"), name);
      assert.equal(fs.statSync(key).mode & 0o777, 0o600, `${name}.key mode`);
    }
    assert.equal(fs.statSync(path.join(dir, "pki")).mode & 0o777, 0o700);
  });

  test("CAs: CA:TRUE, certificate signing, 10 years, sha256", () => {
    for (const ca of CAS) {
      const file = path.join(dir, "pki", `${ca.name}.crt`);
      assert.match(ext(file, "basicConstraints"), /critical\s+CA:TRUE/);
      assert.match(ext(file, "keyUsage"), /Certificate Sign/);
      assert.match(openssl("x509", "-in", file, "-noout", "-text"), /Signature Algorithm: sha256WithRSAEncryption/);
      const days = (certFacts(pki.cas[ca.name].cert).notAfter.getTime() - Date.now()) / 86400000;
      assert.ok(days > 3640 && days <= 3650, `${ca.name}: ${days} days`);
    }
  });

  test("leaves: CA:FALSE, digital signature + key encipherment, EKU and SANs per certificate", () => {
    for (const spec of leafSpecs(inv)) {
      const file = path.join(dir, "pki", `${spec.name}.crt`);
      assert.match(ext(file, "basicConstraints"), /critical\s+CA:FALSE/, spec.name);
      assert.match(ext(file, "keyUsage"), /critical\s+Digital Signature, Key Encipherment/, spec.name);
      const eku = ext(file, "extendedKeyUsage");
      assert.equal(/TLS Web Server Authentication/.test(eku), spec.usages.includes("server"), `${spec.name} server EKU`);
      assert.equal(/TLS Web Client Authentication/.test(eku), spec.usages.includes("client"), `${spec.name} client EKU`);
      const subject = openssl("x509", "-in", file, "-noout", "-subject", "-nameopt", "RFC2253");
      assert.match(subject, new RegExp(`CN=${spec.subject.cn.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`), spec.name);
      for (const o of spec.subject.o ?? []) assert.match(subject, new RegExp(`O=${o}`));
      // authorityKeyIdentifier is the CA's subjectKeyIdentifier (not the leaf's own)
      const caSki = ext(path.join(dir, "pki", `${spec.ca}.crt`), "subjectKeyIdentifier").split("\n")[1]!.trim();
      assert.ok(ext(file, "authorityKeyIdentifier").includes(caSki), `${spec.name} AKI`);
      assert.notEqual(ext(file, "subjectKeyIdentifier").split("\n")[1]!.trim(), caSki);
      // serial: 16 random bytes, positive
      const serial = openssl("x509", "-in", file, "-noout", "-serial").trim().split("=")[1]!;
      assert.equal(serial.length, 32, `${spec.name} serial ${serial}`);
      assert.ok(parseInt(serial[0]!, 16) < 8, "positive serial");
    }
  });

  test("the apiserver certificate carries every name a client may dial", () => {
    const sans = ext(path.join(dir, "pki", "apiserver.crt"), "subjectAltName");
    for (const want of ["IP Address:10.0.0.1", "IP Address:127.0.0.1", "IP Address:192.168.0.4", "IP Address:10.9.9.9", "DNS:k8s.example.internal", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc", "DNS:kubernetes.default.svc.cluster.local"]) {
      assert.ok(sans.includes(want), `apiserver SAN ${want} missing in ${sans}`);
    }
    assert.ok(!sans.includes("192.168.0.5"), "a non-master address is not an apiserver SAN");
  });

  test("etcd member certificates name their own host only", () => {
    const sans = ext(path.join(dir, "pki", "etcd-server-k8s-node.crt"), "subjectAltName");
    assert.ok(sans.includes("IP Address:192.168.0.5") && sans.includes("IP Address:127.0.0.1") && sans.includes("DNS:k8s-node"));
    assert.ok(!sans.includes("192.168.0.4"));
  });

  test("admin is in system:masters; component identities are the ones RBAC expects", () => {
    assert.deepEqual(certFacts(currentLeaf(pki.dir, "admin")!.cert).o, ["system:masters"]);
    assert.equal(certFacts(currentLeaf(pki.dir, "kube-controller-manager")!.cert).cn, "system:kube-controller-manager");
    assert.equal(certFacts(currentLeaf(pki.dir, "kube-scheduler")!.cert).cn, "system:kube-scheduler");
    assert.equal(certFacts(currentLeaf(pki.dir, "kube-proxy")!.cert).cn, "system:kube-proxy");
  });

  test("the service-account key is its own, not a CA key; no static bootstrap token is kept", () => {
    const saMod = openssl("rsa", "-in", path.join(dir, "pki", "sa.key"), "-noout", "-modulus");
    for (const ca of CAS) assert.notEqual(saMod, openssl("rsa", "-in", path.join(dir, "pki", `${ca.name}.key`), "-noout", "-modulus"));
    assert.equal(openssl("rsa", "-pubin", "-in", path.join(dir, "pki", "sa.pub"), "-noout", "-modulus"), saMod);
    assert.ok(!fs.existsSync(path.join(dir, "pki", "bootstrap-token")), "bootstrap tokens are made per join, never stored in pki/");
  });

  test("a second run keeps everything (same serials, no changes)", async () => {
    const before = serials();
    const again = await ensurePki(inv);
    assert.deepEqual(again.changes, []);
    assert.deepEqual(serials(), before);
  });

  test("a new master makes only the apiserver certificate wrong; it is reissued with the reason", async () => {
    const raw = baseInventory();
    raw.apiserver = { endpoint: "https://10.9.9.9:6443", extraSANs: ["k8s.example.internal"] };
    raw.hosts[1]!.roles = ["etcd", "master", "node"];
    const inv2 = loadInventory(writeInventory(dir, raw)).inventory;
    assert.ok(apiserverSANs(inv2).includes("192.168.0.5"));
    const before = serials();
    const { pki: pki2, changes } = await ensurePki(inv2);
    const after = serials();
    assert.deepEqual(changes.map((c) => c.name), ["apiserver"]);
    assert.match(changes[0]!.reason, /SANs lack .*192\.168\.0\.5/);
    assert.notEqual(after.get("apiserver"), before.get("apiserver"));
    assert.match(ext(path.join(dir, "pki", "apiserver.crt"), "subjectAltName"), /192\.168\.0\.5/);
    assert.equal(after.get("admin"), before.get("admin"));
    pki = pki2;
    inv = inv2;
  });

  test("renew reissues exactly the named certificates from the same CA; --all every leaf", async () => {
    const { pki: p2, changes } = await ensurePki(inv, { renew: ["kube-proxy", "etcd-peer-k8s-node"] });
    assert.deepEqual(changes.map((c) => `${c.name}:${c.reason}`), ["etcd-peer-k8s-node:renewal requested", "kube-proxy:renewal requested"]);
    assert.equal(p2.cas.ca.cert.serialNumber, pki.cas.ca.cert.serialNumber);
    assert.match(openssl("verify", "-CAfile", path.join(dir, "pki", "ca.crt"), path.join(dir, "pki", "kube-proxy.crt")), /OK/);
    const all = await ensurePki(inv, { renew: "all" });
    assert.equal(all.changes.length, leafSpecs(inv).length);
    await assert.rejects(ensurePki(inv, { renew: ["no-such-cert"] }), /unknown certificate "no-such-cert"/);
  });

  test("an expired or foreign certificate is reissued; loadPki never creates", async () => {
    // Replace kube-scheduler with a certificate from another PKI: signed by the wrong CA.
    const other = tempDir();
    const otherInv = loadInventory(writeInventory(other, baseInventory())).inventory;
    await ensurePki(otherInv);
    fs.copyFileSync(path.join(other, "pki", "kube-scheduler.crt"), path.join(dir, "pki", "kube-scheduler.crt"));
    fs.copyFileSync(path.join(other, "pki", "kube-scheduler.key"), path.join(dir, "pki", "kube-scheduler.key"));
    assert.match(checkRows(inv, loadPki(inv)).find((r) => r.name === "kube-scheduler")!.status, /WRONG: not signed by the current ca/);
    const { changes } = await ensurePki(inv);
    assert.deepEqual(changes.map((c) => c.name), ["kube-scheduler"]);
    const future = new Date(Date.now() + 400 * 86400000);
    const expired = await ensurePki(inv, { now: future });
    assert.ok(expired.changes.every((c) => /expired/.test(c.reason)) && expired.changes.length === leafSpecs(inv).length);
    const empty = loadInventory(writeInventory(tempDir(), baseInventory())).inventory;
    assert.throws(() => loadPki(empty), /missing .* run `npx cdktf synth`/);
  });

  test("certs check flags certificates that expire within 30 days (synth warns about them)", () => {
    const current = loadPki(inv);
    // ten days before the apiserver certificate runs out (earlier tests may have reissued it)
    const soon = new Date(certFacts(currentLeaf(current.dir, "apiserver")!.cert).notAfter.getTime() - 10 * 86400000);
    const rows = checkRows(inv, current, soon);
    const leaves = rows.filter((r) => r.name === "apiserver" || r.name === "kube-proxy");
    assert.ok(leaves.every((r) => r.status === "expiring (< 30 d)" && r.daysLeft < 30), JSON.stringify(leaves));
    assert.equal(rows.find((r) => r.name === "ca")!.status, "ok", "the 10-year CA is not expiring");
  });

  test("certs check: one row per certificate, all ok", () => {
    const rows = checkRows(inv, loadPki(inv));
    assert.equal(rows.length, CAS.length + leafSpecs(inv).length);
    assert.ok(rows.every((r) => r.status === "ok"), JSON.stringify(rows.filter((r) => r.status !== "ok")));
    const api = rows.find((r) => r.name === "apiserver")!;
    assert.equal(api.issuer, "kubernetes-ca");
    assert.ok(api.daysLeft >= 364);
  });
});

test("the native signature (Node's crypto) is byte for byte the one forge's own cert.sign writes", async () => {
  const ca = await createCA("sign-check-ca", 10);
  const issued = await issueLeaf(ca, { subject: { cn: "sign-check" }, usages: ["server", "client"], dnsNames: ["a.example"], ips: ["10.0.0.1"], days: 5 });
  const native = issued.cert.signature as string;
  issued.cert.sign(ca.key, forge.md.sha256.create());
  assert.equal(Buffer.from(native, "binary").toString("hex"), Buffer.from(issued.cert.signature as string, "binary").toString("hex"));
  assert.ok(ca.cert.verify(issued.cert));
});
