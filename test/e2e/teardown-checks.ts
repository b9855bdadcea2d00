// `cdktf destroy` on a live cluster, for a suite that has one (not a *.test.ts file: the runner
// does not pick it up). Written for the 1-host lab cluster "lab1" (etcd + master + node):
//
//   await teardownChecks({ dir, env, root: ROOT, ssh: (cmd) => lab.ssh("lab1", cmd) });
//
// `dir` is the inventory's directory (cluster.yaml, .binkube/), `env` the environment cdktf runs
// with (BINKUBE_CONFIG …). It starts a destroy and kills it (cdktf, Terraform and the teardown's
// SSH session) as soon as the host's teardown has begun, destroys again (the interrupted destroy is
// run again to the end), checks that the host holds nothing of the cluster, destroys once more (a
// no-op), deploys a new cluster on the same host, and destroys that one in one go (its report).
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadInventory } from "../../src/inventory/load";
import { SYSTEMD_DIR } from "../../src/steps/files";
import { ETCD_DATA_DIR, planForTeardown, teardownPlan } from "../../src/teardown";
import { shq } from "../../src/remote/shell";
import { plain, run } from "../helpers/proc";
import { spawn } from "node:child_process";

/**
 * Runs `cdktf destroy` in a process group of its own; once PATTERN shows in its output, polls
 * `begun()` (an observation on the host) and kills the whole group as soon as it holds. A timer
 * after the pattern would race the script: on an idle host the whole teardown took under 5 s and
 * the destroy had ended before the kill (CI, stop 35). `killed` is false when it ended first.
 */
function destroyKilledAt(pattern: RegExp, begun: () => Promise<boolean>, opts: { env: NodeJS.ProcessEnv; root: string }): Promise<{ killed: boolean; out: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn("npx", ["cdktf", "destroy", "--auto-approve"], { env: opts.env, cwd: opts.root, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let watching = false;
    let killed = false;
    let closed = false;
    const kill = () => {
      if (closed) return false;
      try {
        process.kill(-c.pid!, "SIGKILL");
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ESRCH") return false; // the group has exited
        throw e;
      }
    };
    const watch = async () => {
      for (const end = Date.now() + 120_000; !closed && Date.now() < end; ) {
        if (await begun().catch(() => false)) {
          killed = kill();
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const onData = (d: Buffer) => {
      out += d.toString();
      if (!watching && pattern.test(plain(out))) {
        watching = true;
        watch().catch(reject);
      }
    };
    c.stdout.on("data", onData);
    c.stderr.on("data", onData);
    const t = setTimeout(kill, 900_000);
    c.on("error", reject);
    c.on("close", () => {
      closed = true;
      clearTimeout(t);
      resolve({ killed, out: plain(out) });
    });
  });
}

export interface TeardownCheckOptions {
  dir: string;
  env: NodeJS.ProcessEnv;
  ssh: (cmd: string) => Promise<{ code: number; stdout: string; stderr: string }>;
  root: string;
  /** The host to check (default lab1). */
  host?: string;
}

export async function teardownChecks(opts: TeardownCheckOptions): Promise<void> {
  const host = opts.host ?? "lab1";
  const cdktf = (cmd: "deploy" | "destroy") => run("npx", ["cdktf", cmd, "--auto-approve"], { env: opts.env, cwd: opts.root, timeoutMs: 1_500_000 });
  const sh = async (cmd: string) => {
    const r = await opts.ssh(cmd);
    assert.equal(r.code, 0, `on ${host}: ${cmd}\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
  };
  // What binkube shipped there, from the plan of this inventory (as the teardown derives it).
  const { inventory: inv } = loadInventory(path.join(opts.dir, "cluster.yaml"));
  const tp = teardownPlan(planForTeardown(inv), host, "aside")!;
  assert.ok(tp && tp.files.length > 0 && tp.units.length > 0, `${host} is in the plan with files and units`);
  assert.ok((await sh(`ls ${shq(`${SYSTEMD_DIR}/kubelet.service`)}`)).includes("kubelet.service"), "before: the cluster is deployed");

  // 1. a destroy killed once the host's teardown has begun (the operator's Ctrl-C twice, a lost laptop):
  // killed as soon as the script's first act shows on the host (its first unit is no longer
  // active), so the script is running there and most of it is still to do
  // (tp.units lists dependents first; the first one running now is the first the script stops)
  const states = (await opts.ssh(tp.units.map((u) => `systemctl is-active ${shq(u)}`).join("; "))).stdout.trim().split("\n");
  const first = tp.units.find((_, i) => states[i] === "active");
  assert.ok(first, `a unit of ${host} runs before the destroy: ${tp.units.join(", ")} are ${states.join(", ")}`);
  const begun = async () => (await opts.ssh(`systemctl is-active ${shq(first)}`)).stdout.trim() !== "active";
  const cut = await destroyKilledAt(new RegExp(`teardown_${host}\\b.*Destroying`), begun, opts);
  assert.ok(cut.killed, `the destroy ended before it could be killed in the teardown of ${host}:\n${cut.out.slice(-4000)}`);

  // 2. destroy again: it finishes the job, every resource goes, the host is torn down
  const destroyed = await cdktf("destroy");
  const out = plain(destroyed.stdout + destroyed.stderr);
  assert.equal(destroyed.code, 0, `cdktf destroy after an interrupted one: ${out.slice(-4000)}`);
  assert.match(out, /Destroy complete! Resources: [1-9]\d* destroyed/);
  // where etcd's data went is said by the run that moved it (the killed one's output ends before its teardown's report)
  const aside = new RegExp(`teardown ${host}: etcd data kept at ${ETCD_DATA_DIR.replace(/\./g, "\\.")}\\.torn-down-\\d{8}T\\d{6}Z`);

  const unitFiles = tp.units.map((u) => `${SYSTEMD_DIR}/${u}`);
  const left = await sh(`for f in ${[...tp.files, ...unitFiles].map(shq).join(" ")}; do [ -e "$f" ] && echo "left: $f"; done; find /opt/kubernetes /opt/etcd /opt/cni -type f 2>/dev/null | sed 's/^/left: /'; ls /etc/systemd/system/*.service.d/10-binkube-* 2>/dev/null | sed 's/^/left: /'; true`);
  assert.equal(left.trim(), "", `files binkube shipped are still on ${host}`);
  // what the steps and components wrote (review findings 3, 4) and the directories binkube made
  const written = await sh(
    `for p in /opt/kubernetes /opt/etcd /opt/cni /etc/cni /etc/docker /run/flannel /var/lib/cni /run/docker /var/lib/etcd-restore /var/lib/binkube /var/lib/systemd/timers/stamp-etcd-backup.timer /etc/systemd/system/timers.target.wants/etcd-backup.timer; do [ -e "$p" ] && echo "left: $p"; done; ` +
      `find / -xdev -name '.*.binkube-tmp-*' 2>/dev/null | sed 's/^/left: /'; true`,
  );
  assert.equal(written.trim(), "", `written on ${host} and still there`);
  // docker's containers went before docker (live-restore, review finding 1): nothing of the runtime runs
  assert.equal((await sh("pgrep -a -x 'dockerd|containerd|containerd-shim' || true")).trim(), "", "docker's processes left running");
  // (what the script reports is printed when it ends: the killed run's report is lost, and the
  // containers it removed are gone for the second; step 5's uninterrupted destroy checks the report)
  for (const u of tp.units) {
    const state = (await opts.ssh(`systemctl is-active ${shq(u)}; systemctl is-enabled ${shq(u)}`)).stdout;
    assert.doesNotMatch(state, /^(active|enabled)$/m, `unit ${u} still active or enabled: ${state}`);
  }
  const links = await sh("ip -o link show");
  for (const i of ["cni0", "flannel.1", "docker0"]) assert.ok(!links.includes(` ${i}:`) && !links.includes(` ${i}@`), `interface ${i} still there`);
  const rules = await sh("iptables-save");
  assert.doesNotMatch(rules, /^:(KUBE-|FLANNEL|CNI-|DOCKER)/m, "iptables chains of kube-proxy / flannel / CNI / docker left");
  // flannel's and docker's rules in the built-in chains (review finding 2)
  const podNet = inv.network.podCIDR.replace(/\./g, "\\.");
  assert.doesNotMatch(rules, new RegExp(`^-A (POSTROUTING|FORWARD) .*(${podNet}|172\\.17\\.0\\.0/16|docker0|cni0|flannel\\.1)( |$)`, "m"), `rules of the cluster's networks left:\n${rules}`);
  assert.equal((await sh(`ip -4 route show root ${shq(inv.network.podCIDR)}`)).trim(), "", "routes into the pod network left");
  assert.doesNotMatch(await sh("awk '{ print $2 }' /proc/mounts"), /^\/var\/lib\/kubelet\//m, "pods' volumes still mounted");
  const data = await sh(`ls -d ${ETCD_DATA_DIR}* 2>/dev/null; true`);
  const asideDirs = data.split("\n").filter((l) => /default\.etcd\.torn-down-\d{8}T\d{6}Z$/.test(l));
  assert.equal(asideDirs.length, 1, `etcd data moved aside exactly once:\n${data}`);
  // said by the second run, unless the killed one had moved it already (its report never printed)
  if (!aside.test(out)) assert.doesNotMatch(out, /etcd data kept/, "a second place named");
  assert.doesNotMatch(data, new RegExp(`^${ETCD_DATA_DIR.replace(/\./g, "\\.")}$`, "m"), "no etcd data dir in place");
  const ledger = JSON.parse(fs.readFileSync(path.join(opts.dir, ".binkube", "hosts.json"), "utf8")) as Record<string, unknown>;
  assert.ok(!(host in ledger), `${host} forgotten in the host ledger`);

  // 3. a further destroy has nothing to do
  const again = await cdktf("destroy");
  const out2 = plain(again.stdout + again.stderr);
  assert.equal(again.code, 0, `second cdktf destroy: ${out2.slice(-4000)}`);
  assert.match(out2, /Resources: 0 destroyed|No objects need to be destroyed/);
  assert.doesNotMatch(out2, /teardown --host/, "no teardown ran");

  // 4. a deploy brings a new cluster up on the same host
  const deployed = await cdktf("deploy");
  const out3 = plain(deployed.stdout + deployed.stderr);
  assert.equal(deployed.code, 0, `cdktf deploy after destroy: ${out3.slice(-4000)}`);
  assert.match(out3, new RegExp(`✓ step addons on ${host}: .*Ready`));

  // 5. that cluster destroyed in one go: the report names what went and what was kept where
  const last = await cdktf("destroy");
  const out4 = plain(last.stdout + last.stderr);
  assert.equal(last.code, 0, `cdktf destroy of the new cluster: ${out4.slice(-4000)}`);
  assert.match(out4, new RegExp(`teardown ${host}: [1-9]\\d* containers removed`), "the new cluster's containers");
  assert.match(out4, new RegExp(`teardown ${host}: kept /var/lib/docker`), "kept data is named");
  assert.match(out4, aside, "where etcd's data went is printed");
  assert.match(out4, new RegExp(`teardown ${host}: done`));
  assert.equal((await sh("pgrep -a -x 'dockerd|containerd|containerd-shim|kubelet|etcd|kube-apiserver' || true")).trim(), "", "processes left running");
  const twice = (await sh(`ls -d ${ETCD_DATA_DIR}.torn-down-* 2>/dev/null; true`)).trim().split("\n").filter(Boolean);
  assert.equal(twice.length, 2, `each destroy set etcd's data aside once:\n${twice.join("\n")}`);
}
