// Many clusters from one checkout (issue 29): two lab clusters, two inventories, deployed at the
// same time from this checkout; then a no-op deploy of each; a second deploy of one inventory
// while its first runs is refused at once, naming the first; `binkube clusters` lists both; a
// stack left in the shared cdktf.out/stacks/ by an older binkube moves home with no redeploy.
// Day-2 jobs that need a whole cluster but no particular shape run here too: scoped access (A),
// scheduled etcd backups and a restore from one (B), and last `cdktf destroy` of B (interrupted
// and run again, the host left clean, a no-op destroy, a new cluster deployed on it).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { labDown, labUp, sshArgs } from "../../lab/lab";
import type { LabState } from "../../lab/lab";
import { lockHolder } from "../../src/deploy/inventory-lock";
import { synthesizedStackDir } from "../../stacks/stack-home";
import { ROOT, appendClusterSettings, clusterClients, clusterFixtures, waitUntil } from "../helpers/cluster";
import { clusterSkipReason } from "../helpers/e2e";
import { accessChecks } from "./access-checks";
import { teardownChecks } from "./teardown-checks";
import { tempDir } from "../helpers/fixtures";
import { plain, run } from "../helpers/proc";
import { readStepsLog } from "../../src/runner/steps-log";

const skip = clusterSkipReason();

describe("many clusters from one checkout", { skip }, () => {
  const dirs = { a: tempDir("binkube-many-a-"), b: tempDir("binkube-many-b-") };
  // a registry of its own, so the operator's `binkube clusters` does not collect test clusters
  const registry = tempDir("binkube-many-registry-");
  const env = (d: string): NodeJS.ProcessEnv => ({ ...process.env, BINKUBE_CONFIG: path.join(d, "cluster.yaml"), CHECKPOINT_DISABLE: "1", XDG_STATE_HOME: registry });
  const deploy = (d: string) => run("npx", ["cdktf", "deploy", "--auto-approve"], { env: env(d), cwd: ROOT, timeoutMs: 1_500_000 });
  const failed = (out: string) => out.split("\n").filter((l) => /binkube|Error/.test(l)).slice(-30).join("\n");
  const stepRuns = (d: string) => readStepsLog(d).length;
  const sharedStacks = path.join(ROOT, "cdktf.out", "stacks");
  let labA: LabState;
  let labB: LabState;
  const sshA = (cmd: string) => run("ssh", [...sshArgs(labA, "lab1"), cmd], { timeoutMs: 60_000 });

  before(async () => {
    await clusterFixtures(path.join(dirs.a, "bin"), path.join(dirs.a, "images"));
    // the second cluster ships the same release files: hard links (binkube refuses symlinks that
    // lead out of an inventory's directory)
    for (const e of ["bin", "images"]) execFileSync("cp", ["-al", path.join(dirs.a, e), path.join(dirs.b, e)]);
    // one host each (etcd, master and node): two whole clusters side by side on two cores
    [labA, labB] = await Promise.all(Object.values(dirs).map((d) => labUp({ dir: d, hosts: 1, log: () => undefined })));
    for (const d of Object.values(dirs)) {
      appendClusterSettings(d);
      // two clusters, two names (the lab names both "lab")
      const f = path.join(d, "cluster.yaml");
      fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace(/^(cluster:\s*\n\s+name:\s*).*$/m, `$1${path.basename(d).startsWith("binkube-many-a") ? "alpha" : "beta"}`));
    }
  });

  after(async () => {
    await Promise.all(Object.values(dirs).map((d) => labDown({ dir: d, log: () => undefined })));
  });

  test("two inventories deploy at the same time from one checkout, and both clusters come up", async () => {
    const [a, b] = await Promise.all([deploy(dirs.a), deploy(dirs.b)]);
    const outA = plain(a.stdout + a.stderr);
    const outB = plain(b.stdout + b.stderr);
    fs.writeFileSync(path.join(dirs.a, "deploy1.log"), outA);
    fs.writeFileSync(path.join(dirs.b, "deploy1.log"), outB);
    assert.equal(a.code, 0, `cluster A:\n${failed(outA)}`);
    assert.equal(b.code, 0, `cluster B:\n${failed(outB)}`);
    console.log(`# concurrent first deploys: A ${(a.ms / 1000).toFixed(1)} s, B ${(b.ms / 1000).toFixed(1)} s`);
    for (const [d, out] of [[dirs.a, outA], [dirs.b, outB]] as const) {
      assert.match(out, /✓ step addons on lab1: .*1 nodes? Ready/);
      // each stack lives beside its inventory; the shared cdktf.out/stacks holds none
      assert.ok(synthesizedStackDir(d), `no stack beside ${d}`);
      const nodes = await clusterClients(d, path.join(dirs.a, "bin")).kubectl("get", "nodes", "--no-headers");
      assert.match(nodes.stdout, /^lab1\s+Ready/m, nodes.stdout + nodes.stderr);
    }
    assert.deepEqual(fs.existsSync(sharedStacks) ? fs.readdirSync(sharedStacks) : [], []);
  });

  test("a second deploy of an inventory while its first runs is refused at once, naming the first; then a no-op deploy of each changes nothing", async () => {
    // a change that rolls A's kubelet, so the first deploy is still running when the second starts
    const file = path.join(dirs.a, "cluster.yaml");
    fs.writeFileSync(file, fs.readFileSync(file, "utf8").replace("kubelet:\n  extraArgs:\n", 'kubelet:\n  extraArgs:\n    max-pods: "105"\n'));
    assert.match(fs.readFileSync(file, "utf8"), /max-pods: "105"/);
    // ...and holds it there: lab1's `systemctl restart kubelet` waits 60 s (a wrapper first in
    // PATH), so the first deploy is surely running while the second one starts up
    const wrapper = '#!/bin/sh\ncase "$*" in "restart kubelet") sleep 60;; esac\nexec /usr/bin/systemctl "$@"\n';
    assert.equal((await sshA(`echo ${Buffer.from(wrapper).toString("base64")} | base64 -d > /usr/local/sbin/systemctl && chmod 755 /usr/local/sbin/systemctl`)).code, 0);
    const first = deploy(dirs.a).finally(() => sshA("rm -f /usr/local/sbin/systemctl"));
    const deadline = Date.now() + 120_000;
    while (!lockHolder(path.join(dirs.a, ".binkube"))) {
      assert.ok(Date.now() < deadline, "the first deploy never took the inventory's lock");
      await new Promise((r) => setTimeout(r, 100));
    }
    const holder = lockHolder(path.join(dirs.a, ".binkube"))!;
    const second = await deploy(dirs.a);
    const refused = plain(second.stdout + second.stderr);
    fs.writeFileSync(path.join(dirs.a, "deploy-refused.log"), refused);
    const a = await first;
    const out = plain(a.stdout + a.stderr);
    fs.writeFileSync(path.join(dirs.a, "deploy2.log"), out);
    assert.equal(a.code, 0, `the first deploy failed:\n${failed(out)}`);
    assert.match(out, /✓ step kubelet on lab1/);
    assert.notEqual(second.code, 0, "the second deploy of the same inventory ran");
    assert.match(refused, new RegExp(`another cdktf command is working on ${dirs.a}/cluster\\.yaml: \`cdktf deploy --auto-approve\` \\(pid ${holder.pid},`));
    assert.doesNotMatch(refused, /step kubelet/, "the refused deploy ran a step");
    console.log(`# refused second deploy of one inventory: exited after ${(second.ms / 1000).toFixed(1)} s, the first took ${(a.ms / 1000).toFixed(1)} s`);
    // no-op deploys of both clusters, at the same time
    const runs = [stepRuns(dirs.a), stepRuns(dirs.b)];
    const noops = await Promise.all([deploy(dirs.a), deploy(dirs.b)]);
    noops.forEach((r, i) => {
      const o = plain(r.stdout + r.stderr);
      assert.equal(r.code, 0, `no-op deploy ${i ? "B" : "A"}:\n${failed(o)}`);
      assert.match(o, /No changes/, `the no-op deploy of ${i ? "B" : "A"} changed something`);
    });
    assert.deepEqual([stepRuns(dirs.a), stepRuns(dirs.b)], runs, "a no-op deploy ran a step");
  });

  // issue 27's scoped access, on cluster A (a whole cluster is at hand here)
  test("scoped access: a view user reads pods but no Secrets and cannot exec; an edit user is held to its namespace; revoke takes it away", async () => {
    await accessChecks({ config: path.join(dirs.a, "cluster.yaml"), kubectl: path.join(dirs.a, "bin", "kubectl"), dir: dirs.a });
  });

  test("binkube clusters lists both, with hosts, backend and last deploy", async () => {
    const r = await run(process.execPath, [path.join(ROOT, "bin", "binkube.cjs"), "clusters"], { env: { ...process.env, XDG_STATE_HOME: registry }, timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    for (const [name, d] of [["alpha", dirs.a], ["beta", dirs.b]] as const) {
      const line = r.stdout.split("\n").find((l) => l.includes(`${d}/cluster.yaml`));
      assert.ok(line, `${d} is not listed:\n${r.stdout}`);
      assert.match(line, new RegExp(`^${name}\\s+\\S+\\s+1\\s+local ${d}/\\.binkube/terraform\\.tfstate\\s+\\d+ (s|min) ago \\(state written\\)`));
    }
  });

  // issue 27's scheduled backups, on cluster B: the schedule shortened to every 20 s
  test("scheduled etcd backups: the timer snapshots on schedule and keeps the newest 2; etcd backups lists them; a restore from one brings its keyspace back", async () => {
    const d = dirs.b;
    const file = path.join(d, "cluster.yaml");
    const bin = (...a: string[]) => run(process.execPath, [path.join(ROOT, "bin", "binkube.cjs"), ...a, "--config", file], { env: env(d), timeoutMs: 600_000 });
    const { kubectl } = clusterClients(d, path.join(dirs.a, "bin"));
    const sshB = (cmd: string) => run("ssh", [...sshArgs(labB, "lab1"), cmd], { timeoutMs: 60_000 });
    const original = fs.readFileSync(file, "utf8");
    assert.match(original, /^etcd:\n  version: /m);
    fs.writeFileSync(file, original.replace(/^etcd:\n/m, 'etcd:\n  backup:\n    schedule: "*:*:0/20"\n    keep: 2\n'));
    try {
      const r = await deploy(d);
      const out = plain(r.stdout + r.stderr);
      assert.equal(r.code, 0, failed(out));
      assert.match(out, /✓ step etcd-backup on lab1: .*etcd-backup\.timer (re)?started, next snapshot/);
      assert.doesNotMatch(out, /step etcd on lab1/, "a schedule change restarted etcd");
      assert.equal((await kubectl("create", "configmap", "before-backup", "--from-literal=k=v")).code, 0);
      const t0 = Math.floor(Date.now() / 1000);
      const scheduled = async () => (await sshB("stat -c '%Y %n' /var/lib/etcd-snapshots/scheduled-*.db 2>/dev/null; true")).stdout.trim().split("\n").filter(Boolean).map((l) => ({ mtime: Number(l.split(" ")[0]), file: l.split(" ")[1]! }));
      // two runs after the ConfigMap exists (20 s apart), and never more than 2 kept
      const deadline = Date.now() + 120_000;
      let seen = await scheduled();
      while (seen.filter((s) => s.mtime > t0 + 1).length < 2) {
        assert.ok(Date.now() < deadline, `no two scheduled snapshots in 120 s: ${JSON.stringify(seen)}`);
        assert.ok(seen.length <= 2, `more than keep=2 scheduled snapshots: ${JSON.stringify(seen)}`);
        await new Promise((res) => setTimeout(res, 2000));
        seen = await scheduled();
      }
      assert.ok(seen.length <= 2, JSON.stringify(seen));
      const mode = (await sshB(`stat -c '%a' ${seen[0]!.file}`)).stdout.trim();
      assert.equal(mode, "600");
      assert.match((await sshB("systemctl show -p Result --value etcd-backup.service")).stdout, /^success/);
      const newest = seen.sort((a, b) => b.mtime - a.mtime)[0]!.file;
      const listed = await bin("etcd", "backups");
      assert.equal(listed.code, 0, listed.stderr);
      assert.ok(listed.stdout.includes(`lab1:${newest}`), `etcd backups does not list ${newest}:\n${listed.stdout}`);
      // written after the backup: gone after the restore
      assert.equal((await kubectl("create", "configmap", "after-backup", "--from-literal=k=v")).code, 0);
      // pause the timer so no later snapshot replaces the one named below
      await sshB("systemctl stop etcd-backup.timer");
      const restored = await bin("etcd", "restore", "--snapshot", `lab1:${newest}`, "--yes");
      assert.equal(restored.code, 0, restored.stdout + restored.stderr);
      assert.match(restored.stderr + restored.stdout, /etcd restored from scheduled-.*\.db on 1 members/);
      await waitUntil("the API answers after the restore", async () => (await kubectl("get", "configmap", "before-backup")).code === 0, 180_000);
      assert.match((await kubectl("get", "configmap", "after-backup")).stderr, /NotFound/);
      assert.equal((await sshB("systemctl is-active etcd-backup.timer")).stdout.trim(), "active", "the restore did not start the timer again");
    } finally {
      fs.writeFileSync(file, original);
    }
    // back to the default schedule: only the backup step changes
    const back = await deploy(d);
    assert.equal(back.code, 0, failed(plain(back.stdout + back.stderr)));
  });

  test("upgrading binkube: a stack an older binkube left in cdktf.out/stacks/ moves home; the deploy is a no-op", async () => {
    // as binkube before this change kept it: the stack in the checkout's shared directory
    const own = synthesizedStackDir(dirs.b)!;
    fs.mkdirSync(sharedStacks, { recursive: true });
    fs.renameSync(own, path.join(sharedStacks, path.basename(own)));
    const runs = stepRuns(dirs.b);
    const r = await deploy(dirs.b);
    const out = plain(r.stdout + r.stderr);
    assert.equal(r.code, 0, failed(out));
    assert.match(out, /moved this cluster's stack from .*cdktf\.out\/stacks\/binkube-beta-\w+ to .*\.binkube\/cdktf\.out\/stacks/);
    assert.match(out, /No changes/);
    assert.equal(stepRuns(dirs.b), runs, "the upgrade redeployed a step");
    assert.ok(fs.existsSync(path.join(own, ".terraform")), "the stack's terraform init did not move with it");
    assert.ok(!fs.existsSync(path.join(sharedStacks, path.basename(own))), "the old stack directory is still there");
  });

  test("cdktf destroy tears cluster B down (a killed destroy run again finishes it), leaves the host clean; a new deploy builds a cluster again", async () => {
    await teardownChecks({ dir: dirs.b, env: env(dirs.b), root: ROOT, ssh: (cmd) => run("ssh", [...sshArgs(labB, "lab1"), cmd], { timeoutMs: 120_000 }) });
  });
});
