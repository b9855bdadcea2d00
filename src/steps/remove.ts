// remove: for a host that left the inventory (it stays in the host ledger until this ran). Drains
// and deletes its Kubernetes node, removes its etcd member (refused if the rest would lose
// quorum), stops and disables its units, then forgets it. Safe to re-run. The etcd, etcd-health
// and apiserver steps depend on it: the cluster shrinks before anything rolls for the new peer list.
import { forgetHost, removalKeepsQuorum } from "../inventory/ledger";
import { hasRole, hostsWithRole, runsKubelet } from "../inventory/types";
import { shq } from "../remote/shell";
import { KUBECTL } from "./actions";
import { ETCDCTL, changeMembership, parseMemberList } from "./etcdctl";
import { RunContext, StepDef } from "./types";
import { GateError } from "../util/wait";

const UNITS = ["kubelet", "kube-proxy", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "docker", "etcd"];

async function removeEtcdMember(rc: RunContext): Promise<string> {
  const name = rc.host.name;
  const etcd = await rc.onHost(hostsWithRole(rc.inv, "etcd")[0]!);
  const list = parseMemberList((await etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member list`)).stdout);
  const member = list.find((m) => m.name === name);
  if (!member) return "no etcd member left";
  const others = list.filter((m) => m !== member).map((m) => m.clientURLs);
  const health = others.length ? (await etcd.exec(`${ETCDCTL} --endpoints=${shq(others.join(","))} --command-timeout=5s endpoint health 2>&1`, { allowFail: true })).stdout : "";
  const healthy = (health.match(/is healthy/g) ?? []).length;
  if (!removalKeepsQuorum(list.length, healthy)) {
    throw new GateError(`refusing to remove etcd member ${name}: ${healthy} of the ${list.length - 1} remaining members are healthy, fewer than a quorum. Fix: bring the other members back first (or restore from a snapshot)`);
  }
  await changeMembership(() => etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member remove ${shq(member.id)}`, { allowFail: true, timeoutMs: 30_000 }), `etcd member remove ${name}`, {
    log: rc.log,
    fix: "check every etcd member: etcdctl endpoint health; a member removal waits until all are connected",
  });
  return `etcd member removed (${list.length - 1} members, ${healthy} healthy)`;
}

async function runRemove(rc: RunContext): Promise<string> {
  const name = rc.host.name;
  const done: string[] = [];
  if (hasRole(rc.host, "etcd")) done.push(await removeEtcdMember(rc));
  if (runsKubelet(rc.host)) {
    const control = await rc.controlPlane();
    await control.exec(`${KUBECTL} drain ${shq(name)} --ignore-daemonsets --delete-local-data --force --timeout=120s`, { allowFail: true, timeoutMs: 180_000 });
    await control.exec(`${KUBECTL} delete node ${shq(name)} --ignore-not-found`);
    done.push("node drained and deleted");
  }
  // Best effort: the etcd data of a removed member must not come back with it (kept aside, not deleted).
  try {
    await rc.sh(
      `for u in ${UNITS.join(" ")}; do systemctl disable --now $u 2>/dev/null || true; done; if [ -d /var/lib/etcd/default.etcd ]; then mv /var/lib/etcd/default.etcd /var/lib/etcd/removed-$(date +%Y%m%dT%H%M%S); fi; rm -f /etc/systemd/system/etcd.service.d/10-binkube-join.conf`,
      { timeoutMs: 180_000 },
    );
    done.push(`units stopped and disabled on ${name}`);
  } catch (e) {
    rc.log(`WARNING step remove on ${name}: could not stop its units (${(e as Error).message.split("\n")[0]}); stop them by hand if the host comes back`);
    done.push(`units NOT stopped on ${name} (unreachable; see warning)`);
  }
  forgetHost(rc.inv, name);
  return done.join(", ");
}

export const remove: StepDef = {
  name: "remove",
  scope: "host",
  description: "remove a host that left the inventory: drain, etcd member removal, units stopped",
  hosts: (_inv, gone) => gone,
  deps: [],
  connect: "lazy",
  files: () => [],
  triggers: (_ctx, host) => ({ host: host.name }),
  run: runRemove,
};
