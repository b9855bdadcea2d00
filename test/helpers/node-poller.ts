// A poller on a node through its node-local apiserver proxy (issue 25): what the node's kubelet and
// kube-proxy see of the API while masters go away or roll. Used by the HA and day-2 suites.
import { ChildProcess, spawn } from "node:child_process";
import { NODE_LOCAL_PROXY_PORT } from "../../src/inventory/types";
import { PROXY } from "../../src/steps/node-proxy";

/** The node-side poller's period (the issue's 0.2 s) and each request's own limit. */
export const POLL_MS = 200;
const POLL_TIMEOUT_S = 2;

/**
 * A poller on a node, through its local proxy: GET /readyz on https://127.0.0.1:6444 every
 * POLL_MS with the node's proxy certificate (a client of the cluster CA in no group), until
 * /tmp/stop-poller exists. Prints one line per poll: epoch ms, http code (000: no answer within
 * POLL_TIMEOUT_S), seconds taken, curl's exit code, and the checks /readyz?verbose reported failed
 * (`-` if none): a failed poll then says whether no apiserver answered or which of its checks failed.
 */
export function nodePollerScript(): string {
  return [
    "rm -f /tmp/stop-poller",
    "while [ ! -e /tmp/stop-poller ]; do",
    `  r=$(curl -s -o /tmp/poller-body -w '%{http_code} %{time_total} %{exitcode}' --max-time ${POLL_TIMEOUT_S} --cacert ${PROXY.ca} --cert ${PROXY.clientCert} 'https://127.0.0.1:${NODE_LOCAL_PROXY_PORT}/readyz?verbose')`,
    "  f=$(grep -o '^\\[-\\][^ ]*' /tmp/poller-body 2>/dev/null | tr '\\n' ',')",
    '  echo "$(date +%s%3N) $r ${f:--}"',
    `  sleep ${POLL_MS / 1000}`,
    "done",
  ].join("\n");
}

export interface NodePolls {
  polls: number;
  failures: number;
  /** The longest a successful poll took, seconds. */
  slowest: number;
  /** When failures happened, ms after `since`. */
  failedAt: number[];
  /** Per failure: http code, curl exit code and the failed checks, e.g. `500/0 [-]etcd,`. */
  failedHow: string[];
  /**
   * Failures where an apiserver answered and only its etcd check failed: its 2 s read of
   * /registry/health failed or was slow while an etcd member restarted. The node had an apiserver.
   */
  etcdCheckOnly: number;
}

export function readNodePolls(out: string, since: number): NodePolls {
  const lines = out.trim().split("\n").map((l) => l.trim().split(" ")).filter((f) => f.length >= 3);
  const counted = lines.filter(([t]) => Number(t) >= since);
  const failed = counted.filter(([, code]) => code !== "200");
  return {
    polls: counted.length,
    failures: failed.length,
    slowest: Math.max(0, ...counted.filter(([, code]) => code === "200").map(([, , s]) => Number(s))),
    failedAt: failed.map(([t]) => Number(t) - since),
    failedHow: failed.map(([, code, , exit, checks]) => `${code}/${exit ?? "?"} ${checks ?? "-"}`),
    etcdCheckOnly: failed.filter(([, code, , , checks]) => code === "500" && checks === "[-]etcd,").length,
  };
}

/** Starts the poller over ssh (`sshArgs` reach the node); stop() ends it and returns its lines. */
export function startNodePoller(sshArgs: string[]): { stop: (ssh: (command: string) => Promise<unknown>) => Promise<string> } {
  const poller: ChildProcess = spawn("ssh", [...sshArgs, nodePollerScript()], { stdio: ["ignore", "pipe", "pipe"] });
  let polled = "";
  poller.stdout!.on("data", (d: Buffer) => (polled += d.toString()));
  const done = new Promise<void>((resolve) => poller.on("exit", () => resolve()));
  return {
    stop: async (ssh) => {
      await ssh("touch /tmp/stop-poller");
      await done;
      return polled;
    },
  };
}

/** One line for a test's output: how many polls failed, when, and the slowest success. */
export function describeNodePolls(node: NodePolls, what: string): string {
  return `${what}: ${node.failures} of ${node.polls} polls failed${node.failedAt.length ? ` (at ${node.failedAt.map((t, i) => `${(t / 1000).toFixed(1)} s: ${node.failedHow[i]}`).join("; ")})` : ""}, slowest success ${node.slowest.toFixed(2)} s`;
}
