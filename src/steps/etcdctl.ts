// etcd as its clients see it: the members' peer and client URLs (the etcd step's initial cluster,
// the apiserver's --etcd-servers, the restore), etcdctl on an etcd host with the command prefix
// (healthcheck client certificate), the one parser of its `member list` / `endpoint status`
// tables, and membership changes that wait out etcd's "unhealthy cluster" refusal.
import type { ExecResult } from "../remote";
import { GateError, waitFor } from "../util/wait";
import { ETCD } from "./files";
import { Inventory, hostsWithRole } from "../inventory/types";

/** Every member as `name=https://address:2380`, etcd's --initial-cluster. */
export function etcdInitialCluster(inv: Inventory): string {
  return hostsWithRole(inv, "etcd")
    .map((h) => `${h.name}=https://${h.address}:2380`)
    .join(",");
}

/** Every member's client URL, comma-separated (the apiserver's --etcd-servers). */
export function etcdClientURLs(inv: Inventory): string {
  return hostsWithRole(inv, "etcd")
    .map((h) => `https://${h.address}:2379`)
    .join(",");
}

export const ETCDCTL = `ETCDCTL_API=3 ${ETCD.bin}/etcdctl --cacert=${ETCD.ssl}/ca.pem --cert=${ETCD.ssl}/healthcheck-client.pem --key=${ETCD.ssl}/healthcheck-client-key.pem`;

/**
 * `etcdctl endpoint health` (2>&1): the endpoints that answered healthy (`URL is healthy: …`), and
 * the lines that say why others did not (`URL is unhealthy: …`, errors), first reason first.
 */
export function parseEndpointHealth(out: string): { healthy: string[]; problems: string[] } {
  const lines = out.split("\n").map((l) => l.trim()).filter(Boolean);
  return {
    healthy: lines.map((l) => /^(\S+) is healthy\b/.exec(l)?.[1]).filter((u): u is string => u !== undefined),
    problems: lines.filter((l) => /unhealthy|error/i.test(l)),
  };
}

export interface Member {
  id: string;
  status: string;
  name: string;
  peerURLs: string;
  clientURLs: string;
  isLearner: boolean;
}

/** `member list` simple output: "ID, STATUS, NAME, PEER URLS, CLIENT URLS, IS LEARNER" per line. */
export function parseMemberList(stdout: string): Member[] {
  return stdout
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const [id = "", status = "", name = "", peerURLs = "", clientURLs = "", learner = ""] = l.split(", ");
      return { id, status, name, peerURLs, clientURLs, isLearner: learner === "true" };
    });
}

/** `endpoint status` simple output: "ENDPOINT, ID, VERSION, DB SIZE, IS LEADER, IS LEARNER, TERM, INDEX, APPLIED, ERRORS". */
export function parseEndpointStatus(stdout: string): { id: string; isLeader: boolean } {
  const cols = stdout.trim().split(", ");
  return { id: cols[1] ?? "", isLeader: cols[4] === "true" };
}

/**
 * Runs a `member add` / `member remove`. etcd refuses either ("unhealthy cluster") until every
 * member has been connected for a few seconds, e.g. right after the members were restarted by the
 * same deploy: retry for a while, fail at once on any other error.
 */
export async function changeMembership(run: () => Promise<ExecResult>, what: string, opts: { log: (l: string) => void; fix: string }): Promise<void> {
  await waitFor(
    what,
    async () => {
      const r = await run();
      if (r.code === 0) return true;
      const out = `${r.stdout}\n${r.stderr}`;
      if (/unhealthy cluster/.test(out)) return "etcd: cluster not ready for a membership change yet";
      throw new GateError(`${what} failed: ${out.trim().split("\n").pop()}`);
    },
    { timeoutMs: 90_000, intervalMs: 3000, log: opts.log, fix: opts.fix },
  );
}
