// The control plane's local hardening, run for real where it can be: the audit log's mode (with
// the shell command the apiserver step sends), and the health probes of the secure ports.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { AUDIT_LOG, auditLogCommand } from "../../src/steps/apiserver";
import { SECURE_PORT, healthzCommand } from "../../src/steps/component";
import { tempDir } from "../helpers/fixtures";

const mode = (f: string) => (fs.statSync(f).mode & 0o777).toString(8);

test("the audit log and its rotated copies become 0600 in a 0700 directory, others untouched; a fresh host gets the file before the apiserver", (t) => {
  if (process.getuid?.() !== 0) return t.skip("the command chowns to root");
  const dir = path.join(tempDir(), "logs");
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  const log = path.join(dir, "k8s-audit.log");
  // what a v1.17 apiserver left behind: lumberjack v2.0.0 files, 0644
  for (const f of ["k8s-audit.log", "k8s-audit-2026-12-01T10-00-00.000.log", "other.log"]) fs.writeFileSync(path.join(dir, f), "{}\n", { mode: 0o644 });
  execFileSync("sh", ["-c", auditLogCommand(log)]);
  assert.equal(mode(dir), "700");
  assert.equal(mode(log), "600");
  assert.equal(mode(path.join(dir, "k8s-audit-2026-12-01T10-00-00.000.log")), "600");
  assert.equal(mode(path.join(dir, "other.log")), "644", "only the audit log's files");
  assert.equal(fs.readFileSync(log, "utf8"), "{}\n", "the log's content stays");
  const fresh = path.join(tempDir(), "new", "logs", "k8s-audit.log");
  execFileSync("sh", ["-c", auditLogCommand(fresh)]);
  assert.equal(mode(fresh), "600");
  assert.equal(AUDIT_LOG, "/opt/kubernetes/logs/k8s-audit.log");
});

test("the scheduler's and controller-manager's health probes use their secure ports over TLS, anonymously, on loopback", () => {
  assert.deepEqual(SECURE_PORT, { "kube-controller-manager": 10257, "kube-scheduler": 10259 });
  const dir = tempDir("binkube-healthz-");
  // a curl that records what it was asked and answers as the component does
  fs.writeFileSync(path.join(dir, "curl"), `#!/bin/sh\necho "$@" > ${dir}/args\nprintf ok\n`, { mode: 0o755 });
  for (const unit of ["kube-scheduler", "kube-controller-manager"] as const) {
    const out = execFileSync("/bin/sh", ["-c", healthzCommand(unit)], { encoding: "utf8", env: { PATH: `${dir}:/usr/bin:/bin` } });
    assert.equal(out.trim(), "ok");
    const args = fs.readFileSync(path.join(dir, "args"), "utf8").trim();
    assert.equal(args, `-sk --max-time 5 https://127.0.0.1:${SECURE_PORT[unit]}/healthz`, "no credentials: /healthz is always allowed");
  }
  // a host without curl says so (the gate turns it into an error naming the fix)
  const empty = tempDir("binkube-nocurl-");
  fs.symlinkSync("/bin/sh", path.join(empty, "sh"));
  assert.equal(execFileSync("/bin/sh", ["-c", healthzCommand("kube-scheduler")], { encoding: "utf8", env: { PATH: empty } }).trim(), "no-curl");
});
