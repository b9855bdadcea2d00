// End-to-end test of the lab: real systemd-nspawn hosts, real systemd, real sshd.
// Needs root and systemd-container + debootstrap + iproute2 + openssh-client (lab/install-deps.sh);
// skips (never passes silently) when they are missing. First run builds the base rootfs (~1 min).
import { test } from "node:test";
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";
import { labDown, labStatus, labUp, loadLab, sshArgs } from "../../lab/lab";
import type { LabHost, LabState } from "../../lab/lab";
import { preflight } from "../../lab/preflight";
import { bridgeExists } from "../../lab/network";
import { otherLiveLabs } from "../../lab/registry";
import { cgroupProcs } from "../../lab/cgroups";
import { run, type Res } from "../helpers/proc";

const sh = (cmd: string, args: string[], timeoutMs = 30_000): Promise<Res> => run(cmd, args, { timeoutMs });

function ssh(st: LabState, host: string, command: string): Promise<Res> {
  return sh("ssh", [...sshArgs(st, host), command]);
}

async function sshOut(st: LabState, host: string, command: string): Promise<string> {
  const r = await ssh(st, host, command);
  assert.equal(r.code, 0, `${host}: '${command}' failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout.trim();
}

/** PSS/RSS (kB) of every process of a host (its name=systemd or unified cgroup, recursively). */
function hostMemoryKb(h: LabHost): { pss: number; rss: number; procs: number } {
  const root = h.cgroups.find((d) => d.includes("/systemd/")) ?? h.cgroups.find((d) => d.includes("/unified/"));
  const pids: number[] = [];
  const walk = (d: string): void => {
    pids.push(...cgroupProcs(d));
    for (const e of fs.readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(path.join(d, e.name));
  };
  if (!root) throw new Error(`${h.name}: no name=systemd or unified cgroup among ${h.cgroups.join(", ")}: nothing to measure`);
  walk(root);
  let pss = 0;
  let rss = 0;
  for (const p of pids) {
    try {
      const txt = fs.readFileSync(`/proc/${p}/smaps_rollup`, "utf8");
      pss += Number(/^Pss:\s+(\d+)/m.exec(txt)?.[1] ?? 0);
      rss += Number(/^Rss:\s+(\d+)/m.exec(txt)?.[1] ?? 0);
    } catch {
      // exited meanwhile
    }
  }
  return { pss, rss, procs: pids.length };
}

const KNOBS = ["vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops"];
function readKnobs(): string[] {
  return KNOBS.map((k) => `${k}=${fs.readFileSync(`/proc/sys/${k}`, "utf8").trim()}`);
}

/** Live (non-zombie) processes whose command line mentions DIR. */
function processesMentioning(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e) || Number(e) === process.pid) continue;
    try {
      const stat = fs.readFileSync(`/proc/${e}/stat`, "utf8");
      if (stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z")) continue;
      const cmd = fs.readFileSync(`/proc/${e}/cmdline`, "utf8").split("\0").join(" ");
      if (cmd.includes(dir)) out.push(`${e}: ${cmd}`);
    } catch {
      // gone
    }
  }
  return out;
}

test("lab: 2 nspawn hosts with systemd + sshd, scale 2→3→2, status, down", { timeout: 15 * 60 * 1000 }, async (t) => {
  const pre = preflight();
  if (!pre.ok) {
    t.skip(`lab cannot run here: ${pre.problems.join("; ")}`);
    return;
  }
  const knobsBefore = readKnobs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "binkube-lab-test-"));
  let downDone = false;
  try {
    const t0 = Date.now();
    const st = await labUp({ dir, hosts: 2 });
    t.diagnostic(`lab up (2 hosts, base cached or built) took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    for (const h of st.hosts) t.diagnostic(`${h.name}: boot to ssh ${h.bootSeconds?.toFixed(2)} s`);
    const [a, b] = st.hosts;

    await t.test("files: inventory, known_hosts, key, state", () => {
      const inv = parseYaml(fs.readFileSync(path.join(dir, "cluster.yaml"), "utf8")) as {
        cluster: { name: string };
        ssh: { user: string; port: number; privateKey: string; knownHosts: string };
        hosts: { name: string; address: string; roles: string[] }[];
        binaries: { dir: string };
      };
      assert.equal(inv.cluster.name, "lab");
      assert.deepEqual(inv.ssh, { user: "root", port: 22, privateKey: "id_ed25519", knownHosts: "known_hosts" });
      assert.deepEqual(inv.hosts, [
        { name: "lab1", address: a.address, roles: ["etcd", "master", "node"] },
        { name: "lab2", address: b.address, roles: ["etcd", "node"] },
      ]);
      assert.equal(inv.binaries.dir, "bin");
      assert.equal(fs.statSync(path.join(dir, "id_ed25519")).mode & 0o777, 0o600);
      const kh = fs.readFileSync(path.join(dir, "known_hosts"), "utf8").trim().split("\n");
      for (const h of st.hosts) {
        const types = kh.filter((l) => l.startsWith(`${h.address} `)).map((l) => l.split(" ")[1]);
        assert.deepEqual(types.sort(), ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"], `${h.name} host keys`);
      }
      assert.equal(loadLab(dir)?.hosts.length, 2);
      assert.match(fs.readFileSync(path.join(dir, "cluster.yaml"), "utf8"), /^# generated by binkube lab up\n/);
    });

    await t.test("systemd runs on each host, hostname matches, unique identity", async () => {
      const ids = new Set<string>();
      for (const h of st.hosts) {
        const r = await ssh(st, h.name, "systemctl is-system-running --wait");
        const state = r.stdout.trim();
        t.diagnostic(`${h.name}: systemctl is-system-running: ${state}`);
        if (state !== "running") {
          const failed = await ssh(st, h.name, "systemctl --failed --no-legend --plain");
          t.diagnostic(`${h.name}: is-system-running=${state}; failed units: ${failed.stdout.trim() || "(none)"}`);
        }
        assert.ok(["running", "degraded"].includes(state), `${h.name}: is-system-running says '${state}' ${r.stderr}`);
        assert.equal(await sshOut(st, h.name, "hostname"), h.name);
        ids.add(await sshOut(st, h.name, "cat /etc/machine-id"));
        assert.equal(await sshOut(st, h.name, "ip -4 -o addr show dev host0 | awk '{print $4}'"), `${h.address}/24`);
      }
      assert.equal(ids.size, 2, "machine-ids differ");
    });

    await t.test("hosts reach each other on the lab bridge (ping, /etc/hosts names)", async () => {
      await sshOut(st, a.name, `ping -c 2 -W 2 ${b.address}`);
      await sshOut(st, b.name, `ping -c 2 -W 2 ${a.address}`);
      assert.equal(await sshOut(st, a.name, `getent hosts ${b.name} | awk '{print $1}'`), b.address);
    });

    await t.test("known_hosts is really checked (StrictHostKeyChecking=yes)", async () => {
      // Swap lab1's keys for lab2's: ssh must refuse.
      const wrong = path.join(dir, "known_hosts.wrong");
      const lines = fs.readFileSync(st.knownHosts, "utf8").trim().split("\n");
      const bKeys = lines.filter((l) => l.startsWith(`${b.address} `)).map((l) => l.replace(b.address, a.address));
      fs.writeFileSync(wrong, bKeys.join("\n") + "\n");
      const args = sshArgs(st, a.name).map((x) => (x === `UserKnownHostsFile=${st.knownHosts}` ? `UserKnownHostsFile=${wrong}` : x));
      assert.ok(args.includes(`UserKnownHostsFile=${wrong}`));
      assert.ok(args.includes("StrictHostKeyChecking=yes"));
      const r = await sh("ssh", [...args, "true"]);
      assert.notEqual(r.code, 0, "ssh with the wrong host key must fail");
      assert.match(r.stderr, /host key|REMOTE HOST IDENTIFICATION HAS CHANGED|verification failed/i);
      fs.rmSync(wrong);
      assert.equal((await sh("ssh", [...sshArgs(st, a.name), "true"])).code, 0);
    });

    await t.test("systemctl start of a unit works; status shows its own cgroup", async () => {
      await sshOut(
        st,
        b.name,
        "printf '[Unit]\\nDescription=lab probe\\n[Service]\\nExecStart=/bin/sleep infinity\\n' > /etc/systemd/system/labprobe.service && systemctl daemon-reload && systemctl start labprobe",
      );
      assert.equal(await sshOut(st, b.name, "systemctl is-active labprobe"), "active");
      const status = await sshOut(st, b.name, "systemctl status labprobe --no-pager");
      assert.match(status, /CGroup: \/system\.slice\/labprobe\.service/);
      const pid = await sshOut(st, b.name, "systemctl show -p MainPID --value labprobe");
      assert.match(await sshOut(st, b.name, `cat /proc/${pid}/cgroup`), /name=systemd:\/system\.slice\/labprobe\.service/);
    });

    await t.test("worker prep inside hosts: writable cgroup v1, kubelet's sysctls faked, machine untouched", async () => {
      assert.equal(await sshOut(st, a.name, "systemctl is-active binkube-lab-prepare"), "active");
      await sshOut(st, a.name, "mkdir /sys/fs/cgroup/memory/labprobe && echo 67108864 > /sys/fs/cgroup/memory/labprobe/memory.limit_in_bytes && rmdir /sys/fs/cgroup/memory/labprobe");
      assert.equal(await sshOut(st, a.name, "cat /proc/sys/vm/overcommit_memory /proc/sys/kernel/panic /proc/sys/kernel/panic_on_oops | tr '\\n' ' '"), "1 10 1");
      assert.deepEqual(readKnobs(), knobsBefore, "the real machine's sysctls are unchanged");
      // lab/hosts.ts binds the machine's /dev/kmsg (kubelet's OOM watcher reads it) when there is one
      const bound = (await ssh(st, a.name, "test -c /dev/kmsg")).code === 0;
      assert.equal(bound, fs.existsSync("/dev/kmsg"), "/dev/kmsg is in the host exactly when the machine has one");
    });

    await t.test("memory per idle host (diagnostic)", async () => {
      for (const h of st.hosts) {
        const m = hostMemoryKb(h);
        t.diagnostic(`${h.name}: ${m.procs} processes, PSS ${(m.pss / 1024).toFixed(1)} MiB, RSS ${(m.rss / 1024).toFixed(1)} MiB`);
      }
    });

    await t.test("status lists both hosts running with ssh ok", async () => {
      const s = await labStatus({ dir });
      assert.equal(s.exists, true);
      assert.deepEqual(
        s.hosts.map((h) => [h.name, h.address, h.running, h.sshOk]),
        st.hosts.map((h) => [h.name, h.address, true, true]),
      );
    });

    await t.test("up with the same N reuses; 2→3 adds lab3 leaving lab1/lab2 untouched; 3→2 removes it", async () => {
      const before = st.hosts.map((h) => `${h.pid}/${h.pidStartTime}`);
      const same = await labUp({ dir, hosts: 2 });
      assert.deepEqual(same.hosts.map((h) => `${h.pid}/${h.pidStartTime}`), before);
      const three = await labUp({ dir, hosts: 3 });
      assert.deepEqual(three.hosts.slice(0, 2).map((h) => `${h.pid}/${h.pidStartTime}`), before);
      const c = three.hosts[2];
      assert.equal(c.name, "lab3");
      assert.deepEqual(c.roles, ["etcd", "node"]);
      assert.equal(await sshOut(three, "lab2", "systemctl is-active labprobe"), "active", "lab2 kept its running unit");
      await sshOut(three, "lab3", `ping -c 1 -W 2 ${a.address}`);
      assert.equal(await sshOut(three, "lab1", "getent hosts lab3 | awk '{print $1}'"), c.address);
      const inv = parseYaml(fs.readFileSync(path.join(dir, "cluster.yaml"), "utf8")) as { hosts: { name: string }[] };
      assert.deepEqual(inv.hosts.map((h) => h.name), ["lab1", "lab2", "lab3"]);
      const two = await labUp({ dir, hosts: 2 });
      assert.deepEqual(two.hosts.map((h) => `${h.pid}/${h.pidStartTime}`), before);
      assert.equal(fs.existsSync(c.hostDir), false, "lab3's files removed");
      assert.deepEqual(processesMentioning(c.rootfs), [], "lab3's nspawn is gone");
    });

    await t.test("down stops everything and cleans up", async () => {
      const cur = loadLab(dir) as LabState;
      const others = otherLiveLabs(dir);
      const r = await labDown({ dir });
      downDone = true;
      assert.deepEqual(r.stopped, ["lab1", "lab2"]);
      assert.deepEqual(processesMentioning(dir), [], "no process of this lab left");
      for (const h of cur.hosts) for (const d of h.cgroups) assert.equal(fs.existsSync(d), false, `cgroup ${d} removed`);
      assert.equal(fs.existsSync(path.join(dir, "hosts")), false);
      assert.equal(fs.existsSync(path.join(dir, "lab.json")), false);
      assert.ok(!fs.readFileSync("/proc/self/mountinfo", "utf8").includes(dir), "no mounts left under the lab dir");
      if (others.length === 0) {
        assert.equal(r.networkRemoved, true);
        assert.equal(await bridgeExists(), false, "bridge removed");
      } else {
        t.diagnostic(`bridge kept: other labs are up (${others.join(", ")})`);
      }
      const again = await labDown({ dir });
      assert.deepEqual(again.stopped, [], "down is idempotent");
    });
  } finally {
    if (!downDone) await labDown({ dir }).catch((e: Error) => t.diagnostic(`cleanup: ${e.message}`));
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
