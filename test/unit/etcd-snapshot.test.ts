import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { localSnapshotDir, rotateLocal } from "../../src/runner/operator-side";

test("local etcd snapshots: per-host dir beside the inventory; rotation keeps the newest N and nothing else is touched", () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), "binkube-snap-"));
  const dir = localSnapshotDir(base, "lab2");
  assert.equal(dir, path.join(base, ".binkube", "etcd-snapshots", "lab2"));
  fs.mkdirSync(dir, { recursive: true });
  const names = ["snapshot-20261122T101500Z.db", "snapshot-20261121T235959Z.db", "snapshot-20261122T090000Z.db", "snapshot-20261122T120000Z.db"];
  for (const n of [...names, "notes.txt"]) fs.writeFileSync(path.join(dir, n), n);
  assert.deepEqual(rotateLocal(dir, 3), ["snapshot-20261121T235959Z.db"]);
  assert.deepEqual(fs.readdirSync(dir).sort(), ["notes.txt", "snapshot-20261122T090000Z.db", "snapshot-20261122T101500Z.db", "snapshot-20261122T120000Z.db"]);
  assert.deepEqual(rotateLocal(dir, 1), ["snapshot-20261122T090000Z.db", "snapshot-20261122T101500Z.db"]);
  assert.deepEqual(rotateLocal(dir, 1), []);
  fs.rmSync(base, { recursive: true });
});
