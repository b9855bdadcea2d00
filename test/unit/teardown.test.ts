// binkube teardown: what it removes comes from the plan; the script runs under real sh against a
// temp root with scripted systemctl, umount, ip and iptables on PATH; the host-removal rule.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { openCluster } from "../../src/cluster";
import { ETCD_DATA_DIR, TeardownPlan, dataMode, describeTeardown, runTeardown, teardownCommand, teardownPlan, teardownScript } from "../../src/teardown";
import { SYSTEMD_DIR } from "../../src/steps/files";
import { readLedger } from "../../src/inventory/ledger";
import { baseInventory, tempDir, writeFakeBinaries, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";
import { generateKey } from "../helpers/sshd";

const NOW = new Date("2026-12-05T03:04:05.678Z");

async function planned(): Promise<{ dir: string; file: string; plan: Awaited<ReturnType<typeof openCluster>>["plan"] }> {
  const dir = tempDir();
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, baseInventory());
  const { plan } = await openCluster(file, { create: true });
  return { dir, file, plan };
}

/**
 * Scripted commands: each logs its argv to $LOG. umount drops the mount from the fake
 * /proc/mounts (unless it is listed in $STUCK); iptables answers -L/-S from canned text; docker
 * lists and removes the containers in $FAKE_ROOT/containers (docker rm hangs with $DOCKER_HANG);
 * pgrep prints $PIDS.
 */
function fakeBin(dir: string): string {
  const bin = path.join(dir, "fakebin");
  fs.mkdirSync(bin, { recursive: true });
  const log = 'echo "$(basename "$0") $*" >> "$LOG"';
  const scripts: Record<string, string> = {
    systemctl: log,
    docker: `${log}
c="$FAKE_ROOT/containers"
case "$1" in
  ps) [ -f "$c" ] && cat "$c"; exit 0 ;;
  rm) shift; [ "$1" = "-f" ] && shift
    if [ -n "\${DOCKER_HANG:-}" ]; then sleep 30; fi
    for id in "$@"; do grep -vx "$id" "$c" > "$c.new"; mv "$c.new" "$c"; done ;;
esac`,
    pgrep: `${log}
[ -n "\${PIDS:-}" ] && printf '%s\n' $PIDS; [ -n "\${PIDS:-}" ]`,
    umount: `${log}
m="$1"; [ "$m" = "-l" ] && m="$2"
if [ -n "\${STUCK:-}" ] && [ "$m" = "$STUCK" ]; then exit 32; fi
grep -v " $m " "$FAKE_ROOT/proc/mounts" > "$FAKE_ROOT/proc/mounts.new"; mv "$FAKE_ROOT/proc/mounts.new" "$FAKE_ROOT/proc/mounts"`,
    ip: `${log}
if [ "$1 $2" = "-o link" ]; then printf '%s\\n' '5: host0@if6: <BROADCAST> mtu 1500' '7: veth1a2b@if3: <BROADCAST> mtu 1450' '9: vethc3d4@if3: <BROADCAST> mtu 1450'; fi`,
    ipset: `${log}
if [ "$*" = "list -n" ]; then printf '%s\n' KUBE-SRC-ABCDEF KUBE-DST-123456 my-set; fi`,
    iptables: `${log}
if [ "$3" = "-D" ] || [ "$4" = "-D" ]; then printf 'iptables-argv' >> "$LOG"; printf ' <%s>' "$@" >> "$LOG"; echo >> "$LOG"; fi
case "$*" in
  "-w -t nat -S POSTROUTING") printf '%s\\n' '-P POSTROUTING ACCEPT' '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING' '-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE' '-A POSTROUTING -s 10.244.0.0/16 -d 10.244.0.0/16 -j RETURN' '-A POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -j MASQUERADE --random-fully' '-A POSTROUTING ! -s 10.244.0.0/16 -d 10.244.1.0/24 -j RETURN' '-A POSTROUTING -s 10.244.0.0/16 -m comment --comment "flanneld  masq" -j MASQUERADE' '-A POSTROUTING -s 192.168.9.0/24 -j MASQUERADE' '-A POSTROUTING -s 10.244.0.0/17 -j MASQUERADE' ;;
  "-w -t filter -S FORWARD") printf '%s\\n' '-P FORWARD DROP' '-A FORWARD -s 10.244.0.0/16 -j ACCEPT' '-A FORWARD -d 10.244.0.0/16 -j ACCEPT' '-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT' '-A FORWARD -i eth0 -j ACCEPT' '-A FORWARD -i docker01 -j ACCEPT' ;;
  "-w -t filter -L FORWARD -n --line-numbers") printf '%s\\n' 'Chain FORWARD (policy DROP)' 'num  target     prot opt source destination' '1    KUBE-FORWARD  all  --  0.0.0.0/0 0.0.0.0/0' '2    MY-FW      all  --  0.0.0.0/0 0.0.0.0/0' '3    DOCKER-USER  all  --  0.0.0.0/0 0.0.0.0/0' '4    FLANNEL-FWD  all  --  0.0.0.0/0 0.0.0.0/0' ;;
  "-w -t nat -L POSTROUTING -n --line-numbers") printf '%s\\n' 'Chain POSTROUTING (policy ACCEPT)' 'num  target     prot opt source destination' '1    KUBE-POSTROUTING  all  --  0.0.0.0/0 0.0.0.0/0' '2    CNI-abc123  all  --  10.244.0.0/16 0.0.0.0/0' ;;
  "-w -t filter -S") printf '%s\\n' '-P FORWARD DROP' '-N DOCKER-USER' '-N FLANNEL-FWD' '-N KUBE-FORWARD' '-N MY-FW' '-A FORWARD -j KUBE-FORWARD' ;;
  "-w -t nat -S") printf '%s\\n' '-N CNI-abc123' '-N KUBE-POSTROUTING' '-N KUBE-SVC-XYZ' ;;
esac`,
  };
  for (const [name, body] of Object.entries(scripts)) fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return bin;
}

/**
 * What the steps and the components write on a host besides the planned files (review finding 3):
 * interrupted uploads' temp files beside their targets and in sudo's staging dir, the bootstrap
 * kubeconfig (a join token), image-load markers; on a node docker's key, the CNI's and flannel's state.
 */
function writtenOnHost(tp: TeardownPlan): Record<string, string> {
  const files: Record<string, string> = {
    "/opt/kubernetes/cfg/.kubelet.conf.binkube-tmp-0a1b2c3d4e5f": "half an upload",
    "/usr/lib/systemd/system/.etcd.service.binkube-tmp-0a1b2c3d4e5f": "half an upload",
    "/etc/sysctl.d/.99-kubernetes.conf.binkube-tmp-0a1b2c3d4e5f": "half an upload",
    "/usr/bin/.dockerd.binkube-tmp-0a1b2c3d4e5f": "half an upload",
    "/var/tmp/binkube-stage.Xy12345678/3": "staged",
    "/opt/kubernetes/cfg/bootstrap.kubeconfig": "token: abcdef.0123456789abcdef",
    "/opt/kubernetes/cfg/bootstrap.kubeconfig.tmp": "token: abcdef.0123456789abcdef",
    "/opt/kubernetes/images/pause.tar.loaded": "sha256",
    "/opt/kubernetes/images/coredns.tar.loaded": "sha256",
  };
  if (tp.units.includes("docker.service")) {
    Object.assign(files, {
      "/etc/docker/key.json": "docker's trust key",
      "/run/flannel/subnet.env": "FLANNEL_SUBNET=10.244.1.1/24",
      "/var/lib/cni/networks/cbr0/10.244.1.5": "container id",
      "/var/lib/cni/flannel/0123abcd": "{}",
      "/run/docker/netns/1a2b3c/x": "a network namespace (a bind mount on the host)",
    });
  }
  return files;
}

/** Data beside etcd's and a node's (review finding 4): kept and named, or deleted with BINKUBE_TEARDOWN_DATA=delete. */
function dataOnHost(tp: TeardownPlan): Record<string, string> {
  return {
    "/var/lib/etcd-snapshots/snapshot-20261201T000000Z.db": "every Secret",
    "/var/lib/etcd-snapshots/scheduled-20261204T000000Z.db": "every Secret",
    [`${ETCD_DATA_DIR}.before-restore-20261130T000000Z/member/snap/db`]: "the data a restore set aside",
    ...(tp.units.includes("docker.service")
      ? {
          "/var/lib/dockershim/sandbox/0123abcd": "a sandbox checkpoint",
          "/var/log/pods/kube-system_coredns-1_uid/coredns/0.log": "a container's log",
          "/var/log/containers/coredns-1_kube-system_coredns-0123.log": "a link to it",
        }
      : {}),
  };
}

/** Deleted in either mode: a snapshot a restore uploaded (every Secret, read once), half-written scheduled snapshots. */
const ALWAYS_DELETED = ["/var/lib/etcd-restore/snapshot-20261201T000000Z.db", "/var/lib/etcd-snapshots/.scheduled-20261205T000000Z.db.tmp", "/var/lib/etcd-snapshots/.scheduled-20261205T000000Z.db.tmp.part"];

/** A host as binkube left it, under `root`: every planned file, the kubelet's own files, pods' mounts, etcd data. */
function deployedHost(root: string, tp: TeardownPlan): string[] {
  const put = (p: string, body = "x") => {
    fs.mkdirSync(path.dirname(root + p), { recursive: true });
    fs.writeFileSync(root + p, body);
  };
  for (const f of tp.files) put(f);
  put("/opt/kubernetes/ssl/kubelet-client-2026-12-01-00-00-00.pem");
  put("/opt/kubernetes/ssl/kubelet-client-current.pem");
  put("/opt/kubernetes/cfg/kubelet.kubeconfig");
  put("/opt/kubernetes/logs/kubelet.INFO");
  put("/etc/systemd/system/etcd.service.d/10-binkube-join.conf");
  put(`${ETCD_DATA_DIR}/member/snap/db`, "etcd data");
  put("/var/lib/docker/image/overlay2/repositories.json");
  put("/var/lib/kubelet/cpu_manager_state");
  for (const [f, body] of Object.entries(dataOnHost(tp))) put(f, body);
  put("/opt/other/keep.txt", "not binkube's");
  // live-restore: stopping docker leaves these running unless they are removed first
  if (tp.units.includes("docker.service")) put("/containers", "c0ffee01\nc0ffee02\nc0ffee03\n");
  // what systemctl enable links and what a Persistent= timer records
  put("/etc/systemd/system/multi-user.target.wants/kubelet.service");
  put("/etc/systemd/system/timers.target.wants/etcd-backup.timer");
  put("/etc/systemd/system/multi-user.target.wants/ssh.service", "the system's");
  put("/var/lib/systemd/timers/stamp-etcd-backup.timer");
  put("/var/lib/systemd/timers/stamp-apt-daily.timer", "the system's");
  // prepare's directories, on every host whatever its roles, some never holding a file
  for (const d of ["/opt/kubernetes/manifests", "/opt/etcd/bin", "/opt/cni/bin", "/etc/cni/net.d"]) fs.mkdirSync(root + d, { recursive: true });
  for (const [f, body] of Object.entries(writtenOnHost(tp))) put(f, body);
  for (const f of ALWAYS_DELETED) put(f, "every Secret");
  const node = tp.units.includes("docker.service");
  const mounts = [
    `${root}/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token-abc`,
    `${root}/var/lib/kubelet/pods/p1/volumes/kubernetes.io~secret/token-abc/nested`,
    `${root}/var/lib/kubelet/pods/p2/volumes/kubernetes.io~secret/flannel-token`,
    `${root}/var/lib/docker/overlay2/l1/merged`,
    ...(node ? [`${root}/run/docker/netns/1a2b3c`] : []),
  ];
  // docker's and the kubelet's directories themselves on disks of their own (an operator's
  // partition; the lab binds /var/lib/docker): those mounts are not binkube's and stay
  const ownDisks = [`/dev/sdb1 ${root}/var/lib/docker ext4 rw 0 0`, `/dev/sdc1 ${root}/var/lib/kubelet xfs rw 0 0`];
  put("/proc/mounts", ["/dev/sda1 / ext4 rw 0 0", `tmpfs ${root}/var/lib/kubeletother tmpfs rw 0 0`, ...ownDisks, ...mounts.map((m) => `tmpfs ${m} tmpfs rw 0 0`)].join("\n") + "\n");
  return mounts;
}

function runScript(root: string, script: string, env: Record<string, string> = {}) {
  const log = path.join(root, "calls.log");
  fs.writeFileSync(log, "");
  const r = spawnSync("sh", ["-c", script], { env: { PATH: `${fakeBin(root)}:/usr/bin:/bin`, LOG: log, FAKE_ROOT: root, ...env }, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: fs.readFileSync(log, "utf8").trim().split("\n").filter(Boolean) };
}

const exists = (p: string) => fs.existsSync(p);

describe("teardown", () => {
  test("what a host loses comes from the plan: every file its instances ship and every unit of its steps", async () => {
    const { plan } = await planned();
    const master = teardownPlan(plan, "k8s-master", "aside", NOW)!;
    const node = teardownPlan(plan, "k8s-node", "aside", NOW)!;
    for (const inst of plan.instances) {
      const tp = inst.host.name === "k8s-master" ? master : inst.host.name === "k8s-node" ? node : undefined;
      for (const f of inst.files) if (tp) assert.ok(tp.files.includes(f.path), `${inst.id}: ${f.path}`);
    }
    assert.ok(!node.files.some((f) => /kube-apiserver/.test(f)), "a node without the master role gets no apiserver file removed");
    assert.ok(master.files.includes(`${SYSTEMD_DIR}/kube-apiserver.service`));
    assert.ok(node.files.includes("/etc/cni/net.d/10-flannel.conflist"));
    assert.deepEqual([...node.units].sort(), ["docker.service", "etcd-backup.service", "etcd-backup.timer", "etcd.service", "kube-proxy.service", "kubelet.service"]);
    assert.deepEqual([...master.units].sort(), ["docker.service", "etcd-backup.service", "etcd-backup.timer", "etcd.service", "kube-apiserver.service", "kube-controller-manager.service", "kube-proxy.service", "kube-scheduler.service", "kubelet.service"]);
    const at = (u: string) => master.units.indexOf(u);
    assert.ok(at("kubelet.service") < at("docker.service") && at("kube-apiserver.service") < at("etcd.service"), "dependents stop first");
    assert.ok(at("etcd-backup.timer") < at("etcd-backup.service") && at("etcd-backup.service") < at("etcd.service"), "the timer first (it would start the job again), then a running snapshot, then etcd");
    // the scheduled backups' script, service and timer (step etcd-backup) are in the plan's files
    for (const f of ["/opt/etcd/bin/etcd-backup", `${SYSTEMD_DIR}/etcd-backup.service`, `${SYSTEMD_DIR}/etcd-backup.timer`]) assert.ok(node.files.includes(f), f);
    assert.equal(master.aside, `${ETCD_DATA_DIR}.torn-down-20261205T030405Z`);
    assert.equal(teardownPlan(plan, "elsewhere", "aside"), undefined);
  });

  test("the script under sh: units stopped, mounts gone deepest first, every shipped file removed, network cleaned, etcd data aside", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-master", "aside", NOW)!;
    const root = tempDir();
    const mounts = deployedHost(root, tp);
    const r = runScript(root, teardownScript(tp, { root }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /teardown: etcd data kept at \/var\/lib\/etcd\/default\.etcd\.torn-down-20261205T030405Z/);
    assert.match(r.stdout, /teardown: done/);
    for (const u of tp.units) assert.ok(r.calls.includes(`systemctl disable --now ${u}`), u);
    assert.ok(r.calls.includes("systemctl disable --now etcd-backup.timer") && r.calls.includes("systemctl disable --now etcd-backup.service"), "the scheduled backups stop");
    for (const f of ["/etc/systemd/system/multi-user.target.wants/kubelet.service", "/etc/systemd/system/timers.target.wants/etcd-backup.timer", "/var/lib/systemd/timers/stamp-etcd-backup.timer"]) assert.ok(!exists(root + f), `removed: ${f}`);
    for (const f of ["/etc/systemd/system/multi-user.target.wants/ssh.service", "/var/lib/systemd/timers/stamp-apt-daily.timer"]) assert.ok(exists(root + f), `the system's: ${f}`);
    assert.ok(r.calls.includes("systemctl daemon-reload"));
    // unmounted, deepest first, before anything under /var/lib/kubelet goes
    const umounts = r.calls.filter((c) => c.startsWith("umount ")).map((c) => c.slice("umount ".length));
    assert.deepEqual([...umounts].sort(), [...mounts].sort());
    assert.ok(umounts.indexOf(mounts[1]!) < umounts.indexOf(mounts[0]!), "the nested mount first");
    assert.ok(!umounts.some((m) => m.endsWith("kubeletother")), "a sibling directory with the same prefix is not touched");
    assert.ok(!umounts.some((m) => m === `${root}/var/lib/docker` || m === `${root}/var/lib/kubelet`), "the disks mounted at /var/lib/docker and /var/lib/kubelet stay mounted");
    for (const f of tp.files) assert.ok(!exists(root + f), `removed: ${f}`);
    for (const f of Object.keys(writtenOnHost(tp))) assert.ok(!exists(root + f), `removed: ${f}`);
    for (const d of ["/etc/docker", "/run/flannel", "/var/lib/cni", "/run/docker", "/var/tmp/binkube-stage.Xy12345678"]) assert.ok(!exists(root + d), `removed: ${d}`);
    assert.ok(exists(root + "/usr/bin") && exists(root + "/var/tmp") && exists(root + "/etc/sysctl.d"), "the system's directories stay");
    assert.ok(r.calls.includes(`umount ${root}/run/docker/netns/1a2b3c`), "docker's netns unmounted before /run/docker goes");
    assert.doesNotMatch(r.stdout, /teardown: kept \/(opt|etc)\//, "nothing left in binkube's trees");
    assert.ok(!exists(root + "/opt/kubernetes"), "binkube's directories go once empty");
    assert.ok(!exists(root + "/opt/etcd"));
    assert.ok(!exists(root + "/etc/systemd/system/etcd.service.d"));
    assert.ok(exists(root + "/opt/other/keep.txt"), "nothing else");
    assert.ok(exists(root + "/usr/lib/systemd/system") && exists(root + "/etc/sysctl.d"), "the system's directories stay, even empty");
    assert.equal(fs.readFileSync(root + "/var/lib/etcd/default.etcd.torn-down-20261205T030405Z/member/snap/db", "utf8"), "etcd data");
    assert.ok(!exists(root + ETCD_DATA_DIR));
    assert.ok(exists(root + "/var/lib/docker/image/overlay2/repositories.json") && exists(root + "/var/lib/kubelet/cpu_manager_state"), "data kept by default");
    for (const f of Object.keys(dataOnHost(tp))) assert.ok(exists(root + f), `kept: ${f}`);
    for (const d of ["/var/lib/etcd-snapshots", `${ETCD_DATA_DIR}.before-restore-20261130T000000Z`, "/var/lib/docker", "/var/lib/kubelet", "/var/lib/dockershim", "/var/log/pods", "/var/log/containers"]) {
      assert.match(r.stdout, new RegExp(`^teardown: kept ${d.replace(/\./g, "\\.")}$`, "m"), `named: ${d}`);
    }
    for (const f of ALWAYS_DELETED) assert.ok(!exists(root + f), `deleted in either mode: ${f}`);
    assert.ok(!exists(root + "/var/lib/etcd-restore"));
    assert.match(describeTeardown(tp).join("\n"), /kept, and named when there: \/var\/lib\/etcd-snapshots, .*\/var\/log\/containers/);
    // network
    for (const i of ["cni0", "flannel.1", "docker0", "veth1a2b", "vethc3d4"]) assert.ok(r.calls.includes(`ip link delete ${i}`), i);
    assert.ok(!r.calls.includes("ip link delete host0"), "only veth* interfaces: host0 is the host's own");
    assert.ok(r.calls.includes("ip -4 route flush root 10.244.0.0/16"), "host-gw's routes to the other nodes' pod subnets, only inside the pod network");
    // jumps from built-in chains by number, highest first, then flush, then delete; MY-FW stays
    const ipt = r.calls.filter((c) => c.startsWith("iptables ") && / -[DFX] /.test(c));
    assert.deepEqual(ipt.filter((c) => / -D \S+ \d+$/.test(c)), ["iptables -w -t filter -D FORWARD 4", "iptables -w -t filter -D FORWARD 3", "iptables -w -t filter -D FORWARD 1", "iptables -w -t nat -D POSTROUTING 2", "iptables -w -t nat -D POSTROUTING 1"]);
    for (const c of ["DOCKER-USER", "FLANNEL-FWD", "KUBE-FORWARD"]) assert.ok(ipt.indexOf(`iptables -w -t filter -F ${c}`) < ipt.indexOf(`iptables -w -t filter -X ${c}`) && ipt.includes(`iptables -w -t filter -X ${c}`), c);
    for (const c of ["CNI-abc123", "KUBE-POSTROUTING", "KUBE-SVC-XYZ"]) assert.ok(ipt.includes(`iptables -w -t nat -X ${c}`), c);
    assert.ok(!ipt.some((c) => c.includes("MY-FW") || c.includes("-D FORWARD 2")), "another chain and its jump are left alone");
    // kube-router's ipsets go after the rules that named them; another set stays
    const sets = r.calls.filter((c) => c.startsWith("ipset destroy"));
    assert.deepEqual(sets, ["ipset destroy KUBE-SRC-ABCDEF", "ipset destroy KUBE-DST-123456"]);
    const lastIptables = r.calls.map((c, i) => (c.startsWith("iptables ") ? i : -1)).reduce((a, b) => Math.max(a, b));
    assert.ok(lastIptables >= 0 && lastIptables < r.calls.indexOf("ipset destroy KUBE-SRC-ABCDEF"), "after the iptables rules that named them");
    // flannel's and docker's rules in built-in chains, by their text (argv exactly as iptables -S quoted it)
    const argv = r.calls.filter((c) => c.startsWith("iptables-argv ") && !/<\d+>$/.test(c)).map((c) => c.slice("iptables-argv ".length));
    assert.deepEqual(argv, [
      "<-w> <-t> <nat> <-D> <POSTROUTING> <-s> <172.17.0.0/16> <!> <-o> <docker0> <-j> <MASQUERADE>",
      "<-w> <-t> <nat> <-D> <POSTROUTING> <-s> <10.244.0.0/16> <-d> <10.244.0.0/16> <-j> <RETURN>",
      "<-w> <-t> <nat> <-D> <POSTROUTING> <-s> <10.244.0.0/16> <!> <-d> <224.0.0.0/4> <-j> <MASQUERADE> <--random-fully>",
      "<-w> <-t> <nat> <-D> <POSTROUTING> <!> <-s> <10.244.0.0/16> <-d> <10.244.1.0/24> <-j> <RETURN>",
      "<-w> <-t> <nat> <-D> <POSTROUTING> <-s> <10.244.0.0/16> <-m> <comment> <--comment> <flanneld  masq> <-j> <MASQUERADE>",
      "<-w> <-t> <filter> <-D> <FORWARD> <-s> <10.244.0.0/16> <-j> <ACCEPT>",
      "<-w> <-t> <filter> <-D> <FORWARD> <-d> <10.244.0.0/16> <-j> <ACCEPT>",
      "<-w> <-t> <filter> <-D> <FORWARD> <-o> <docker0> <-m> <conntrack> <--ctstate> <RELATED,ESTABLISHED> <-j> <ACCEPT>",
    ], "the host's own rules (192.168.9.0/24, 10.244.0.0/17, eth0, docker01) stay; kube-proxy's jump went by number above");
    assert.doesNotMatch(r.stdout, /could not delete/);
    // a re-run after everything is gone succeeds (what a retried destroy does)
    const again = runScript(root, teardownScript(tp, { root }));
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /teardown: done/);
  });

  test("docker's containers (live-restore keeps them through a stop) are removed after the kubelet stops and before docker does", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", "aside", NOW)!;
    const root = tempDir();
    deployedHost(root, tp);
    const r = runScript(root, teardownScript(tp, { root }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(fs.readFileSync(root + "/containers", "utf8"), "", "every container removed");
    assert.match(r.stdout, /teardown: 3 containers removed/);
    const at = (c: string) => r.calls.indexOf(c);
    assert.ok(at("docker rm -f c0ffee01 c0ffee02 c0ffee03") > at("systemctl disable --now kubelet.service"), "after the kubelet stopped: nothing recreates them");
    assert.ok(at("docker rm -f c0ffee01 c0ffee02 c0ffee03") < at("systemctl disable --now docker.service"), "while docker still answers");
    assert.ok(at("pgrep -x containerd|containerd-shim") > at("systemctl disable --now docker.service"), "what docker left is looked for once it stopped");
    assert.doesNotMatch(r.stdout, /still running/);
  });

  test("containers docker does not remove in time: docker is stopped anyway and what is left running is said", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", "aside", NOW)!;
    const root = tempDir();
    deployedHost(root, tp);
    const t0 = Date.now();
    const r = runScript(root, teardownScript(tp, { root, containerRemovalS: 1 }), { DOCKER_HANG: "1", PIDS: "4242 4343" });
    assert.ok(Date.now() - t0 < 20_000, "bounded by the timeout, not by docker");
    assert.match(r.stdout, /teardown: docker rm -f of the containers failed or took over 1 s/);
    assert.ok(r.calls.includes("systemctl disable --now docker.service"));
    assert.match(r.stdout, /teardown: containerd\/containerd-shim still running after the runtime stopped \(pids 4242 4343; see ps -ef\)/);
  });

  test("an etcd member alone: binkube ran no docker, kubelet or pod network there, so none of theirs is touched", async () => {
    const dir = tempDir();
    writeFakeBinaries(path.join(dir, "bin"));
    const raw = baseInventory();
    raw.hosts = [...raw.hosts, { name: "etcd-only", address: "192.168.0.9", roles: ["etcd"] }];
    const { plan } = await openCluster(writeInventory(dir, raw), { create: true });
    const tp = teardownPlan(plan, "etcd-only", "aside", NOW)!;
    assert.deepEqual(tp.units, ["etcd-backup.timer", "etcd-backup.service", "etcd.service"]);
    const root = tempDir();
    deployedHost(root, tp);
    // someone else's docker on the member: its containers, layers and mounts are not binkube's
    fs.writeFileSync(root + "/containers", "0therc0ntainer\n");
    const r = runScript(root, teardownScript({ ...tp, data: "delete" }, { root }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(!r.calls.some((c) => /^(docker|pgrep|umount|ip|iptables) /.test(c)), r.calls.join("\n"));
    assert.equal(fs.readFileSync(root + "/containers", "utf8"), "0therc0ntainer\n");
    assert.ok(exists(root + "/var/lib/docker/image/overlay2/repositories.json") && exists(root + "/var/lib/kubelet/cpu_manager_state"), "not deleted in delete mode either");
    assert.ok(!exists(root + ETCD_DATA_DIR), "etcd's data is binkube's: deleted");
    for (const f of tp.files) assert.ok(!exists(root + f), `removed: ${f}`);
    const said = describeTeardown({ ...tp, data: "delete" }).join("\n");
    assert.match(said, /no docker, kubelet or pod network here/);
    assert.doesNotMatch(said, /containers removed|DELETED: .*docker/);
  });

  test("what the plan does not name stays in binkube's trees and is named; another program's temp files stay", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", "aside", NOW)!;
    const root = tempDir();
    deployedHost(root, tp);
    const put = (p: string) => {
      fs.mkdirSync(path.dirname(root + p), { recursive: true });
      fs.writeFileSync(root + p, "x");
    };
    put("/opt/kubernetes/bin/kubectl-old"); // shipped for an earlier inventory
    put("/etc/docker/certs.d/registry.local/ca.crt"); // someone's registry CA
    put("/usr/bin/.vim.tmp-123"); // not a binkube temp name
    put("/opt/kubernetes/cfg/binkube-tmp-notdotted");
    const r = runScript(root, teardownScript(tp, { root }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /teardown: kept \/opt\/kubernetes: it holds what the plan does not name: .*bin\/kubectl-old/);
    assert.match(r.stdout, /teardown: kept \/etc\/docker: it holds what the plan does not name: certs\.d\/registry\.local\/ca\.crt/);
    assert.ok(exists(root + "/etc/docker/certs.d/registry.local/ca.crt") && !exists(root + "/etc/docker/key.json") && !exists(root + "/etc/docker/daemon.json"));
    assert.ok(exists(root + "/usr/bin/.vim.tmp-123") && exists(root + "/opt/kubernetes/cfg/binkube-tmp-notdotted"));
    assert.ok(exists(root + "/opt/kubernetes/bin/kubectl-old"));
  });

  test("a netns mount under /run/docker that will not go: /run/docker stays and is named", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", "aside", NOW)!;
    const root = tempDir();
    const mounts = deployedHost(root, tp);
    const r = runScript(root, teardownScript(tp, { root }), { STUCK: mounts.find((m) => m.includes("/run/docker/"))! });
    assert.match(r.stdout, /teardown: \/run\/docker kept: something is still mounted there/);
    assert.ok(exists(root + "/run/docker/netns/1a2b3c/x"), "nothing deleted through the mount");
  });

  test("BINKUBE_TEARDOWN_DATA=delete deletes etcd's data, /var/lib/docker and /var/lib/kubelet once nothing is mounted there", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", dataMode({ BINKUBE_TEARDOWN_DATA: "delete" }), NOW)!;
    const root = tempDir();
    deployedHost(root, tp);
    const r = runScript(root, teardownScript(tp, { root }));
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /teardown: data deleted/);
    for (const d of [ETCD_DATA_DIR, "/var/lib/docker", "/var/lib/kubelet", "/var/lib/etcd-snapshots", `${ETCD_DATA_DIR}.before-restore-20261130T000000Z`, "/var/lib/dockershim", "/var/log/pods", "/var/log/containers", "/var/lib/etcd-restore"]) assert.ok(!exists(root + d), d);
    assert.ok(!exists(root + "/var/lib/etcd"), "prepare's /var/lib/etcd goes once empty: nothing set aside");
    assert.doesNotMatch(r.stdout, /teardown: kept \/var/);
    assert.ok(exists(root + "/var/log") && exists(root + "/var/lib"), "the system's directories stay");
    assert.ok(describeTeardown(tp).some((l) => /DELETED/.test(l)));
  });

  test("a mount that will not go: nothing under it is deleted and the teardown fails (a re-run retries)", async () => {
    const { plan } = await planned();
    const tp = teardownPlan(plan, "k8s-node", "delete", NOW)!;
    const root = tempDir();
    const mounts = deployedHost(root, tp);
    const r = runScript(root, teardownScript(tp, { root }), { STUCK: mounts[2]! });
    assert.notEqual(r.code, 0);
    assert.match(r.stdout, /still mounted under .*\/var\/lib\/kubelet/);
    assert.match(r.stdout, /\/var\/lib\/kubelet NOT deleted/);
    assert.doesNotMatch(r.stdout, /teardown: done/);
    assert.ok(exists(root + "/var/lib/kubelet/cpu_manager_state"), "kept: deleting through a mount could reach what is mounted");
    assert.ok(!exists(root + "/var/lib/docker"), "docker's directory had nothing left mounted");
  });

  test("BINKUBE_TEARDOWN_DATA: unset keeps, delete deletes, anything else is refused", () => {
    assert.equal(dataMode({}), "aside");
    assert.equal(dataMode({ BINKUBE_TEARDOWN_DATA: "delete" }), "delete");
    assert.throws(() => dataMode({ BINKUBE_TEARDOWN_DATA: "yes" }), /BINKUBE_TEARDOWN_DATA=yes/);
  });

  test("a host no longer in the inventory is a host removal: teardown does nothing and succeeds; reset refuses", async () => {
    const { dir, file } = await planned();
    const said: string[] = [];
    assert.equal(await teardownCommand(file, "gone-host", (l) => said.push(l)), 0);
    assert.match(said.join("\n"), /gone-host is not in the inventory: that is a host removal, which the plan's remove step does/);
    await assert.rejects(teardownCommand(file, "gone-host", () => {}, { reset: { yes: true } }), /reset: gone-host is not in/);
    assert.ok(fs.existsSync(path.join(dir, "pki")));
  });

  test("an unreachable host: the teardown fails, says what is left there and how to retry, and the host stays in the ledger", async () => {
    const dir = tempDir();
    writeFakeBinaries(path.join(dir, "bin"));
    generateKey(path.join(dir, "id_test"));
    // a port nobody listens on, on this machine: bind, read the number, close
    const net = await import("node:net");
    const port = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const file = writeInventory(dir, baseInventory());
    const { plan } = await openCluster(file, { create: true });
    // the inventory refuses a loopback address: the host record is pointed here after validation
    const tp = teardownPlan(plan, "k8s-node", "aside")!;
    tp.host = { ...tp.host, address: "127.0.0.1", ssh: { ...tp.host.ssh, privateKey: path.join(dir, "id_test"), knownHosts: path.join(dir, "known_hosts"), port } };
    fs.writeFileSync(path.join(dir, "known_hosts"), "");
    await assert.rejects(runTeardown(plan.inv, tp, () => {}), (e: Error) => {
      assert.match(e.message, /^teardown of k8s-node: cannot reach it \(.*ECONNREFUSED.*\)\. Nothing was changed there/);
      assert.match(e.message, /not done: units stopped and disabled: .*kubelet/);
      assert.match(e.message, /not done: etcd data \(if any\) moved to/);
      assert.match(e.message, /run `npx cdktf destroy` again \(it retries this host\)/);
      return true;
    });
    assert.ok(readLedger({ baseDir: dir } as never)["k8s-node"], "not forgotten: it was not torn down");
  });

  test("reset without --yes says what it would do and warns that Terraform still records the host; nothing is contacted", async () => {
    const { dir, file } = await planned();
    const said: string[] = [];
    assert.equal(await teardownCommand(file, "k8s-node", (l) => said.push(l), { reset: { yes: false }, env: {} }), 1);
    const out = said.join("\n");
    assert.match(out, /units stopped and disabled: .*kubelet/);
    assert.match(out, /Terraform's state still records it as deployed/);
    assert.match(out, /binkube repair/);
    assert.match(out, /nothing done/);
    assert.ok(readLedger({ baseDir: dir } as never)["k8s-node"], "still in the ledger: nothing was torn down");
  });
});
