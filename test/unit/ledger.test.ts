import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadInventory } from "../../src/inventory/load";
import { forgetHost, readLedger, removalKeepsQuorum, updateLedger } from "../../src/inventory/ledger";
import { baseInventory, tempDir, writeInventory } from "../helpers/fixtures";

describe("host ledger and etcd quorum on removal", () => {
  test("removal keeps quorum only when the healthy remaining members are a majority", () => {
    assert.equal(removalKeepsQuorum(3, 2), true); // 3 → 2 members, both healthy
    assert.equal(removalKeepsQuorum(3, 1), false); // 3 → 2, one of them down: no quorum
    assert.equal(removalKeepsQuorum(5, 3), true); // 5 → 4 needs 3
    assert.equal(removalKeepsQuorum(5, 2), false);
    assert.equal(removalKeepsQuorum(2, 1), true); // 2 → 1
    assert.equal(removalKeepsQuorum(1, 0), false); // never remove the last member
  });

  test("a host that leaves the inventory stays in the ledger until forgotten", () => {
    const dir = tempDir();
    const full = loadInventory(writeInventory(dir, baseInventory())).inventory;
    assert.deepEqual(updateLedger(full), []);
    const raw = baseInventory();
    raw.hosts.splice(1, 1);
    const smaller = loadInventory(writeInventory(dir, raw)).inventory;
    assert.deepEqual(updateLedger(smaller).map((h) => h.name), ["k8s-node"]);
    assert.deepEqual(updateLedger(smaller).map((h) => h.name), ["k8s-node"], "still pending on the next synth");
    assert.equal(readLedger(smaller)["k8s-node"]!.address, "192.168.0.5");
    forgetHost(smaller, "k8s-node");
    assert.deepEqual(updateLedger(smaller), []);
  });
});
