// steps.log: the lines the runner writes read back as bench:deploy and the e2e read them.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { describe, test } from "node:test";
import { readStepsLog, record, stepsLogPath, stepsLogSize } from "../../src/runner/steps-log";
import * as path from "node:path";
import { runStep } from "../../src/runner/run-step";
import { watchFailures } from "../../src/steps/first-bring-up";
import type { RunContext } from "../../src/steps/types";
import type { Inventory } from "../../src/inventory/types";
import { operatorSide } from "../../src/runner/operator-side";
import { takeDeployLock } from "../../src/deploy/inventory-lock";
import { procStartTime } from "../../src/util/fs";
import { tempDir } from "../helpers/fixtures";

describe("steps.log", () => {
  test("a step run, a skipped step and a staged host read back with their sizes, phases and relay counts; `from` skips what came before", () => {
    const dir = tempDir("binkube-steps-log-");
    record(dir, "etcd lab1 ok 5.3s 1234B start=0.22 plan=0.61 connect=0.24 upload=3.09 work=0.77 gate=0.62 peer=36782080 fallbacks=1");
    const mark = stepsLogSize(dir);
    record(dir, "kube-proxy lab2 skipped");
    record(dir, "stage lab3 staged 12.5s 900B peer=437429824 files=7");
    fs.appendFileSync(stepsLogPath(dir), "a line of another shape\n");
    const all = readStepsLog(dir);
    assert.equal(all.length, 3, "the line of another shape is not an entry");
    const [etcd, skipped, staged] = all;
    assert.deepEqual({ ...etcd!, at: 0 }, {
      at: 0, step: "etcd", host: "lab1", outcome: "ok", secs: 5.3, bytes: 1234,
      fields: { start: 0.22, plan: 0.61, connect: 0.24, upload: 3.09, work: 0.77, gate: 0.62, peer: 36782080, fallbacks: 1 },
    });
    assert.ok(Math.abs(etcd!.at - Date.now()) < 60_000, "stamped when written");
    assert.equal(skipped!.outcome, "skipped");
    assert.equal(skipped!.bytes, 0);
    assert.deepEqual([staged!.step, staged!.host, staged!.outcome, staged!.secs, staged!.bytes, staged!.fields.peer, staged!.fields.files], ["stage", "lab3", "staged", 12.5, 900, 437429824, 7]);
    assert.deepEqual(readStepsLog(dir, mark).map((e) => `${e.step} ${e.host}`), ["kube-proxy lab2", "stage lab3"]);
    assert.deepEqual(readStepsLog(tempDir("binkube-steps-log-")), [], "no log: no entries");
  });

  test("a step run that fails is a `failed` line beside its inventory (none without an inventory file)", async () => {
    const dir = tempDir("binkube-steps-log-");
    const config = path.join(dir, "cluster.yaml");
    fs.writeFileSync(config, "");
    const opts = { verbose: false, allowMissingBinaries: false, out: () => undefined };
    await assert.rejects(runStep(config, "no-such-step", "lab2", opts), /unknown step/);
    const [failed] = readStepsLog(dir);
    assert.deepEqual([failed?.step, failed?.host, failed?.outcome], ["no-such-step", "lab2", "failed"]);
    await assert.rejects(runStep(path.join(dir, "none", "cluster.yaml"), "no-such-step", "lab2", opts), /unknown step/);
    assert.equal(fs.existsSync(path.join(dir, "none")), false);
  });

  test("a first bring-up's wait stops when a step it waits for fails in this deploy (the addons' nodes)", async () => {
    const dir = tempDir("binkube-steps-log-");
    const rc = (firstBringUp: boolean) => ({ firstBringUp, inv: { baseDir: dir }, host: { name: "lab1" }, operator: operatorSide({ baseDir: dir, pkiDir: path.join(dir, "pki") } as Inventory) }) as unknown as RunContext;
    const nodes = ["lab1", "lab2", "lab3"];
    const onNodes = (e: { host: string }) => nodes.includes(e.host);
    const tick = () => new Promise((r) => setTimeout(r, 5));
    record(dir, "runtime lab3 failed 3.0s"); // an earlier deploy's
    await tick();
    // no deploy holds the lock (a step run by hand): only what fails after the wait started
    const byHand = watchFailures(rc(true), onNodes, "the nodes to join");
    byHand();
    // this deploy took the lock after that failure; one of its own fails before the wait starts
    takeDeployLock(path.join(dir, ".binkube"), path.join(dir, "cluster.yaml"), { pid: process.pid, start: procStartTime(process.pid)!, command: "cdktf deploy --auto-approve" });
    await tick();
    record(dir, "runtime lab2 failed 2.0s");
    assert.throws(byHand, /step runtime on lab2 failed while lab1 waited for the nodes to join/);
    const watch = watchFailures(rc(true), onNodes, "the nodes to join");
    assert.throws(watch, (e: Error) => /step runtime on lab2 failed/.test(e.message) && !/lab3/.test(e.message));
    const later = watchFailures(rc(false), onNodes, "the nodes to join");
    record(dir, "etcd-backup lab9 failed 1.0s"); // not a host it waits for
    assert.throws(() => watchFailures(rc(true), (e) => e.host === "lab9", "lab9")(), /etcd-backup on lab9/);
    later(); // not a first bring-up: the step ran after what it needs, nothing to watch
  });
});
