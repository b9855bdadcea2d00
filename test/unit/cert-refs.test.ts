// Leaf certificates as references (pki/refs.ts): resolved late, per encoding; never spelled by
// input; the plan refuses a reference its step does not declare, or a key outside a secret file.
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { openCluster } from "../../src/cluster";
import { certificatesIn, planInstance } from "../../src/plan";
import { encodedRef, leafRef, refsIn, resolveRefs } from "../../src/pki/refs";
import { kubeconfig } from "../../src/pki/kubeconfig";
import { identityOf, readRecord } from "../../src/pki/issuance";
import { sha256 } from "../../src/util/hash";
import { cert, secret } from "../../src/steps/files";
import type { StepDef } from "../../src/steps/types";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

const pair = { certPem: "-----BEGIN CERTIFICATE-----\nAAA\n-----END CERTIFICATE-----\n", keyPem: "-----BEGIN RSA PRIVATE KEY-----\nBBB\n-----END RSA PRIVATE KEY-----\n" };

test("a reference resolves to the leaf's PEM, its base64 or a YAML scalar, as written", () => {
  const r = leafRef("admin");
  const lookup = (name: string) => (name === "admin" ? pair : assert.fail(`looked up ${name}`));
  assert.equal(resolveRefs(`a ${r.certPem} b ${r.keyPem}`, lookup), `a ${pair.certPem} b ${pair.keyPem}`);
  assert.equal(resolveRefs(encodedRef(r.keyPem, "base64")!, lookup), Buffer.from(pair.keyPem).toString("base64"));
  assert.equal(resolveRefs(encodedRef(r.certPem, "yaml")!, lookup), JSON.stringify(pair.certPem));
  // only a whole reference is re-encoded: a PEM, or text around a reference, is not one
  assert.equal(encodedRef(`x${r.certPem}`, "base64"), undefined);
  assert.equal(encodedRef(pair.certPem, "base64"), undefined);
  assert.deepEqual(refsIn(`${r.certPem}${leafRef("kube-proxy").keyPem}`), { names: ["admin", "kube-proxy"], keys: ["kube-proxy"] });
  // a kubeconfig embeds base64 of what the reference resolves to
  const kc = kubeconfig("c", "https://h:6443", pair.certPem, "admin", { certPem: r.certPem, keyPem: r.keyPem });
  assert.match(resolveRefs(kc, lookup), new RegExp(`client-key-data: ${Buffer.from(pair.keyPem).toString("base64")}`));
});

test("text shaped like a reference but without this process's nonce is left as it is", () => {
  const forged = leafRef("admin").keyPem.replace(/\/[0-9a-f]{16}\//, "/0000000000000000/");
  assert.notEqual(forged, leafRef("admin").keyPem);
  assert.deepEqual(refsIn(`--flag=${forged}`).names, []);
  assert.equal(resolveRefs(`--flag=${forged}`, () => assert.fail("resolved a forged reference")), `--flag=${forged}`);
});

test("the plan refuses a leaf its step does not declare, and a private key outside a secret file", async () => {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  const c = await openCluster(writeInventory(dir, baseInventory()), { create: true, pki: { defer: true } });
  const ctx = { inv: c.inv, pki: c.pki, binaries: c.binaries, gone: [], leafIdentity: c.leaves.identity };
  const step = (files: StepDef["files"], certificates: string[]): StepDef => ({ name: "probe", scope: "once", description: "", hosts: (inv) => inv.hosts, deps: [], files, certificates: () => certificates, run: async () => "" });
  const host = c.inv.hosts[0]!.name;
  assert.throws(() => planInstance(ctx, step(() => [cert("/x/admin.pem", leafRef("admin").certPem)], []), host), /\/x\/admin\.pem carries certificate admin, which the step does not declare/);
  assert.throws(() => planInstance(ctx, step(() => [cert("/x/admin-key.pem", leafRef("admin").keyPem)], ["admin"]), host), /carries the private key of admin but is not a secret file/);
  const ok = planInstance(ctx, step(() => [cert("/x/admin.pem", leafRef("admin").certPem), secret("/x/admin-key.pem", leafRef("admin").keyPem)], ["admin"]), host)!;
  assert.deepEqual(certificatesIn(ok.files), ["admin"]);
  // the trigger hashes the leaf's issuance record, not the reference (whose nonce is this process's)
  const record = identityOf("admin", readRecord(c.inv.pkiDir, "admin")!);
  assert.equal(ok.triggers["/x/admin-key.pem"], `600:sha256:${sha256(record.keyPem)}`);
  assert.equal(ok.triggers["/x/admin.pem"], `644:sha256:${sha256(record.certPem)}`);
});
