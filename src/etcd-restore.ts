// binkube etcd restore: rebuild the etcd cluster from one snapshot on every member, then bring
// the control plane and the nodes' components back on top of it. The procedure of the etcd v3.4
// disaster-recovery guide: every member restores the same snapshot with the same
// --initial-cluster and a new --initial-cluster-token (a new cluster ID, so no member of the old
// cluster can rejoin it by mistake); the failed cluster's data stays aside on each member.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "./errors";
import { Host, Inventory, hostsWithRole, kubeletHosts } from "./inventory/types";
import { RemoteHost } from "./remote";
import { shq } from "./remote/shell";
import { sshTarget } from "./runner/target";
import { ETCD, ETCD_USER } from "./steps/files";
import { ETCDCTL } from "./steps/etcdctl";
import { etcdInitialCluster, parseEndpointHealth } from "./steps/etcdctl";
import { waitFor } from "./util/wait";
import { KUBECTL } from "./steps/actions";
import { stepsInGroup, unitsOf } from "./steps";

const DATA_DIR = `${ETCD.data}/default.etcd`;
/** Where a restore uploads the snapshot on each member (removed after a restore that completes; the teardown removes it always). */
export const UPLOAD_DIR = "/var/lib/etcd-restore";
/** Stopped before etcd, started once it is back (the registry's control-plane steps). */
const CONTROL_PLANE_UNITS = unitsOf(stepsInGroup("control-plane"));
/** Restarted once the control plane serves: their watches predate the snapshot. */
const NODE_UNITS = unitsOf(stepsInGroup("node-agent"));

export interface RestorePlan {
  snapshot: string;
  token: string;
  members: Host[];
  masters: Host[];
  nodes: Host[];
  aside: string;
}

export function restorePlan(inv: Inventory, snapshot: string, now = new Date()): RestorePlan {
  const file = path.resolve(snapshot);
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    throw new BinkubeError(`etcd restore: no snapshot at ${file}. Snapshots binkube took are in ${path.join(inv.baseDir, ".binkube", "etcd-snapshots")}/<host>/`);
  }
  if (size === 0) throw new BinkubeError(`etcd restore: ${file} is empty`);
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return {
    snapshot: file,
    token: `${inv.clusterName}-restored-${stamp}`.toLowerCase(),
    members: hostsWithRole(inv, "etcd"),
    masters: hostsWithRole(inv, "master"),
    nodes: kubeletHosts(inv),
    aside: `${DATA_DIR}.before-restore-${stamp}`,
  };
}

/** What the restore will do, in order: printed before anything is touched. */
export function describeRestore(p: RestorePlan): string[] {
  const names = (hs: Host[]) => hs.map((h) => h.name).join(", ");
  return [
    `restore etcd from ${p.snapshot} (${(fs.statSync(p.snapshot).size / 1e6).toFixed(1)} MB):`,
    `  1. upload it to every member (${names(p.members)}) and check it there (etcdctl snapshot status: same hash everywhere)`,
    `  2. stop ${CONTROL_PLANE_UNITS.join(", ")} on ${names(p.masters)}, then etcd on every member`,
    `  3. on each member: keep the current data as ${p.aside}, restore the snapshot into ${DATA_DIR} (new cluster token ${p.token})`,
    `  4. start etcd on every member together; wait until all ${p.members.length} are healthy`,
    `  5. start the control plane again; wait for /healthz; restart ${NODE_UNITS.join(" and ")} on ${names(p.nodes)} (their watches predate the snapshot)`,
    `Everything written to the cluster after the snapshot was taken is lost.`,
  ];
}

/** Runs the restore. Connects to every host first: an unreachable host stops it before anything changes. */
export async function runRestore(inv: Inventory, p: RestorePlan, log: (line: string) => void): Promise<string> {
  const start = Date.now();
  const say = (line: string) => log(`etcd restore: ${line} [${((Date.now() - start) / 1000).toFixed(0)} s]`);
  const hosts = [...new Map([...p.members, ...p.masters, ...p.nodes].map((h) => [h.name, h])).values()];
  const conns = new Map<string, RemoteHost>();
  try {
    for (const h of hosts) conns.set(h.name, await RemoteHost.connect(sshTarget(h), { log }));
    const on = (h: Host) => conns.get(h.name)!;
    const each = (hs: Host[], f: (h: Host) => Promise<unknown>) => Promise.all(hs.map(f));

    const remoteFile = `${UPLOAD_DIR}/${path.basename(p.snapshot)}`;
    await each(p.members, async (h) => {
      await on(h).exec(`mkdir -p -m 0700 ${UPLOAD_DIR}`);
      await on(h).sync([{ path: remoteFile, mode: 0o600, sourcePath: p.snapshot }]);
    });
    const hashes = await Promise.all(p.members.map(async (h) => JSON.parse((await on(h).exec(`${ETCDCTL} snapshot status ${shq(remoteFile)} -w json`)).stdout) as { hash: number; revision: number; totalKey: number }));
    if (new Set(hashes.map((s) => s.hash)).size !== 1) throw new BinkubeError(`etcd restore: the snapshot reads differently on the members (${hashes.map((s, i) => `${p.members[i]!.name}: hash ${s.hash}`).join(", ")}); nothing was stopped`);
    say(`snapshot on ${p.members.length} members: revision ${hashes[0]!.revision}, ${hashes[0]!.totalKey} keys`);

    await each(p.masters, (h) => on(h).exec(`systemctl stop ${CONTROL_PLANE_UNITS.join(" ")}`));
    // the scheduled snapshots too: a run against a stopped member would only fail
    await each(p.members, (h) => on(h).exec("{ systemctl stop etcd-backup.timer 2>/dev/null || true; } && systemctl stop etcd"));
    say(`control plane and etcd stopped`);

    const cluster = etcdInitialCluster(inv);
    await each(p.members, async (h) => {
      const cmd =
        `set -e; if [ -e ${DATA_DIR} ]; then mv ${DATA_DIR} ${shq(p.aside)}; fi; ` +
        `${ETCDCTL} snapshot restore ${shq(remoteFile)} --name ${shq(h.name)} --initial-cluster ${shq(cluster)} --initial-cluster-token ${shq(p.token)} ` +
        `--initial-advertise-peer-urls ${shq(`https://${h.address}:2380`)} --data-dir ${DATA_DIR} >/dev/null; ` +
        `chown -R ${ETCD_USER}:${ETCD_USER} ${ETCD.data} && chmod 0700 ${DATA_DIR}`;
      await on(h).exec(cmd, { timeoutMs: 300_000 }).catch((e: Error) => {
        throw new BinkubeError(`etcd restore on ${h.name} failed: ${e.message}. Its previous data is in ${p.aside}; fix the cause and re-run the restore (it starts over from the snapshot)`);
      });
    });
    say(`snapshot restored on every member (previous data kept as ${p.aside})`);

    // Members wait for each other at start: start them all without blocking, then wait for health.
    await each(p.members, (h) => on(h).exec("systemctl start --no-block etcd"));
    const first = on(p.members[0]!);
    await waitFor(
      `all ${p.members.length} etcd members healthy`,
      async () => {
        const r = await first.exec(`${ETCDCTL} --endpoints=${p.members.map((h) => `https://${h.address}:2379`).join(",")} --command-timeout=5s endpoint health 2>&1`, { allowFail: true });
        const n = parseEndpointHealth(r.stdout).healthy.length;
        return n === p.members.length ? true : `${n}/${p.members.length} healthy`;
      },
      { timeoutMs: 180_000, intervalMs: 2000, log, fix: "check journalctl -u etcd on each member" },
    );
    say(`etcd healthy: ${p.members.length}/${p.members.length} members`);
    await each(p.members, (h) => on(h).exec("systemctl start etcd-backup.timer 2>/dev/null || true"));

    await each(p.masters, (h) => on(h).exec(`systemctl start ${CONTROL_PLANE_UNITS.join(" ")}`));
    await each(p.masters, (h) =>
      waitFor(
        `kube-apiserver on ${h.name} /healthz`,
        async () => ((await on(h).exec(`${KUBECTL} get --raw /healthz --request-timeout=3s`, { allowFail: true })).stdout.trim() === "ok" ? true : "not serving"),
        { timeoutMs: 180_000, intervalMs: 2000, log, fix: `check journalctl -u kube-apiserver on ${h.name}` },
      ),
    );
    say(`control plane serving on ${p.masters.map((h) => h.name).join(", ")}`);
    await each(p.nodes, (h) => on(h).exec(`systemctl restart ${NODE_UNITS.join(" ")}`));
    await each(p.members, (h) => on(h).exec(`rm -f ${shq(remoteFile)}`));
    return `etcd restored from ${path.basename(p.snapshot)} on ${p.members.length} members (cluster token ${p.token}), control plane up, ${NODE_UNITS.join(" and ")} restarted on ${p.nodes.length} nodes, in ${((Date.now() - start) / 1000).toFixed(1)} s`;
  } finally {
    for (const c of conns.values()) await c.close().catch(() => undefined);
  }
}
