// binkube check's host side and verdicts: the script runs for real under sh against files on this
// machine (with a scripted systemctl), and every kind of drift is named with its file or unit.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "node:test";
import { checkScript, formatReport, hostDrifts } from "../../src/check";
import type { StepInstance } from "../../src/plan";
import { sha256 } from "../../src/util/hash";
import { tempDir } from "../helpers/fixtures";

const STARTED = "Fri 2026-12-04 22:00:00 UTC";
const T0 = Date.UTC(2026, 11, 4, 22, 0, 0) / 1000;

test("check: a host that matches has no drift; an edit, a deleted file, a mode, a stale or stopped unit are each named", () => {
  const dir = tempDir("binkube-check-");
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  const sysctl = (active: string) =>
    fs.writeFileSync(path.join(bin, "systemctl"), `#!/bin/sh\ncase "$1" in is-active) echo ${active};; is-enabled) echo enabled;; show) echo "ExecMainStartTimestamp=${STARTED}";; esac\n`, { mode: 0o755 });
  const conf = path.join(dir, "kubelet.conf");
  const key = path.join(dir, "kubelet-server-key.pem");
  const cni = path.join(dir, "10-flannel.conflist");
  fs.writeFileSync(conf, "--max-pods=104\n", { mode: 0o644 });
  fs.writeFileSync(key, "KEY\n", { mode: 0o600 });
  fs.writeFileSync(cni, "{}\n", { mode: 0o644 });
  fs.chmodSync(conf, 0o644);
  fs.chmodSync(key, 0o600);
  fs.chmodSync(cni, 0o644);
  for (const f of [conf, key, cni]) fs.utimesSync(f, T0 - 60, T0 - 60);
  const owner = os.userInfo().username;
  const group = execFileSync("id", ["-gn"], { encoding: "utf8" }).trim();
  const inst = { step: "kubelet", id: "kubelet_lab2" } as StepInstance;
  const expected = [
    { inst, path: conf, sha256: sha256("--max-pods=104\n"), mode: 0o644, owner, secret: false },
    { inst, path: key, sha256: sha256("KEY\n"), mode: 0o600, owner, secret: true },
  ];
  const units = [{ inst, unit: "kubelet", paths: [conf, key] }];
  const cache = path.join(dir, "state", "sha256-cache");
  const runCheck = () => execFileSync("sh", ["-c", checkScript([conf, key], units, cache)], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
  const drifts = () => hostDrifts("lab2", expected, units, runCheck()).filter((d) => owner === group || !/^owner/.test(d.detail));

  sysctl("active");
  // files changed under 2 s ago are not cached yet: wait them out, so the second check reads the cache
  execFileSync("sleep", ["3.1"]); // ctimes are whole seconds: 3 s apart is surely over 2
  assert.deepEqual(drifts(), []);
  assert.equal(fs.readFileSync(cache, "utf8").trim().split("\n").length, 2, "both files cached");
  assert.deepEqual(drifts(), [], "a check from the cache agrees");
  // a forged cache entry is not used once the file changes (its ctime moves)

  // a hand edit of the config (and the process now older than it), a secret edited, a mode changed
  fs.writeFileSync(conf, "--max-pods=110\n"); // same size as before, and its mtime set back: only the ctime tells
  fs.utimesSync(conf, T0 - 60, T0 - 60);
  fs.writeFileSync(key, "OTHER\n");
  fs.chmodSync(key, 0o644);
  fs.utimesSync(cni, T0 + 600, T0 + 600); // a live file newer than the process: never drift
  let d = drifts();
  const text = formatReport([{ host: "lab2", drifts: d, files: 2, units: 1 }]);
  assert.match(text, new RegExp(`kubelet  ${conf}: content differs \\(sha256 [0-9a-f]{12} on the host, ${sha256("--max-pods=104\n").slice(0, 12)} planned\\)`));
  assert.match(text, new RegExp(`${key}: content differs \\(a secret: hashes not shown\\)`));
  assert.doesNotMatch(text, new RegExp(sha256("OTHER\n").slice(0, 12)), "a secret's hash is never printed");
  assert.match(text, new RegExp(`${key}: mode 0644, planned 0600`));
  assert.match(text, /unit kubelet: running process is older than its files: .*kubelet/);
  assert.equal(new Set(d.map((x) => x.id)).size, 1);
  assert.equal(d[0]!.id, "kubelet_lab2");

  // a deleted certificate and a stopped unit
  fs.rmSync(key);
  sysctl("inactive");
  d = drifts();
  assert.ok(d.some((x) => x.what === key && x.detail === "missing"), JSON.stringify(d));
  assert.ok(d.some((x) => x.what === "unit kubelet" && x.detail === "not active (inactive)"), JSON.stringify(d));
});
