// A unit older than the files it reads is restarted by the next run, whatever left it so (a run
// stopped between upload and restart, a file placed by hand); files read per use never count.
// The probe's shell runs for real here (a PATH with a scripted systemctl); applyUnit's decisions
// run against a scripted host.
import { operatorSide } from "../../src/runner/operator-side";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import type { ExecResult } from "../../src/remote";
import { applyUnit } from "../../src/steps/actions";
import { describeStale, parseSystemdTime, parseUnitProbe, readAtStart, unitProbeScript } from "../../src/steps/unit-probe";
import type { PlannedFile, RunContext } from "../../src/steps/types";
import { baseInventory, tempDir } from "../helpers/fixtures";

const STARTED = "Fri 2026-12-04 22:00:00 UTC";
const T0 = Date.UTC(2026, 11, 4, 22, 0, 0) / 1000;

describe("unit probe", () => {
  test("systemd's UTC timestamp parses to epoch seconds; n/a and empty are 'never started'", () => {
    assert.equal(parseSystemdTime(STARTED), T0);
    assert.equal(parseSystemdTime(""), undefined);
    assert.equal(parseSystemdTime("n/a"), undefined);
  });

  test("the script, run by sh against real files and a scripted systemctl, reports state, start and only the newer files", () => {
    const dir = tempDir("binkube-probe-");
    const bin = path.join(dir, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(
      path.join(bin, "systemctl"),
      `#!/bin/sh\ncase "$1" in is-active) echo active;; is-enabled) echo enabled;; show) [ "$TZ" = UTC0 ] && echo "ExecMainStartTimestamp=${STARTED}";; esac\n`,
      { mode: 0o755 },
    );
    const older = path.join(dir, "kubelet-config.yml");
    const newer = path.join(dir, "kubelet.conf");
    const newest = path.join(dir, "kubelet.service");
    for (const f of [older, newer, newest]) fs.writeFileSync(f, "x");
    fs.utimesSync(older, T0 - 60, T0 - 60);
    fs.utimesSync(newer, T0 + 60, T0 + 60);
    fs.utimesSync(newest, T0 + 120, T0 + 120);
    const units = [{ unit: "kubelet", paths: [older, newer, newest, path.join(dir, "missing.pem")] }];
    const out = execFileSync("sh", ["-c", unitProbeScript(units)], { encoding: "utf8", env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const p = parseUnitProbe(out, units).get("kubelet")!;
    assert.equal(p.active, "active");
    assert.equal(p.enabled, "enabled");
    assert.equal(p.startedAt, T0);
    assert.deepEqual(p.stale.map((s) => s.path), [newest, newer]);
    assert.match(describeStale(p), /kubelet\.service changed at 22:02:00 UTC and 1 more, after the process started at 22:00:00$/);
  });

  test("a unit that never started has no stale file (it is simply started)", () => {
    const p = parseUnitProbe("U etcd A inactive\nU etcd E disabled\nU etcd T \nF 1900000000 /opt/etcd/cfg/etcd.conf\n", [{ unit: "etcd", paths: ["/opt/etcd/cfg/etcd.conf"] }]).get("etcd")!;
    assert.equal(p.startedAt, undefined);
    assert.deepEqual(p.stale, []);
  });

  test("files read per use (live) are not among the files a unit reads at start", () => {
    const files: PlannedFile[] = [
      { path: "/opt/kubernetes/bin/kubelet", mode: 0o755, binary: "kubelet" },
      { path: "/etc/cni/net.d/10-flannel.conflist", mode: 0o644, content: "{}", live: true },
    ];
    assert.deepEqual(readAtStart(files), ["/opt/kubernetes/bin/kubelet"]);
  });
});

/** A host whose probe answers `probeOut` and that records every command. */
function scripted(probeOut: string, files: PlannedFile[]) {
  const inv = parseInventory(stringify(baseInventory()), path.join(tempDir("binkube-apply-"), "cluster.yaml")).inventory;
  const commands: string[] = [];
  const exec = async (command: string): Promise<ExecResult> => {
    commands.push(command);
    if (command.startsWith("printf 'U %s A %s\\n'")) return { code: 0, stdout: probeOut, stderr: "" };
    if (/^systemctl daemon-reload && systemctl enable --quiet kubelet && systemctl (re)?start kubelet$/.test(command)) return { code: 0, stdout: "", stderr: "" };
    throw new Error(`unscripted command: ${command}`);
  };
  const remote = { exec, fetchFile: async () => ({ bytes: 0, sha256: "" }) };
  const rc: RunContext = { inv, host: inv.hosts[0]!, files, firstBringUp: false, remote, log: () => {}, note: () => {}, warn: () => {}, sh: exec, sync: async () => ({ changed: [], unchanged: [], bytesSent: 0, peerBytes: 0, peerFallbacks: 0 }), controlPlane: async () => remote, onHost: async () => remote, operator: operatorSide(inv) };
  return { rc, commands };
}

describe("applyUnit", () => {
  const files: PlannedFile[] = [
    { path: "/opt/kubernetes/cfg/kubelet.conf", mode: 0o644, content: "--max-pods=105" },
    { path: "/etc/cni/net.d/10-flannel.conflist", mode: 0o644, content: "{}", live: true },
  ];

  test("nothing changed in this run, but the running kubelet is older than kubelet.conf: restarted, and the result says why", async () => {
    const h = scripted(`U kubelet A active\nU kubelet E enabled\nU kubelet T ${STARTED}\nF ${T0 + 5} /opt/kubernetes/cfg/kubelet.conf\n`, files);
    const action = await applyUnit(h.rc, "kubelet", false);
    assert.ok(h.commands.includes("systemctl daemon-reload && systemctl enable --quiet kubelet && systemctl restart kubelet"), h.commands.join("\n"));
    assert.match(action, /^kubelet restarted \(it was older than its files: \/opt\/kubernetes\/cfg\/kubelet\.conf changed at 22:00:05 UTC/);
  });

  test("a newer file that is read per use (the CNI config flannel rewrites) restarts nothing", async () => {
    const h = scripted(`U kubelet A active\nU kubelet E enabled\nU kubelet T ${STARTED}\nF ${T0 - 5} /opt/kubernetes/cfg/kubelet.conf\n`, files);
    // the probe is only asked about kubelet.conf: the live file is not in the script at all
    const action = await applyUnit(h.rc, "kubelet", false);
    assert.doesNotMatch(h.commands[0]!, /10-flannel/);
    assert.equal(action, "kubelet running");
    assert.ok(h.commands.includes("systemctl daemon-reload && systemctl enable --quiet kubelet && systemctl start kubelet"));
  });

  test("a file in the same second as the start is not newer (second resolution: only a later second counts)", async () => {
    const h = scripted(`U kubelet A active\nU kubelet E enabled\nU kubelet T ${STARTED}\nF ${T0} /opt/kubernetes/cfg/kubelet.conf\n`, files);
    assert.equal(await applyUnit(h.rc, "kubelet", false), "kubelet running");
  });
});

describe("journalTail", () => {
  test("leads with the unit's last fatal line when the tail has scrolled past it (etcd's capnslog C, klog's F, zap fatal)", async () => {
    const { journalTail } = await import("../../src/steps/actions");
    const noise = Array.from({ length: 40 }, (_, i) => `2026-12-04 22:00:${String(i).padStart(2, "0")} I | etcdmain: starting`);
    const fatal = "2026-12-04 22:00:00.1 C | etcdmain: the member has been permanently removed from the cluster";
    const rcWith = (journal: string) =>
      ({ host: { name: "lab3" }, sh: async () => ({ code: 0, stdout: journal, stderr: "" }) }) as unknown as RunContext;
    const text = await journalTail(rcWith([fatal, ...noise].join("\n")), "etcd");
    assert.match(text, /^etcd's last fatal line on lab3:\n    .*the member has been permanently removed from the cluster\nlast 15 lines of journalctl -u etcd on lab3:/);
    for (const line of ['{"level":"fatal","msg":"failed to listen"}', "F1204 22:00:00.000000 1 server.go:1] invalid flag"]) {
      assert.match(await journalTail(rcWith([line, ...noise].join("\n")), "x"), /last fatal line/);
    }
    // a fatal line still in the tail is not repeated above it
    assert.doesNotMatch(await journalTail(rcWith([...noise, fatal].join("\n")), "etcd"), /last fatal line/);
  });
});
