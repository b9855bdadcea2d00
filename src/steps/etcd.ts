// etcd: one member per etcd host, mutual TLS for clients and peers, started without blocking
// (a Type=notify member waits for quorum, so `systemctl start` on the first one would hang).
import { etcdPeerCert, etcdServerCert } from "../pki/catalog";
import { leafRef } from "../pki/refs";
import { Host, hostsWithRole } from "../inventory/types";
import { BINARIES } from "../binaries/catalog";
import { ETCD, ETCD_USER, binary, cert, secret, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { waitFor } from "../util/wait";
import { applyUnit, probeUnit, waitActive } from "./actions";
import { snapshotMember } from "./etcd-snapshot";
import { shq } from "../remote/shell";
import { ETCDCTL, changeMembership, etcdClientURLs, etcdInitialCluster, parseEndpointHealth, parseEndpointStatus, parseMemberList } from "./etcdctl";
import { TLS_CIPHER_SUITES } from "./tls";


/**
 * etcd reads ETCD_INITIAL_CLUSTER only when it bootstraps an empty data dir; a running member
 * learns new and removed peers through raft. A config change confined to that line therefore
 * needs no restart (the file is still updated, so it reads true on disk).
 */
export function needsRestartFor(oldConf: string, newConf: string): boolean {
  const strip = (t: string) => t.split("\n").filter((l) => !l.startsWith("ETCD_INITIAL_CLUSTER=")).join("\n");
  return strip(oldConf) !== strip(newConf);
}

async function runEtcd(rc: RunContext): Promise<string> {
  // Before the sync: whether it runs, and whether it was already older than its files.
  const before = await probeUnit(rc, "etcd");
  const wasActive = before.active === "active";
  const local = `--endpoints=https://127.0.0.1:2379`;
  const conf = `${ETCD.cfg}/etcd.conf`;
  const oldConf = wasActive ? (await rc.sh(`cat ${conf} 2>/dev/null || true`)).stdout : "";
  const sync = await rc.sync();
  // The member's own keys and its data belong to the etcd user the unit runs as (a key the sync
  // just replaced was created by root; a member of an earlier version ran as root).
  await rc.sh(`chown ${ETCD_USER}:${ETCD_USER} ${ETCD.ssl}/server-key.pem ${ETCD.ssl}/peer-key.pem && chown -R ${ETCD_USER}:${ETCD_USER} ${ETCD.data} && chmod 0700 ${ETCD.data}`);
  const newConf = rc.files.find((f) => f.path === conf)?.content ?? "";
  const changedRestart = sync.changed.some((p) => p !== conf) || (sync.changed.includes(conf) && needsRestartFor(oldConf, newConf));
  // A member older than its files (an earlier run stopped before its restart) restarts like a
  // changed one, snapshot and hand-off included; applyUnit finds the same files and says so.
  const restart = changedRestart || before.stale.length > 0;
  // Only if the member was current before this run: a peer-list change must not hide an older one.
  const peersOnly = wasActive && sync.changed.length > 0 && !restart && before.stale.length === 0;
  let snapshot = "";
  if (wasActive && restart) {
    // A running member is about to be restarted (new certificates or config; the member still
    // runs on the old ones): back it up first. A member that cannot snapshot (unhealthy) is
    // still restarted: that may be the fix.
    snapshot = await snapshotMember(rc, ETCDCTL).then(
      (s) => `, ${s}`,
      (e: Error) => {
        rc.warn(`no snapshot before the restart: ${e.message.split("\n")[0]}`);
        return ", NO snapshot (see warning)";
      },
    );
  }
  const handedOff =
    wasActive && restart
      ? await handOffLeadership(rc).catch((e: Error) => {
          rc.warn(`leadership not handed off before the restart: ${e.message.split("\n")[0]}`);
          return "";
        })
      : "";
  // A first bring-up bootstraps a new cluster together: no member has anything to join (asking
  // the peers would wait out etcdctl's timeout on members that wait for each other).
  const joined = wasActive || rc.firstBringUp ? "" : await joinExistingCluster(rc);
  // --no-block: a Type=notify member waits for quorum, so starting the first one would hang.
  const action = await applyUnit(rc, "etcd", changedRestart, { noBlock: true, currentWith: peersOnly ? [conf] : [] });
  // A member that was not running: its first "active" is this start's READY. After a restart
  // (--no-block) the first poll may still see the old process active, so the full watch stays.
  await waitActive(rc, "etcd", { allowActivating: true, notifyReady: !wasActive, timeoutMs: 60_000 });
  if (wasActive && restart) {
    // Rolling restart: the next member restarts only after this one serves again.
    await waitFor(
      `etcd member ${rc.host.name} healthy after restart`,
      async () => (parseEndpointHealth((await rc.sh(`${ETCDCTL} ${local} --command-timeout=5s endpoint health 2>&1`, { allowFail: true })).stdout).healthy.length > 0 ? true : "not healthy yet"),
      { timeoutMs: 120_000, intervalMs: 1000, log: rc.log, fix: `check journalctl -u etcd on ${rc.host.name}` },
    );
  }
  const files = `${sync.changed.length}/${sync.changed.length + sync.unchanged.length} files changed`;
  const how = peersOnly ? `${action} (only the bootstrap peer list changed: a running member learns peers through raft)` : action;
  return `${files}, ${how}${joined}${handedOff}${wasActive && restart ? ", member healthy" : ""}${snapshot}`;
}

/**
 * A leader that stops takes the whole cluster through an election: for up to the election
 * timeout no request is served, on every apiserver at once. Before restarting the leader, hand
 * leadership to a started peer (`move-leader`); a follower's restart only makes its own clients
 * reconnect. Returns a summary fragment, "" when this member is not the leader or alone.
 */
async function handOffLeadership(rc: RunContext): Promise<string> {
  const local = "--endpoints=https://127.0.0.1:2379 --command-timeout=10s";
  const self = parseEndpointStatus((await rc.sh(`${ETCDCTL} ${local} endpoint status`)).stdout);
  if (!self.isLeader) return "";
  const peers = parseMemberList((await rc.sh(`${ETCDCTL} ${local} member list`)).stdout);
  const to = peers.find((m) => m.id !== self.id && m.status === "started" && !m.isLearner);
  if (!to) return "";
  await rc.sh(`${ETCDCTL} ${local} move-leader ${shq(to.id)}`);
  return `, leadership handed to ${to.name}`;
}

const JOIN_DROPIN = "/etc/systemd/system/etcd.service.d/10-binkube-join.conf";
/** The member's data dir (ETCD_DATA_DIR in etcd.conf). */
const MEMBER_DIR = `${ETCD.data}/default.etcd`;

/**
 * A member with no data yet, while the other members already form a cluster: announce it with
 * `member add` and start it with initial-cluster-state=existing (a drop-in env file read after
 * etcd.conf). A brand-new cluster (no other member answers) bootstraps with "new" as rendered.
 */
async function joinExistingCluster(rc: RunContext): Promise<string> {
  const probe = await rc.sh(`test -d ${MEMBER_DIR}/member && echo data; test -f ${JOIN_DROPIN} && echo dropin; true`);
  const hasData = probe.stdout.includes("data");
  if (!hasData && probe.stdout.includes("dropin")) return ", joining the existing cluster";
  const others = hostsWithRole(rc.inv, "etcd").filter((h) => h.name !== rc.host.name).map((h) => `https://${h.address}:2379`);
  if (others.length === 0) return "";
  // A cluster exists only if it has quorum; during a first bring-up the others are still waiting.
  const health = await rc.sh(`${ETCDCTL} --endpoints=${shq(others.join(","))} --dial-timeout=3s --command-timeout=5s endpoint health 2>&1`, { allowFail: true, timeoutMs: 30_000 });
  if (parseEndpointHealth(health.stdout).healthy.length === 0) return "";
  const list = await rc.sh(`${ETCDCTL} --endpoints=${shq(others.join(","))} --command-timeout=5s member list`, { timeoutMs: 30_000 });
  const peer = `https://${rc.host.address}:2380`;
  // Listed already: a member of the static bootstrap that starts late (it joins as "new"), or a
  // member restarting on its own data.
  const members = parseMemberList(list.stdout);
  if (members.some((m) => m.peerURLs.split(",").includes(peer) || m.name === rc.host.name)) return "";
  let aside = "";
  if (hasData) {
    // The data of a member the cluster no longer has (removed while this host was away): etcd
    // would exit with "the member has been permanently removed". Kept aside, like a restore does.
    const dir = (await rc.sh(`systemctl stop etcd; d=${ETCD.data}/removed-$(date -u +%Y%m%dT%H%M%SZ); mv ${MEMBER_DIR} "$d" && rm -f ${JOIN_DROPIN} && echo "$d"`)).stdout.trim();
    rc.note(`etcd data of a removed member moved aside to ${dir}`);
    aside = `, old data of a removed member kept in ${dir}`;
  }
  // Drop-in first, then member add: a re-run after a failure in between still joins.
  await rc.sh(`mkdir -p /etc/systemd/system/etcd.service.d && printf '[Service]\\nEnvironmentFile=/opt/etcd/cfg/etcd-join.conf\\n' > ${JOIN_DROPIN} && echo 'ETCD_INITIAL_CLUSTER_STATE="existing"' > /opt/etcd/cfg/etcd-join.conf && systemctl daemon-reload`);
  await changeMembership(
    () => rc.sh(`${ETCDCTL} --endpoints=${shq(others.join(","))} --command-timeout=10s member add ${shq(rc.host.name)} --peer-urls=${shq(peer)} 2>&1`, { allowFail: true, timeoutMs: 30_000 }),
    `etcd member add ${rc.host.name}`,
    { log: rc.log, fix: "check etcd-health: every existing member must be healthy before a member joins" },
  );
  return `, joined the existing cluster as member ${members.length + 1}${aside}`;
}

async function runEtcdHealth(rc: RunContext): Promise<string> {
  const endpoints = etcdClientURLs(rc.inv);
  const total = endpoints.split(",").length;
  await waitFor(
    `every etcd member healthy over mTLS`,
    async () => {
      const r = await rc.sh(`${ETCDCTL} --endpoints=${shq(endpoints)} --command-timeout=5s endpoint health 2>&1`, { allowFail: true, timeoutMs: 30_000 });
      const { healthy, problems } = parseEndpointHealth(r.stdout);
      return healthy.length === total ? true : `${healthy.length}/${total} healthy: ${problems[0] ?? ""}`;
    },
    { timeoutMs: 180_000, intervalMs: 500, log: rc.log, fix: "check every etcd host: journalctl -u etcd (certificates, peer URLs, firewall on 2379/2380)" },
  );
  return `${total}/${total} members healthy`;
}


export const etcd: StepDef = {
  name: "etcd",
  scope: "host",
  description: "etcd member: binaries, certificates, etcd.conf, unit",
  hosts: (inv) => hostsWithRole(inv, "etcd"),
  deps: [
    // etcd-health and the apiservers follow through their own deps on etcd.
    { step: "remove", on: "all", why: "a removed host leaves (its member too) before the others roll for the new peer list" },
    { step: "prepare", on: "same-host", why: "the host passed preflight and has etcd's directories and user" },
    { step: "etcd", on: "previous-host", why: "a changed member restarts one host at a time, so the cluster keeps its quorum" },
  ],
  // etcd admits one new member at a time (member add refuses while an added member has not started)
  serialJoin: true,
  run: runEtcd,
  units: ["etcd"],
  binaries: BINARIES.etcd,
  certificates: (_inv, host) => [etcdServerCert(host), etcdPeerCert(host), "etcd-healthcheck-client"],
  files: ({ inv, pki }, host: Host) => {
    const server = leafRef(etcdServerCert(host));
    const peer = leafRef(etcdPeerCert(host));
    const health = leafRef("etcd-healthcheck-client");
    return [
      // etcdctl and the health-check client pair are read per use, not by the member
      ...BINARIES.etcd.map((b) => ({ ...binary(ETCD.bin, b), live: b === "etcdctl" || undefined })),
      cert(`${ETCD.ssl}/ca.pem`, pki.cas["etcd-ca"].certPem),
      cert(`${ETCD.ssl}/server.pem`, server.certPem),
      { ...secret(`${ETCD.ssl}/server-key.pem`, server.keyPem), owner: ETCD_USER },
      cert(`${ETCD.ssl}/peer.pem`, peer.certPem),
      { ...secret(`${ETCD.ssl}/peer-key.pem`, peer.keyPem), owner: ETCD_USER },
      { ...cert(`${ETCD.ssl}/healthcheck-client.pem`, health.certPem), live: true },
      { ...secret(`${ETCD.ssl}/healthcheck-client-key.pem`, health.keyPem), live: true },
      templated(`${ETCD.cfg}/etcd.conf`, "etcd/etcd.conf", {
        etcdVersion: inv.etcdVersion,
        name: host.name,
        address: host.address,
        initialCluster: etcdInitialCluster(inv),
        clusterToken: `${inv.clusterName}-etcd`,
        initialClusterState: "new",
        cipherSuites: TLS_CIPHER_SUITES.join(","),
      }),
      unit("etcd", "etcd/etcd.service"),
    ];
  },
};

export const etcdHealth: StepDef = {
  name: "etcd-health",
  scope: "once",
  description: "wait until every etcd member is healthy over mTLS",
  hosts: (inv) => hostsWithRole(inv, "etcd"),
  deps: [{ step: "etcd", on: "all", why: "it waits for every member" }],
  run: runEtcdHealth,
  files: () => [],
  triggers: ({ inv }) => ({ members: etcdInitialCluster(inv) }),
};
