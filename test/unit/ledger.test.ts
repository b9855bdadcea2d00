import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { loadInventory } from "../../src/inventory/load";
import { forgetHost, readLedger, removalKeepsQuorum, updateLedger } from "../../src/inventory/ledger";
import { baseInventory, tempDir, writeInventory } from "../helpers/fixtures";

describe("host ledger and etcd quorum on removal", () => {
  test("hosts forgotten by processes at the same time are all forgotten (Terraform tears hosts down in parallel)", async () => {
    const dir = tempDir();
    const names = Array.from({ length: 6 }, (_, i) => `h${i}`);
    const hostsOf = (n: string) => Array.from({ length: 40 }, (_, j) => `${n}-${j}`);
    fs.mkdirSync(path.join(dir, ".binkube"));
    const ledgerFile = path.join(dir, ".binkube", "hosts.json");
    fs.writeFileSync(ledgerFile, JSON.stringify(Object.fromEntries([...names.flatMap(hostsOf), "stays"].map((n) => [n, { name: n }]))));
    const script = path.join(dir, "forget.ts");
    // each process waits for the same moment, then forgets its 40 hosts one after another
    fs.writeFileSync(script, `import { forgetHost } from ${JSON.stringify(path.resolve(__dirname, "../../src/inventory/ledger"))};
const [name, at] = process.argv.slice(2) as [string, string];
while (Date.now() < Number(at)) {}
for (let j = 0; j < 40; j++) forgetHost({ baseDir: ${JSON.stringify(dir)} } as never, \`\${name}-\${j}\`);
`);
    const at = Date.now() + 2500;
    const codes = await Promise.all(names.map((n) => new Promise<number>((resolve) => spawn(process.execPath, ["--import", "tsx", script, n, String(at)], { stdio: "inherit" }).on("exit", (c) => resolve(c ?? 1)))));
    assert.deepEqual(codes, names.map(() => 0));
    assert.deepEqual(Object.keys(JSON.parse(fs.readFileSync(ledgerFile, "utf8")) as object), ["stays"]);
    assert.ok(!fs.existsSync(`${ledgerFile}.lock`), "the lock is released");
  });

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
