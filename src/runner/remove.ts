// `binkube remove --host NAME`: what terraform runs for a host that left the inventory. Drains
// and deletes its Kubernetes node, removes its etcd member (refused if that would lose quorum),
// stops and disables its units, then forgets it. Safe to re-run.
import { openCluster } from "../cluster";
import { forgetHost, readLedger, removalKeepsQuorum } from "../inventory/ledger";
import { hasRole, hostsWithRole } from "../inventory/types";
import { RemoteHost } from "../remote";
import { KUBECTL } from "../steps/actions";
import { ETCDCTL, changeMembership, parseMemberList } from "../steps/etcdctl";
import { sshTarget } from "./target";
import { shq } from "../remote/shell";

const UNITS = ["kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "docker", "etcd"];

export class RemoveError extends Error {}

export async function removeHost(configFile: string, name: string, out: (line: string) => void): Promise<void> {
  const cluster = await openCluster(configFile, { create: false });
  const { inv } = cluster;
  const gone = readLedger(inv)[name];
  if (!gone) return out(`binkube: remove ${name}: not in the host ledger; nothing to do`);
  if (inv.hosts.some((h) => h.name === name)) throw new RemoveError(`remove ${name}: the host is still in the inventory; delete it from ${inv.file} first`);
  const where = `remove ${name}`;
  const master = hostsWithRole(inv, "master")[0]!;
  const control = await RemoteHost.connect(sshTarget(master), { log: (l) => out(`binkube: ${l}`) });
  try {
    if (hasRole(gone, "etcd")) {
      const etcdHost = hostsWithRole(inv, "etcd")[0]!;
      const etcd = etcdHost.name === master.name ? control : await RemoteHost.connect(sshTarget(etcdHost), { log: (l) => out(`binkube: ${l}`) });
      try {
        const list = parseMemberList((await etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member list`)).stdout);
        const member = list.find((m) => m.name === name);
        if (member) {
          const others = list.filter((m) => m !== member).map((m) => m.clientURLs);
          const health = others.length ? (await etcd.exec(`${ETCDCTL} --endpoints=${shq(others.join(","))} --command-timeout=5s endpoint health 2>&1`, { allowFail: true })).stdout : "";
          const healthy = (health.match(/is healthy/g) ?? []).length;
          if (!removalKeepsQuorum(list.length, healthy)) {
            throw new RemoveError(`${where}: refusing to remove etcd member ${name}: ${healthy} of the ${list.length - 1} remaining members are healthy, fewer than a quorum. Fix: bring the other members back first (or restore from a snapshot)`);
          }
          await changeMembership(() => etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member remove ${shq(member.id)}`, { allowFail: true, timeoutMs: 30_000 }), `etcd member remove ${name}`, {
            log: (l) => out(`binkube: ${l}`),
            fix: "check every etcd member: etcdctl endpoint health; a member removal waits until all are connected",
          });
          out(`binkube: ${where}: etcd member removed (${list.length - 1} members, ${healthy} healthy)`);
        }
      } finally {
        if (etcd !== control) await etcd.close();
      }
    }
    if (hasRole(gone, "node")) {
      await control.exec(`${KUBECTL} drain ${shq(name)} --ignore-daemonsets --delete-local-data --force --timeout=120s`, { allowFail: true, timeoutMs: 180_000 });
      await control.exec(`${KUBECTL} delete node ${shq(name)} --ignore-not-found`);
      out(`binkube: ${where}: node drained and deleted`);
    }
  } finally {
    await control.close();
  }
  // The host itself may be dead (often why it is removed): stopping its units is best effort.
  try {
    const host = await RemoteHost.connect(sshTarget(gone), { retries: 1 });
    // The etcd data of a removed member must not come back with it: it is kept aside, not deleted.
    await host.exec(
      `for u in ${UNITS.join(" ")}; do systemctl disable --now $u 2>/dev/null || true; done; if [ -d /var/lib/etcd/default.etcd ]; then mv /var/lib/etcd/default.etcd /var/lib/etcd/removed-$(date +%Y%m%dT%H%M%S); fi; rm -f /etc/systemd/system/etcd.service.d/10-binkube-join.conf`,
      { timeoutMs: 180_000 },
    );
    await host.close();
    out(`binkube: ${where}: units stopped and disabled on ${name}`);
  } catch (e) {
    out(`binkube: ${where}: warning: could not stop units on ${name} (${(e as Error).message.split("\n")[0]}); stop them by hand if the host comes back`);
  }
  forgetHost(inv, name);
  out(`binkube: ✓ ${where}: done`);
}
