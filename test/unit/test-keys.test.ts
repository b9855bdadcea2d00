// The unit tests' key cache (test/helpers/test-keys.ts) against what the PKI code relies on: no
// key twice in one process, every private key with its own public key; and no binkube process
// outside the test runner can be given keys other than fresh ones.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as path from "node:path";
import { test } from "node:test";
import { generateKeyPair } from "../../src/pki/x509";
import "../helpers/test-keys";

test("keys handed out in one process are distinct 2048-bit pairs, each public key its private key's", async () => {
  const pairs = await Promise.all(Array.from({ length: 6 }, () => generateKeyPair()));
  const moduli = pairs.map((p) => p.privateKey.n.toString(16));
  assert.equal(new Set(moduli).size, pairs.length);
  for (const p of pairs) {
    assert.equal(p.privateKey.n.bitLength(), 2048);
    assert.equal(p.publicKey.n.toString(16), p.privateKey.n.toString(16));
  }
});

test("outside node --test the key source cannot be replaced: binkube always generates fresh keys", () => {
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const x509 = path.join(__dirname, "..", "..", "src", "pki", "x509.ts");
  const r = spawnSync(process.execPath, ["--import", "tsx", "-e", `require(${JSON.stringify(x509)}).useKeySourceInTests(async () => { throw new Error("used") })`], { env, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /for unit tests \(node --test\) only/);
});
