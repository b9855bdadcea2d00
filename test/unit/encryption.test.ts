// Encryption-at-rest keys: created once (0600), rendered as an EncryptionConfiguration, rotated in
// three phases that never leave an apiserver unable to read a Secret another one wrote.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { encryptionConfig, ensureEncryptionKeys, keyNames, readEncryptionKeys, recordApplied, rotateEncryptionKey } from "../../src/pki/encryption";
import { tempDir } from "../helpers/fixtures";

test("encryption keys: one aescbc key, 0600, the config lists it before identity", () => {
  const dir = tempDir();
  const { keys, created } = ensureEncryptionKeys(dir, new Date("2026-12-01T10:00:00Z"));
  assert.ok(created);
  assert.equal(fs.statSync(path.join(dir, "encryption-keys.json")).mode & 0o777, 0o600);
  assert.equal(Buffer.from(keys.keys[0]!.secret, "base64").length, 32);
  assert.equal(ensureEncryptionKeys(dir).created, false, "kept");
  const cfg = JSON.parse(encryptionConfig(keys));
  assert.equal(cfg.kind, "EncryptionConfiguration");
  assert.deepEqual(cfg.resources[0].resources, ["secrets"]);
  assert.equal(cfg.resources[0].providers[0].aescbc.keys[0].name, "key-20261201T100000Z");
  assert.deepEqual(cfg.resources[0].providers[1], { identity: {} }, "identity last: Secrets written before encryption stay readable");
});

test("rotation: add as reader, promote to writer, drop the old key; each phase only after the last one is deployed", () => {
  const dir = tempDir();
  const first = ensureEncryptionKeys(dir, new Date("2026-12-01T10:00:00Z")).keys.keys[0]!;
  assert.throws(() => rotateEncryptionKey(dir), /not deployed yet/);
  const deploy = () => recordApplied(dir, keyNames(readEncryptionKeys(dir)!));
  deploy();
  assert.match(rotateEncryptionKey(dir, new Date("2026-12-02T10:00:00Z")), /phase 1\/3/);
  const p1 = readEncryptionKeys(dir)!.keys;
  assert.deepEqual(p1.map((k) => k.name), [first.name, "key-20261202T100000Z"], "the old key still writes; the new one only reads");
  assert.throws(() => rotateEncryptionKey(dir), /not deployed yet/, "no phase 2 before every apiserver knows the new key");
  deploy();
  assert.match(rotateEncryptionKey(dir), /phase 2\/3/);
  assert.deepEqual(readEncryptionKeys(dir)!.keys.map((k) => k.name), ["key-20261202T100000Z", first.name], "the new key writes; the old one still reads");
  deploy();
  assert.match(rotateEncryptionKey(dir), /phase 3\/3/);
  assert.deepEqual(readEncryptionKeys(dir)!.keys.map((k) => k.name), ["key-20261202T100000Z"]);
  assert.equal(readEncryptionKeys(dir)!.keys[0]!.secret, p1[1]!.secret, "the same key material throughout");
});
