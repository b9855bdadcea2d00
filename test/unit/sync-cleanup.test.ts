// A sync's check script deletes the temp files of earlier, interrupted syncs of its targets, and
// nothing newer: the check script of a sync whose connection was killed can still be running on
// the host when the sync that retries it uploads (run here by sh on real files).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { buildCheckScript, prepareFiles, tempPathFor } from "../../src/remote/sync";
import { tempDir } from "../helpers/fixtures";

test("check script: temps of syncs that started earlier (and of older binkube names) go; this sync's and later syncs' stay", () => {
  const dir = path.join(tempDir("binkube-sync-cleanup-"), "a b'c*");
  fs.mkdirSync(dir);
  const [f] = prepareFiles("h", "h", [{ path: path.join(dir, "etcd"), mode: 0o755, content: "x" }]);
  const started = 1_765_000_000_000;
  const temps = {
    legacy: tempPathFor(f!, "0a1b2c3d4e5f"),
    earlier: tempPathFor(f!, `${started - 1}-aaaaaaaaaaaa`),
    mine: tempPathFor(f!, `${started}-bbbbbbbbbbbb`),
    sameTime: tempPathFor(f!, `${started}-cccccccccccc`),
    later: tempPathFor(f!, `${started + 5}-dddddddddddd`),
  };
  for (const t of Object.values(temps)) fs.writeFileSync(t, "half an upload");
  fs.writeFileSync(path.join(dir, ".other.binkube-tmp-1-ffffffffffff"), "another target's");
  execFileSync("sh", ["-c", buildCheckScript([f!], { keep: [temps.mine], startedMs: started })]);
  const left = fs.readdirSync(dir).sort();
  assert.deepEqual(left, [path.basename(temps.mine), path.basename(temps.sameTime), path.basename(temps.later), ".other.binkube-tmp-1-ffffffffffff"].sort());
  // without a start time (the old contract): everything but `keep`
  execFileSync("sh", ["-c", buildCheckScript([f!], { keep: [temps.mine] })]);
  assert.deepEqual(fs.readdirSync(dir).sort(), [path.basename(temps.mine), ".other.binkube-tmp-1-ffffffffffff"].sort());
});
