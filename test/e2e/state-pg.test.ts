// Shared state: `state: { backend: pg }` keeps Terraform's state in a real PostgreSQL server (one
// this test starts): two concurrent deploys, one is refused naming the lock holder and nothing runs
// twice; the state outlives cdktf.out; no secret and no connection string lands in the state or
// in cdktf.out.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { labDown, labUp } from "../../lab/lab";
import { ROOT, appendClusterSettings, clusterFixtures } from "../helpers/cluster";
import { clusterSkipReason } from "../helpers/e2e";
import { synthesizedStackDir } from "../../stacks/stack-home";
import { tempDir } from "../helpers/fixtures";
import { Postgres, startPostgres } from "../helpers/postgres";
import { plain, run } from "../helpers/proc";
import { readStepsLog } from "../../src/runner/steps-log";

const skip = clusterSkipReason();

describe("shared Terraform state in PostgreSQL (state.backend: pg)", { skip }, () => {
  const dir = tempDir("binkube-pg-");
  const file = path.join(dir, "cluster.yaml");
  let pg: Postgres;
  let env: NodeJS.ProcessEnv;
  const deploy = () => run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 1_500_000 });
  const failed = (out: string) => out.split("\n").filter((l) => /binkube:|Error/.test(l)).slice(-30).join("\n");
  const stepRuns = () => readStepsLog(dir).filter((e) => e.outcome === "ok").map((e) => `${e.step} ${e.host}`);

  before(async () => {
    pg = await startPostgres(dir);
    await clusterFixtures(path.join(dir, "bin"), path.join(dir, "images"));
    // one host (etcd, master and node): the backend and its lock are what this suite is about
    assert.equal((await labUp({ dir, hosts: 1, log: () => undefined })).hosts.length, 1);
    appendClusterSettings(dir);
    fs.appendFileSync(file, "state:\n  backend: pg\n");
    env = { ...process.env, BINKUBE_CONFIG: file, CHECKPOINT_DISABLE: "1", PG_CONN_STR: pg.connStr };
  });

  after(async () => {
    await labDown({ dir, log: () => undefined });
    await pg?.stop();
  });

  // Terraform's pg backend locks with advisory locks and stores no lock info, so its refusal cannot
  // name the holder (the Lock Info it prints is the refused run's own); docs/state.md shows the query that does.
  // The second deploy is a teammate's: the same inventory and pki/ in a directory of their own
  // (from the same directory binkube's own per-inventory lock would refuse it before Terraform runs).
  test("two deploys at once (two operators): one applies, the other is refused on the lock; no step runs twice", async () => {
    const mate = tempDir("binkube-pg-mate-");
    for (const e of fs.readdirSync(dir)) {
      if ([".binkube", "cluster.yaml", "pgdata", "pgsock"].includes(e)) continue;
      // release files as hard links (binkube refuses symlinks that lead out of an inventory's directory)
      if (e === "bin" || e === "images") execFileSync("cp", ["-al", path.join(dir, e), path.join(mate, e)]);
      else fs.symlinkSync(path.join(dir, e), path.join(mate, e));
    }
    fs.copyFileSync(file, path.join(mate, "cluster.yaml"));
    const first = deploy();
    // the second starts once the first holds the lock (its apply has begun: a lock row exists)
    const deadline = Date.now() + 300_000;
    while (Number(await pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")) === 0) {
      assert.ok(Date.now() < deadline, "the first deploy never took the state lock");
      await new Promise((r) => setTimeout(r, 500));
    }
    const second = await run("npx", ["cdktf", "deploy", "--auto-approve"], { env: { ...env, BINKUBE_CONFIG: path.join(mate, "cluster.yaml") }, cwd: ROOT, timeoutMs: 1_500_000 });
    const a = await first;
    const out = plain(a.stdout + a.stderr);
    const refused = plain(second.stdout + second.stderr);
    fs.writeFileSync(path.join(dir, "deploy-first.log"), out);
    fs.writeFileSync(path.join(dir, "deploy-second.log"), refused);
    assert.equal(a.code, 0, failed(out));
    assert.notEqual(second.code, 0, "the second deploy ran beside the first");
    assert.match(refused, /Error acquiring the state lock/);
    assert.match(refused, /Workspace is already locked|already locked for workspace creation/i);
    const runs = stepRuns();
    assert.ok(runs.length >= 10, `only ${runs.length} step runs`);
    assert.equal(new Set(runs).size, runs.length, `a step ran twice: ${runs.join(", ")}`);
    assert.match(out, /✓ step addons on lab1: .*1 nodes Ready/);
  });

  test("the state lives in PostgreSQL: with its synthesized stack deleted, a deploy finds nothing to change", async () => {
    const mine = synthesizedStackDir(dir);
    assert.ok(mine, "no synthesized stack beside the inventory");
    const tf = fs.readFileSync(path.join(mine, "cdk.tf.json"), "utf8");
    assert.match(tf, /"pg": \{\s*"schema_name": "binkube_lab"\s*\}/, "the backend is pg, with no connection string in cdk.tf.json");
    assert.ok(!tf.includes(pg.connStr) && !tf.includes("pgsock"), "the connection string reached cdktf.out");
    fs.rmSync(mine, { recursive: true, force: true });
    assert.ok(!fs.existsSync(path.join(dir, ".binkube", "terraform.tfstate")), "a local state file exists beside the inventory");
    const before = stepRuns().length;
    const r = await deploy();
    const out = plain(r.stdout + r.stderr);
    assert.equal(r.code, 0, failed(out));
    assert.match(out, /No changes\. Your infrastructure matches the configuration/);
    assert.equal(stepRuns().length, before, "a step ran on a no-op deploy");
  });

  test("no private key, token, encryption key or connection string in the stored state", async () => {
    const state = await pg.sql("SELECT data FROM binkube_lab.states WHERE name = 'default'");
    assert.ok(state.length > 1000, "no state stored");
    assert.doesNotMatch(state, /PRIVATE KEY/);
    assert.ok(!state.includes("pgsock"), "the connection string is in the state");
    const keys = JSON.parse(fs.readFileSync(path.join(dir, "pki", "encryption-keys.json"), "utf8")) as { keys: { secret: string }[] };
    for (const k of keys.keys) assert.ok(!state.includes(k.secret), "an encryption key is in the state");
    for (const f of fs.readdirSync(path.join(dir, "pki")).filter((n) => n.endsWith(".key"))) {
      const body = fs.readFileSync(path.join(dir, "pki", f), "utf8").split("\n").filter((l) => l && !l.startsWith("-----"))[1] ?? "";
      assert.ok(body.length > 20 && !state.includes(body), `${f} is in the state`);
    }
  });
});
