// Every YAML example in docs/inventory.md is a valid inventory that renders: the reference block as
// it stands (its ~/ paths in a home of the test's own), a fragment on top of the smallest valid
// inventory. The docs cannot show what binkube would refuse.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, test } from "node:test";
import { parse, stringify } from "yaml";
import { openCluster } from "../../src/cluster";
import { writeTree } from "../../src/cli/render-tree";
import { baseInventory, dockerArchiveBytes, tempDir } from "../helpers/fixtures";
import "../helpers/test-keys";

const DOC = path.join(__dirname, "..", "..", "docs", "inventory.md");
const blocks = [...fs.readFileSync(DOC, "utf8").matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);

/** A home with the key and known_hosts the reference block names (~/.ssh/…). */
function fakeHome(): string {
  const home = tempDir("binkube-home-");
  fs.mkdirSync(path.join(home, ".ssh"), { mode: 0o700 });
  fs.writeFileSync(path.join(home, ".ssh", "id_ed25519"), "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
  fs.writeFileSync(path.join(home, ".ssh", "known_hosts"), "");
  return home;
}

describe("docs/inventory.md examples", () => {
  test(`there are examples to check (${blocks.length})`, () => assert.ok(blocks.length >= 2));

  blocks.forEach((block, i) => {
    test(`example ${i + 1} (${block.split("\n")[0]!.slice(0, 40)}…) is a valid inventory and renders`, async () => {
      const home = fakeHome();
      const saved = process.env.HOME;
      process.env.HOME = home;
      try {
        assert.equal(os.homedir(), home);
        const dir = tempDir("binkube-docs-");
        fs.mkdirSync(path.join(dir, "images"));
        fs.writeFileSync(path.join(dir, "images", "pause.tar"), dockerArchiveBytes());
        const raw = parse(block) as Record<string, unknown>;
        const inventory = "hosts" in raw ? block : stringify({ ...baseInventory(), ...raw });
        const file = path.join(dir, "cluster.yaml");
        fs.writeFileSync(file, inventory);
        const cluster = await openCluster(file, { create: true, pki: { defer: true } });
        const out = path.join(dir, "render");
        const summary = writeTree(cluster.plan, cluster.binaries, out);
        assert.ok(summary.files > 0 && summary.hosts === cluster.inv.hosts.length);
        // what the example shows is what binkube took
        if ("kubelet" in raw) assert.deepEqual(cluster.inv.kubelet.extraArgs, (raw.kubelet as { extraArgs?: unknown }).extraArgs ?? {});
      } finally {
        process.env.HOME = saved;
      }
    });
  });
});
