// remove: for a host that left the inventory (it stays in the host ledger until this ran). Drains
// and deletes its Kubernetes node, removes its etcd member (refused if the rest would lose
// quorum), takes a master out of every node's apiserver proxy, stops and disables its units, then
// forgets it. Safe to re-run. The etcd step depends on it (etcd-health and the apiservers through
// etcd): the cluster shrinks before anything rolls for the new peer list.
import { removalKeepsQuorum } from "../inventory/ledger";
import { Host, hasRole, hostsWithRole, kubeletHosts, runsKubelet } from "../inventory/types";
import { shq } from "../remote/shell";
import { KUBECTL, nodeReadyStatus } from "./actions";
import { K8S } from "./files";
import { ETCDCTL, changeMembership, parseEndpointHealth, parseMemberList } from "./etcdctl";
import { RunContext, StepDef, StepRemote } from "./types";
import { GateError } from "../util/wait";
import { PROXY, PROXY_BACKEND, ServerState, proxyCli, serverStates, serving } from "./node-proxy";

async function removeEtcdMember(rc: RunContext): Promise<string> {
  const name = rc.host.name;
  const etcd = await rc.onHost(hostsWithRole(rc.inv, "etcd")[0]!);
  const list = parseMemberList((await etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member list`)).stdout);
  const member = list.find((m) => m.name === name);
  if (!member) return "no etcd member left";
  const others = list.filter((m) => m !== member).map((m) => m.clientURLs);
  const health = others.length ? (await etcd.exec(`${ETCDCTL} --endpoints=${shq(others.join(","))} --command-timeout=5s endpoint health 2>&1`, { allowFail: true })).stdout : "";
  const healthy = parseEndpointHealth(health).healthy.length;
  if (!removalKeepsQuorum(list.length, healthy)) {
    throw new GateError(`refusing to remove etcd member ${name}: ${healthy} of the ${list.length - 1} remaining members are healthy, fewer than a quorum. Fix: bring the other members back first (or restore from a snapshot)`);
  }
  await changeMembership(() => etcd.exec(`${ETCDCTL} --endpoints=https://127.0.0.1:2379 member remove ${shq(member.id)}`, { allowFail: true, timeoutMs: 30_000 }), `etcd member remove ${name}`, {
    log: rc.log,
    fix: "check every etcd member: etcdctl endpoint health; a member removal waits until all are connected",
  });
  return `etcd member removed (${list.length - 1} members, ${healthy} healthy)`;
}

/** kubectl's verdict from a drain's output: its last error line, or its last line. */
const lastWords = (out: string) => (out.trim().split("\n").filter((l) => /^error/i.test(l.trim())).pop() ?? out.trim().split("\n").pop() ?? "").trim().slice(0, 200);

/**
 * Takes the node out of the cluster and says what really happened. A node whose host does not
 * answer (or whose kubelet does not: NotReady) cannot drain: evictions would wait for a kubelet
 * that never confirms, for the whole timeout. Its pods are force-deleted instead, so their
 * controllers replace them now.
 */
async function removeNode(rc: RunContext, unreachable: string | undefined): Promise<string> {
  const name = shq(rc.host.name);
  const control = await rc.controlPlane();
  const ready = await nodeReadyStatus(control, rc.host.name);
  let how: string;
  if (unreachable !== undefined || (ready !== "" && ready !== "True")) {
    const r = await control.exec(`${KUBECTL} delete pods --all-namespaces --field-selector spec.nodeName=${name} --force --grace-period=0 2>&1`, { allowFail: true, timeoutMs: 60_000 });
    const n = (r.stdout.match(/ deleted/g) ?? []).length;
    how = `drain skipped: ${unreachable !== undefined ? `host unreachable (${unreachable})` : `node ${ready === "Unknown" ? "not reporting" : "NotReady"}`}; ${n} pods force-deleted`;
  } else {
    const timeout = 120;
    const r = await control.exec(`${KUBECTL} drain ${name} --ignore-daemonsets --delete-local-data --force --timeout=${timeout}s 2>&1`, { allowFail: true, timeoutMs: (timeout + 60) * 1000 });
    how = r.code === 0 ? "drained" : `drain did not finish within ${timeout} s (${lastWords(r.stdout)})`;
  }
  await control.exec(`${KUBECTL} delete node ${name} --ignore-not-found`);
  return `node ${how}, node deleted`;
}

/**
 * What a removed host must not keep: its units enabled (a reboot would start them) and the
 * cluster credentials it would rejoin with (the kubelet's client certificate and kubeconfigs).
 */
const disarm = (units: readonly string[]) => [
  `for u in ${units.join(" ")}; do systemctl disable --now $u 2>/dev/null || true; done`,
  `rm -f ${K8S.ssl}/kubelet-client-*.pem ${K8S.cfg}/kubelet.kubeconfig ${K8S.cfg}/bootstrap.kubeconfig ${K8S.cfg}/kube-proxy.kubeconfig ${PROXY.clientCert}`,
  `if [ -d /var/lib/etcd/default.etcd ]; then mv /var/lib/etcd/default.etcd /var/lib/etcd/removed-$(date -u +%Y%m%dT%H%M%SZ); fi`,
  "rm -f /etc/systemd/system/etcd.service.d/10-binkube-join.conf",
].join("; ");

interface ProxyAnswer {
  host: Host;
  remote?: StepRemote;
  /** The proxy's servers; undefined: no proxy runs there. */
  states?: ServerState[];
  /** The host did not answer. */
  error?: string;
}

/**
 * Every node's apiserver proxy, asked before anything is removed: a master may leave only when
 * every node that lists it has another master up behind its proxy (an authenticated /readyz
 * passed). Otherwise the removal is refused with nothing touched: that node would lose the API.
 */
async function askProxies(rc: RunContext): Promise<ProxyAnswer[]> {
  const name = rc.host.name;
  const asked: ProxyAnswer[] = await Promise.all(
    kubeletHosts(rc.inv).map(async (host) => {
      try {
        const remote = await rc.onHost(host);
        return { host, remote, states: await serverStates(remote) };
      } catch (e) {
        return { host, error: (e as Error).message.split("\n")[0]! };
      }
    }),
  );
  const cut = asked.filter((a) => a.states?.some((s) => s.name === name) && !a.states.some((s) => s.name !== name && serving(s)));
  if (cut.length > 0) {
    throw new GateError(
      `refusing to remove master ${name}: the apiserver proxy on ${cut.map((a) => a.host.name).join(", ")} has no other apiserver up (${cut.map((a) => a.states!.map((s) => `${s.name} ${s.status}`).join(", ")).join("; ")}), so it would lose the API. Fix: bring another master's apiserver up first, then re-run; nothing was changed`,
    );
  }
  return asked;
}

/**
 * The master leaves every node's apiserver proxy before its apiserver stops: haproxy's runtime
 * API puts it in maintenance (no new connection goes to it) and closes the connections it
 * carries, so their clients reconnect through the other masters while this one still serves. The
 * proxy step rewrites the lists without it later (after the apiservers roll); a node that did not
 * answer drops it by its health checks within seconds of its stop.
 */
async function leaveProxies(rc: RunContext, asked: ProxyAnswer[]): Promise<string | undefined> {
  const name = rc.host.name;
  const listing = asked.filter((a) => a.states?.some((s) => s.name === name));
  const command = proxyCli(`disable server ${PROXY_BACKEND}/${name}; shutdown sessions server ${PROXY_BACKEND}/${name}`);
  for (const a of listing) await a.remote!.exec(command, { timeoutMs: 15_000 });
  for (const a of asked.filter((x) => x.error !== undefined)) rc.warn(`${a.host.name} did not answer (${a.error}): its apiserver proxy drops ${name} by its health checks once ${name} stops`);
  if (!asked.some((a) => a.states !== undefined)) return undefined; // no proxy runs on any node
  return `out of the apiserver proxy on ${listing.length} node${listing.length === 1 ? "" : "s"}`;
}

async function runRemove(rc: RunContext, units: readonly string[]): Promise<string> {
  const name = rc.host.name;
  const done: string[] = [];
  // The host is asked once, first, while the rest goes on (a lazy step: one connection attempt).
  const reach = rc.sh("true", { timeoutMs: 15_000 }).then(
    () => undefined,
    // the cause's first sentence: "cannot connect: connect EHOSTUNREACH 10.0.0.3:22 (2 attempts in 6.7 s)"
    (e: Error) => e.message.split("\n")[0]!.replace(/^host \S+ \([^)]*\): /, "").split(". ")[0]!.slice(0, 160),
  );
  // before anything changes: a master may leave only if every node keeps an apiserver behind its proxy
  const proxies = hasRole(rc.host, "master") ? await askProxies(rc) : [];
  if (hasRole(rc.host, "etcd")) done.push(await removeEtcdMember(rc));
  const unreachable = await reach;
  if (runsKubelet(rc.host)) done.push(await removeNode(rc, unreachable));
  if (hasRole(rc.host, "master")) {
    const left = await leaveProxies(rc, proxies);
    if (left) done.push(left);
  }
  if (unreachable === undefined) {
    // The etcd data of a removed member must not come back with it (kept aside, not deleted).
    try {
      await rc.sh(disarm(units), { timeoutMs: 180_000 });
      done.push(`units stopped and disabled, credentials removed on ${name}`);
    } catch (e) {
      unreachableWarning(rc, (e as Error).message.split("\n")[0]!);
      done.push(`units NOT stopped on ${name} (see warning)`);
    }
  } else {
    unreachableWarning(rc, unreachable);
    done.push(`units NOT stopped on ${name} (unreachable; see warning)`);
  }
  rc.operator.forgetHost(name);
  return done.join(", ");
}

function unreachableWarning(rc: RunContext, why: string): void {
  rc.warn(
    `could not stop its units or remove its credentials (${why}). If it comes back, it still holds its kubelet client certificate: ` +
      `wipe it before it boots into the network (docs/day2.md, "A host removed while it was down")`,
  );
}

/**
 * The remove step. `units`: what a removed host must stop, every other step's units in stop order.
 * The registry (steps/index.ts) hands them in, so this module lists no other step's units.
 */
export function removeStep(units: () => readonly string[]): StepDef {
  return {
    name: "remove",
    scope: "host",
    description: "remove a host that left the inventory: drain, etcd member removal, units stopped",
    hosts: (_inv, gone) => gone,
    deps: [],
    connect: "lazy",
    files: () => [],
    triggers: (_ctx, host) => ({ host: host.name }),
    run: (rc) => runRemove(rc, units()),
  };
}
