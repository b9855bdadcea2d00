// Scheduled etcd backups: the inventory section and its grammar, the files the etcd-backup step
// ships (timer, per-member stagger), the shipped script run for real under sh against a scripted
// etcdctl, binkube check's verdict on a failed run, and the listing / --snapshot MEMBER:PATH parsing.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { InventoryError, loadInventory } from "../../src/inventory/load";
import type { Inventory } from "../../src/inventory/types";
import { etcdBackup, backupDelay } from "../../src/steps/etcd-backup";
import { render } from "../../src/render/engine";
import { hostDrifts } from "../../src/check";
import { parseListing, parseSnapshotRef } from "../../src/etcd-backups";
import type { StepInstance } from "../../src/plan";
import { baseInventory, tempDir, writeInventory } from "../helpers/fixtures";

const dir = tempDir("binkube-backup-");
const load = (etcd: unknown) => loadInventory(writeInventory(dir, { ...baseInventory(), etcd })).inventory;
const filesOf = (inv: Inventory, host: string) => etcdBackup.files({ inv, gone: [] } as never, inv.hosts.find((h) => h.name === host)!);
const content = (inv: Inventory, host: string, suffix: string) => filesOf(inv, host).find((f) => f.path.endsWith(suffix))!.content!;

test("etcd.backup: daily and 7 kept by default; a calendar expression is taken as written", () => {
  assert.deepEqual(load({}).etcdBackup, { schedule: "daily", keep: 7 });
  assert.deepEqual(load({ backup: { schedule: "Mon..Fri *-*-* 02:30:00", keep: 14 } }).etcdBackup, { schedule: "Mon..Fri *-*-* 02:30:00", keep: 14 });
});

test("etcd.backup: a schedule that would inject into the unit file, an unknown word, or keep 0 is refused with the fix", () => {
  for (const [backup, field, msg] of [
    [{ schedule: "daily\nExecStartPre=/bin/evil" }, "etcd.backup.schedule", /OnCalendar= expression does not use/],
    [{ schedule: "%h" }, "etcd.backup.schedule", /does not use/],
    [{ schedule: "every night" }, "etcd.backup.schedule", /names "every"/],
    [{ keep: 0 }, "etcd.backup.keep", /./],
    [{ scheduel: "daily" }, "etcd.backup.scheduel", /unknown field/],
  ] as const) {
    assert.throws(() => load({ backup }), (e: unknown) => {
      assert.ok(e instanceof InventoryError, String(e));
      assert.ok(e.issues.some((i) => i.field === field && msg.test(i.message)), `${field}: ${e.message}`);
      return true;
    });
  }
});

test("the step ships a timer on the schedule (persistent, exact) and staggers members 60 s apart", () => {
  const inv = load({ backup: { schedule: "*-*-* 03:00:00", keep: 3 } });
  assert.deepEqual(etcdBackup.hosts(inv, []).map((h) => h.name), ["k8s-master", "k8s-node", "k8s-node2"]);
  const timer = content(inv, "k8s-node", "etcd-backup.timer");
  assert.match(timer, /^OnCalendar=\*-\*-\* 03:00:00$/m);
  assert.match(timer, /^Persistent=true$/m);
  assert.match(timer, /^AccuracySec=1s$/m);
  assert.deepEqual(["k8s-master", "k8s-node", "k8s-node2"].map((h) => /^Environment=DELAY_SECONDS=(\d+)$/m.exec(content(inv, h, "etcd-backup.service"))![1]), ["0", "60", "120"]);
  assert.equal(backupDelay(inv, inv.hosts[2]!), 120);
  const script = filesOf(inv, "k8s-master").find((f) => f.path === "/opt/etcd/bin/etcd-backup")!;
  assert.equal(script.mode, 0o755);
  assert.match(script.content!, /^keep=3$/m);
});

/** The script as shipped, but pointed at a temp dir and a scripted etcdctl (and date: one name per run). */
function scriptUnderTest(root: string, keep: number): string {
  const fake = path.join(root, "etcdctl");
  fs.writeFileSync(
    fake,
    `#!/bin/sh\nfor a; do last="$a"; done\ncase "$*" in\n  *"snapshot save"*) printf partial > "$last"; [ -n "\${FAIL:-}" ] && exit 1; printf 'SNAPSHOT DATA' > "$last";;\n  *"snapshot status"*) [ -s "$3" ] && echo "1a2b3c, 42, 7, 20 kB";;\nesac\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(path.join(root, "date"), `#!/bin/sh\nn=$(cat ${root}/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > ${root}/n; printf '20261205T0000%02dZ\\n' $n\n`, { mode: 0o755 });
  const text = render("etcd/etcd-backup.sh", { snapshotDir: path.join(root, "snaps"), keep, etcdctl: fake, cacert: "/ca.pem", cert: "/c.pem", key: "/k.pem" });
  const file = path.join(root, "etcd-backup");
  fs.writeFileSync(file, text, { mode: 0o755 });
  return file;
}

test("the script: snapshot, verify, rename into place 0600; keeps the newest N scheduled ones and never the pre-restart snapshots", () => {
  const root = tempDir("binkube-backup-sh-");
  const script = scriptUnderTest(root, 2);
  const snaps = path.join(root, "snaps");
  fs.mkdirSync(snaps, { mode: 0o700 });
  fs.writeFileSync(path.join(snaps, "snapshot-20261201T000000Z.db"), "pre-restart");
  const env = { ...process.env, PATH: `${root}:${process.env.PATH}`, DELAY_SECONDS: "0" };
  for (let i = 0; i < 4; i++) {
    const out = execFileSync("sh", [script], { env, encoding: "utf8" });
    assert.match(out, /^etcd-backup: .*scheduled-20261205T0000\d\dZ\.db \(hash, revision, keys, bytes: 1a2b3c, 42, 7, 20 kB\)$/m);
  }
  assert.deepEqual(fs.readdirSync(snaps).sort(), ["scheduled-20261205T000003Z.db", "scheduled-20261205T000004Z.db", "snapshot-20261201T000000Z.db"]);
  assert.equal(fs.statSync(path.join(snaps, "scheduled-20261205T000004Z.db")).mode & 0o777, 0o600);
  assert.equal(fs.statSync(snaps).mode & 0o777, 0o700);
  assert.equal(fs.readFileSync(path.join(snaps, "scheduled-20261205T000004Z.db"), "utf8"), "SNAPSHOT DATA");
});

test("the script: a failed snapshot exits non-zero and leaves no partial file, the older ones untouched", () => {
  const root = tempDir("binkube-backup-sh-");
  const script = scriptUnderTest(root, 2);
  const env = { ...process.env, PATH: `${root}:${process.env.PATH}`, DELAY_SECONDS: "0" };
  execFileSync("sh", [script], { env });
  const r = spawnSync("sh", [script], { env: { ...env, FAIL: "1" }, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.deepEqual(fs.readdirSync(path.join(root, "snaps")), ["scheduled-20261205T000001Z.db"]);
});

test("binkube check: a backup whose last run failed is named with where to look; a successful one (inactive) is fine", () => {
  const inst = { step: "etcd-backup", id: "etcd_backup_lab1" } as StepInstance;
  const units = [{ inst, unit: "etcd-backup.service", paths: [], job: true }];
  const out = (state: string) => `U etcd-backup.service A ${state}\nU etcd-backup.service E static\nU etcd-backup.service T \n`;
  assert.deepEqual(hostDrifts("lab1", [], units, out("inactive")), []);
  const d = hostDrifts("lab1", [], units, out("failed"));
  assert.equal(d.length, 1);
  assert.match(d[0]!.detail, /its last run failed \(journalctl -u etcd-backup\.service on lab1/);
});

test("backups listing and --snapshot MEMBER:PATH", () => {
  assert.deepEqual(parseListing("lab1", "123 1764900000 /var/lib/etcd-snapshots/scheduled-1.db\ngarbage\n9 1764900001 /var/lib/etcd-snapshots/snapshot-2.db\n"), [
    { where: "lab1", file: "/var/lib/etcd-snapshots/scheduled-1.db", bytes: 123, mtime: 1764900000 },
    { where: "lab1", file: "/var/lib/etcd-snapshots/snapshot-2.db", bytes: 9, mtime: 1764900001 },
  ]);
  const inv = load({});
  assert.equal(parseSnapshotRef(inv, "/tmp/x.db"), undefined);
  assert.equal(parseSnapshotRef(inv, "backups/x.db"), undefined);
  assert.equal(parseSnapshotRef(inv, "unknown-host:/var/lib/etcd-snapshots/a.db"), undefined);
  assert.equal(parseSnapshotRef(inv, "k8s-node:/var/lib/etcd-snapshots/scheduled-1.db")!.host.name, "k8s-node");
  assert.throws(() => parseSnapshotRef(inv, "k8s-node:/etc/shadow"), /a member's snapshot is \/var\/lib\/etcd-snapshots\/NAME\.db/);
  assert.throws(() => parseSnapshotRef(inv, "k8s-node:/var/lib/etcd-snapshots/../x.db"), /NAME\.db/);
});
