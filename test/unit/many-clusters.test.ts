// Many clusters from one checkout: the per-inventory deploy lock (held in the cdktf command's
// name), the shared manifest that points at each inventory's own stack directory, its hand-over
// watcher, one inventory per directory, and the registry `binkube clusters` lists. Real processes
// and real files throughout; nothing scripted but the "cdktf" process names.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { deployOwner } from "../../src/deploy/cli-process";
import { claimDirectory, formatClusters, pruneRegistry, readRegistry, recordSynth } from "../../src/deploy/clusters";
import { lockFile, lockHolder, takeDeployLock } from "../../src/deploy/inventory-lock";
import { claim, release } from "../../src/deploy/owned-lock";
import { procStartTime } from "../../src/util/fs";
import type { Inventory } from "../../src/inventory/types";
import { adoptLegacyStack, publishManifest, sharedManifest, stackDir, stackHome } from "../../stacks/stack-home";
import { tempDir } from "../helpers/fixtures";

const me = () => ({ pid: process.pid, start: procStartTime(process.pid)!, command: "cdktf deploy --auto-approve" });

/** A live process that is not us (a stand-in for another cdktf command), and how to end it. */
function otherProcess(argv0 = "sleep"): { pid: number; start: number; stop: () => Promise<void> } {
  const child = spawn(argv0 === "sleep" ? "sleep" : "bash", argv0 === "sleep" ? ["30"] : ["-c", `exec -a ${argv0} sleep 30`], { stdio: "ignore" });
  const pid = child.pid!;
  return { pid, start: procStartTime(pid)!, stop: () => new Promise((r) => { child.once("exit", () => r()); child.kill(); }) };
}

test("deploy lock: the second command on one inventory is refused at once, naming the first; a dead holder's lock is taken over", async () => {
  const dir = tempDir("binkube-lock-");
  const other = otherProcess();
  try {
    takeDeployLock(dir, "/x/cluster.yaml", { pid: other.pid, start: other.start, command: "cdktf deploy --auto-approve" });
    assert.equal(lockHolder(dir)?.pid, other.pid);
    assert.throws(() => takeDeployLock(dir, "/x/cluster.yaml", me()), (e: Error) => {
      assert.match(e.message, new RegExp(`another cdktf command is working on /x/cluster.yaml: \`cdktf deploy --auto-approve\` \\(pid ${other.pid}, started \\d+ s ago\\)`));
      assert.match(e.message, /deploy\.lock/);
      return true;
    });
  } finally {
    await other.stop();
  }
  // the holder died without cleaning up: the next command takes the lock over
  assert.equal(lockHolder(dir), undefined);
  takeDeployLock(dir, "/x/cluster.yaml", me());
  assert.equal(lockHolder(dir)?.pid, process.pid);
  takeDeployLock(dir, "/x/cluster.yaml", me()); // the same command again: no-op
  assert.equal((fs.statSync(lockFile(dir)).mode & 0o777), 0o600);
});

test("deploy lock: a recycled pid (same number, other start time) does not hold the lock", () => {
  const dir = tempDir("binkube-lock-");
  fs.writeFileSync(lockFile(dir), JSON.stringify({ pid: process.pid, start: procStartTime(process.pid)! - 1, command: "cdktf deploy", inventory: "/x", since: new Date().toISOString() }));
  assert.equal(lockHolder(dir), undefined);
  assert.equal(claim(lockFile(dir), { pid: process.pid, start: procStartTime(process.pid)! }), undefined);
});

test("owned lock: release removes only the lock its holder still holds", () => {
  const dir = tempDir("binkube-lock-");
  const f = path.join(dir, "l");
  const a = { pid: process.pid, start: procStartTime(process.pid)! };
  assert.equal(claim(f, a), undefined);
  release(f, { pid: a.pid, start: a.start + 1 });
  assert.ok(fs.existsSync(f));
  release(f, a);
  assert.ok(!fs.existsSync(f));
});

test("deployOwner: the cdktf command above this process, else this process", async () => {
  assert.equal(deployOwner().pid, process.pid); // the test runner is no cdktf
  // a process tree like cdktf's: node …/.bin/cdktf deploy → sh -c "node bin/synth.cjs" → app
  const dir = tempDir("binkube-owner-");
  const fakeCli = path.join(dir, "cdktf");
  const out = path.join(dir, "owner.json");
  const probe = `require(${JSON.stringify(path.join(__dirname, "..", "..", "node_modules", "tsx", "dist", "cjs", "index.cjs"))}); fs=require("fs"); fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify(require(${JSON.stringify(path.join(__dirname, "..", "..", "src", "deploy", "cli-process.ts"))}).deployOwner()))`;
  fs.writeFileSync(fakeCli, `require("child_process").execSync(${JSON.stringify(`${process.execPath} -e '${probe.replace(/'/g, "'\\''")}'`)}, { stdio: "inherit" });\n`);
  const cli = spawn(process.execPath, [fakeCli, "deploy", "--auto-approve"], { stdio: "inherit" });
  await new Promise((r) => cli.once("exit", r));
  const owner = JSON.parse(fs.readFileSync(out, "utf8")) as { pid: number; command: string };
  assert.equal(owner.pid, cli.pid);
  assert.equal(owner.command, "cdktf deploy --auto-approve");
});

test("one inventory per directory: a second inventory beside the first is refused with the fix; a renamed one takes over", () => {
  const dir = tempDir("binkube-dir-");
  const a = path.join(dir, "a.yaml");
  const b = path.join(dir, "b.yaml");
  fs.writeFileSync(a, "");
  fs.writeFileSync(b, "");
  claimDirectory(a, dir);
  claimDirectory(a, dir);
  assert.throws(() => claimDirectory(b, dir), /already holds the cluster of .*a\.yaml.*put b\.yaml in a directory of its own/);
  fs.rmSync(a); // renamed away: the directory's cluster now answers to b.yaml
  claimDirectory(b, dir);
  assert.equal(fs.readFileSync(path.join(dir, ".binkube", "inventory"), "utf8").trim(), b);
});

test("shared manifest: cdktf.out/manifest.json names the inventory's own stack, by paths relative to cdktf.out", () => {
  const root = tempDir("binkube-manifest-");
  const shared = path.join(root, "checkout", "cdktf.out");
  const base = path.join(root, "clusters", "prod");
  const home = stackHome(base);
  fs.mkdirSync(path.join(home, "stacks", "binkube-prod-1"), { recursive: true });
  fs.writeFileSync(path.join(home, "manifest.json"), JSON.stringify({ version: "0.21.0", stacks: { "binkube-prod-1": { name: "binkube-prod-1", workingDirectory: "stacks/binkube-prod-1", synthesizedStackPath: "stacks/binkube-prod-1/cdk.tf.json", stackMetadataPath: "stacks/binkube-prod-1/metadata.json", dependencies: [] } } }));
  const m = JSON.parse(sharedManifest(shared, home)) as { version: string; stacks: Record<string, { workingDirectory: string; synthesizedStackPath: string; stackMetadataPath: string }> };
  const s = m.stacks["binkube-prod-1"]!;
  // exactly as cdktf resolves them (synth-stack.js: path.join(outdir, …))
  assert.equal(path.join(shared, s.workingDirectory), stackDir(base, "binkube-prod-1"));
  assert.equal(path.join(shared, s.synthesizedStackPath), path.join(stackDir(base, "binkube-prod-1"), "cdk.tf.json"));
  assert.equal(path.join(shared, s.stackMetadataPath), path.join(stackDir(base, "binkube-prod-1"), "metadata.json"));
  assert.equal(m.version, "0.21.0");
});

test("shared manifest lock: a second synth waits until the first cdktf command has read the manifest, then writes its own", async () => {
  const root = tempDir("binkube-manifest-");
  const shared = path.join(root, "cdktf.out");
  const mk = (name: string) => {
    const base = path.join(root, name);
    fs.mkdirSync(stackDir(base, name), { recursive: true });
    fs.writeFileSync(path.join(stackHome(base), "manifest.json"), JSON.stringify({ stacks: { [name]: { name, workingDirectory: `stacks/${name}`, synthesizedStackPath: `stacks/${name}/cdk.tf.json` } } }));
    return base;
  };
  const a = mk("a");
  const b = mk("b");
  const cliA = otherProcess(); // A's cdktf command, still running and not yet in Terraform
  const said: string[] = [];
  try {
    publishManifest({ sharedOutdir: shared, baseDir: a, stack: "a", inventory: "A", owner: { pid: cliA.pid, start: cliA.start, command: "cdktf deploy" }, say: (m) => said.push(m) });
    const lock = JSON.parse(fs.readFileSync(path.join(shared, ".manifest.lock"), "utf8")) as { pid: number };
    assert.notEqual(lock.pid, process.pid, "the lock was handed to a watcher that outlives the app");
    // B cannot take it while A's command has not read the manifest (short wait: it gives up)
    assert.throws(() => publishManifest({ sharedOutdir: shared, baseDir: b, stack: "b", inventory: "B", owner: me(), say: (m) => said.push(m), waitMs: 600 }), /still held by the synth of A/);
    assert.match(said.join("\n"), /waiting for the cdktf command of A to read/);
    assert.match(fs.readFileSync(path.join(shared, "manifest.json"), "utf8"), /"a"/);
    // A's command ends (a `cdktf synth` does, right after reading): the watcher frees the lock
  } finally {
    await cliA.stop();
  }
  const t0 = Date.now();
  publishManifest({ sharedOutdir: shared, baseDir: b, stack: "b", inventory: "B", owner: me(), say: () => undefined, waitMs: 5000 });
  assert.ok(Date.now() - t0 < 3000, "the watcher did not free the lock when A's command ended");
  assert.match(fs.readFileSync(path.join(shared, "manifest.json"), "utf8"), /"b"/);
});

test("manifest watcher: frees the lock as soon as the command runs a process in the stack's directory", async () => {
  const root = tempDir("binkube-watch-");
  const base = path.join(root, "c");
  fs.mkdirSync(stackDir(base, "c"), { recursive: true });
  fs.writeFileSync(path.join(stackHome(base), "manifest.json"), JSON.stringify({ stacks: { c: { name: "c", workingDirectory: "stacks/c", synthesizedStackPath: "stacks/c/cdk.tf.json" } } }));
  const shared = path.join(root, "cdktf.out");
  // a stand-in cdktf command: first a node process in the stack's directory (as the step server the
  // app prestarts), which must not count; after 2 s "terraform" there
  const sd = JSON.stringify(fs.realpathSync(stackDir(base, "c")));
  const cli = spawn("bash", ["-c", `(cd ${sd} && exec ${JSON.stringify(process.execPath)} -e 'setTimeout(() => {}, 4000)') & sleep 2; cd ${sd} && sleep 20`], { stdio: "ignore" });
  try {
    publishManifest({ sharedOutdir: shared, baseDir: base, stack: "c", inventory: "C", owner: { pid: cli.pid!, start: procStartTime(cli.pid!)!, command: "cdktf deploy" }, say: () => undefined });
    assert.ok(fs.existsSync(path.join(shared, ".manifest.lock")));
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(fs.existsSync(path.join(shared, ".manifest.lock")), "a node process in the stack's directory freed the lock");
    const t0 = Date.now();
    while (fs.existsSync(path.join(shared, ".manifest.lock")) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 50));
    assert.ok(!fs.existsSync(path.join(shared, ".manifest.lock")), "still locked 5 s after the command entered the stack directory");
    assert.ok(cli.exitCode === null, "the command was still running: the lock was freed by its Terraform, not by its end");
  } finally {
    cli.kill();
  }
});

test("upgrade: a stack in the shared cdktf.out/stacks/ moves home with its terraform init, leaving nothing behind", () => {
  const root = tempDir("binkube-adopt-");
  const shared = path.join(root, "cdktf.out");
  const old = path.join(shared, "stacks", "binkube-x-1");
  fs.mkdirSync(path.join(old, ".terraform"), { recursive: true });
  fs.writeFileSync(path.join(old, ".terraform.lock.hcl"), "lock");
  const base = path.join(root, "inv");
  assert.equal(adoptLegacyStack(shared, "binkube-x-1", base), true);
  assert.equal(fs.readFileSync(path.join(stackDir(base, "binkube-x-1"), ".terraform.lock.hcl"), "utf8"), "lock");
  assert.ok(!fs.existsSync(old), "the old directory is left behind (a concurrent synth of another inventory would try to prune it)");
  assert.equal(adoptLegacyStack(shared, "binkube-x-1", base), false, "adopted once only");
});

test("binkube clusters: each synth records its inventory; the table shows backend, hosts, last deploy and who is deploying now", () => {
  const root = tempDir("binkube-reg-");
  const env = { XDG_STATE_HOME: path.join(root, "state") };
  const inv = (name: string, n: number): Inventory => {
    const baseDir = path.join(root, name);
    fs.mkdirSync(baseDir, { recursive: true });
    fs.writeFileSync(path.join(baseDir, "cluster.yaml"), "");
    return { file: path.join(baseDir, "cluster.yaml"), baseDir, clusterName: name, hosts: Array.from({ length: n }, () => ({})), state: name === "pgc" ? { backend: "pg", schema: "binkube_pgc" } : { backend: "local" } } as unknown as Inventory;
  };
  const staging = inv("staging", 3);
  const pgc = inv("pgc", 6);
  recordSynth(staging, { stack: "binkube-staging-1", checkout: "/co", deploying: true, now: new Date("2026-12-05T01:00:00Z"), env });
  recordSynth(pgc, { stack: "binkube-pgc-1", checkout: "/co", deploying: false, env });
  recordSynth(staging, { stack: "binkube-staging-1", checkout: "/co", deploying: false, now: new Date("2026-12-05T01:30:00Z"), env });
  const recs = readRegistry(env);
  assert.equal(recs.length, 2);
  const st = recs.find((r) => r.cluster === "staging")!;
  assert.equal(st.lastDeploy, "2026-12-05T01:00:00.000Z", "a synth that is not a deploy keeps the last deploy's time");
  assert.equal(st.lastSynth, "2026-12-05T01:30:00.000Z");
  // staging is deploying now (its lock is ours); its state was written 5 min ago
  takeDeployLock(path.join(staging.baseDir, ".binkube"), staging.file, me());
  fs.writeFileSync(path.join(staging.baseDir, ".binkube", "terraform.tfstate"), "{}");
  const when = new Date(Date.now() - 300_000);
  fs.utimesSync(path.join(staging.baseDir, ".binkube", "terraform.tfstate"), when, when);
  fs.rmSync(pgc.file);
  const table = formatClusters(recs);
  const lines = table.split("\n");
  assert.match(lines[0]!, /^CLUSTER\s+INVENTORY\s+HOSTS\s+STATE\s+LAST DEPLOY\s+NOW$/);
  assert.match(lines.find((l) => l.startsWith("staging"))!, new RegExp(`3\\s+local .*staging/\\.binkube/terraform\\.tfstate\\s+5 min ago \\(state written\\)\\s+deploying now \\(pid ${process.pid}: cdktf deploy --auto-approve\\)`));
  assert.match(lines.find((l) => l.startsWith("pgc"))!, /6\s+pg schema binkube_pgc\s+never\s+inventory gone/);
  assert.match(formatClusters([]), /no cluster deployed from this machine yet/);
  assert.deepEqual(pruneRegistry(env), [pgc.file]);
  assert.deepEqual(readRegistry(env).map((r) => r.cluster), ["staging"]);
});
