// Lab slot registry: a slot left behind by a lab whose processes were all killed is free again
// (a CI run once got slot 1's addresses because a killed e2e run had left slot 0 claimed), while a
// lab with a running host, or whose owning process still runs, keeps its slot.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { allocateSlot, otherLiveLabs, releaseSlot } from "../../lab/registry";
import { procStartTime } from "../../lab/util";
import { tempDir } from "../helpers/fixtures";

let run: string;
let tmp: string;

beforeEach(() => {
  tmp = tempDir("binkube-registry-");
  run = path.join(tmp, "run");
  process.env.BINKUBE_LAB_RUN = run;
});

/** A lab dir whose lab.json claims SLOT, with hosts at the given pids. */
function labDir(name: string, slot: number, hosts: { pid: number | null; pidStartTime: number | null }[] = []): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, "lab.json"), JSON.stringify({ version: 1, dir, slot, hosts }));
  return dir;
}

/** Rewrites slot S's entry as if process PID had written it. */
function ownedBy(slot: number, pid: number, start: number | null): void {
  const f = path.join(run, "slots", `${slot}.json`);
  const v = JSON.parse(fs.readFileSync(f, "utf8")) as { dir: string };
  fs.writeFileSync(f, JSON.stringify({ dir: v.dir, owner: { pid, start } }));
}

/** A pid that is certainly not running: a child that has exited. */
async function deadPid(): Promise<number> {
  const c = spawn("true");
  await new Promise((r) => c.on("exit", r));
  return c.pid!;
}

test("a slot whose owner and hosts are all gone is given to the next lab, with a message", async () => {
  const old = labDir("old", 0, [{ pid: await deadPid(), pidStartTime: 1 }]);
  assert.equal(allocateSlot(old), 0);
  ownedBy(0, await deadPid(), 1);
  const said: string[] = [];
  const fresh = labDir("fresh", 0);
  fs.rmSync(path.join(fresh, "lab.json"));
  assert.equal(allocateSlot(fresh, undefined, (m) => said.push(m)), 0);
  assert.match(said.join("\n"), new RegExp(`slot 0 freed: nothing of ${old} runs any more`));
});

test("a slot stays taken while its owning process runs, even with every host powered off", async () => {
  const a = labDir("a", 0, [{ pid: await deadPid(), pidStartTime: 1 }]);
  assert.equal(allocateSlot(a), 0);
  const b = path.join(tmp, "b");
  assert.equal(allocateSlot(b), 1);
  assert.deepEqual(otherLiveLabs(b), [a]);
});

test("a slot stays taken while one of its hosts runs, after the process that brought it up exited", async () => {
  const me = { pid: process.pid, pidStartTime: procStartTime(process.pid) ?? null };
  const a = labDir("a", 0, [{ pid: await deadPid(), pidStartTime: 1 }, me]);
  assert.equal(allocateSlot(a), 0);
  ownedBy(0, await deadPid(), 1);
  assert.equal(allocateSlot(path.join(tmp, "b")), 1);
});

test("a pid reused by another process does not keep a dead lab's slot", async () => {
  // Same pid as this process, but another start time: the owner it names is gone.
  const a = labDir("a", 0);
  assert.equal(allocateSlot(a), 0);
  ownedBy(0, process.pid, (procStartTime(process.pid) ?? 0) + 12345);
  assert.equal(allocateSlot(path.join(tmp, "b")), 0);
});

test("bringing a lab up again keeps its slot and makes the new process its owner", async () => {
  const a = labDir("a", 3);
  assert.equal(allocateSlot(a, 3), 3);
  ownedBy(3, await deadPid(), 1);
  assert.equal(allocateSlot(a, 3), 3);
  const v = JSON.parse(fs.readFileSync(path.join(run, "slots", "3.json"), "utf8")) as { owner: { pid: number } };
  assert.equal(v.owner.pid, process.pid);
  releaseSlot(a);
  assert.deepEqual(fs.readdirSync(path.join(run, "slots")), []);
});

test("an entry written before owners were recorded is live while one of its hosts runs", () => {
  const me = { pid: process.pid, pidStartTime: procStartTime(process.pid) ?? null };
  const a = labDir("a", 0, [me]);
  const dead = labDir("dead", 1, [{ pid: null, pidStartTime: null }]);
  fs.mkdirSync(path.join(run, "slots"), { recursive: true });
  fs.writeFileSync(path.join(run, "slots", "0.json"), JSON.stringify({ dir: a }));
  fs.writeFileSync(path.join(run, "slots", "1.json"), JSON.stringify({ dir: dead }));
  assert.equal(allocateSlot(path.join(tmp, "b")), 1);
});
