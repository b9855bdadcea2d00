// The node-local apiserver proxy as the other steps reach it (issue 25): where its files and admin
// socket are, its health-check timing, reading its view of the masters, and draining a master on
// every proxy around that master's apiserver restart. The apiserver-proxy step installs the proxy;
// the apiserver step (drain) and the remove step (a master leaving) use it from here, so that no
// step imports another step's module.
import { Host, kubeletHosts } from "../inventory/types";
import { shq } from "../remote/shell";
import { GateError, waitFor } from "../util/wait";
import { K8S } from "./files";
import { RunContext, StepRemote } from "./types";

export const PROXY_UNIT = "apiserver-proxy";
/** haproxy and the libraries it links that a minimal host may lack: a directory of their own. */
export const PROXY = {
  bin: "/opt/apiserver-proxy/bin",
  lib: "/opt/apiserver-proxy/lib",
  binary: "/opt/apiserver-proxy/bin/haproxy",
  config: `${K8S.cfg}/apiserver-proxy.cfg`,
  /** The health checks' client certificate and key, one PEM file (haproxy's `crt`). */
  clientCert: `${K8S.ssl}/apiserver-proxy-client.pem`,
  ca: `${K8S.ssl}/ca.pem`,
  /** systemd's RuntimeDirectory= (0700): the admin socket lives there. */
  runtimeDirectory: "apiserver-proxy",
  adminSocket: "/run/apiserver-proxy/admin.sock",
} as const;
/** The backend every master is a server of (named by its host). */
export const PROXY_BACKEND = "kube-apiservers";

/**
 * The health checks: one each second per master (one small TLS request), `fall` failures in a row
 * take a master out, `rise` passes bring it back (not one lucky answer of a restarting apiserver).
 * A check must connect within the interval (haproxy caps a check's connect at `inter`) and may then
 * wait checkTimeoutMs for the answer: a master that is gone fails fast, one that is only slow
 * (a busy host) is not taken out. New connections that cannot connect within connectTimeoutMs are
 * retried on another master meanwhile.
 */
export const PROXY_CHECK = { intervalMs: 1000, fall: 2, rise: 2, connectTimeoutMs: 1000, checkTimeoutMs: 5000 } as const;

/**
 * How long after a master stops answering (its host gone: no connection) the node-side clients
 * may still be sent to it, worst case: up to one interval until its next check starts, then `fall`
 * checks that each fail to connect within an interval, one interval apart (4 s with the values
 * above). Its connections are closed when it is marked down, so their clients reconnect through a
 * healthy master. (An apiserver that accepts connections but never answers takes longer to be
 * taken out: fall x checkTimeoutMs more.)
 */
export function proxyFailureWindowMs(check: { intervalMs: number; fall: number } = PROXY_CHECK): number {
  return check.intervalMs + check.fall * check.intervalMs + (check.fall - 1) * check.intervalMs;
}

/**
 * A command that sends one line to haproxy's admin socket and prints the answer, through perl
 * (perl-base is Essential on Debian and Ubuntu; socat or nc -U may be missing). Prints
 * `no-socket` when haproxy's socket is not there (the proxy is not running on that host).
 */
export function proxyCli(command: string, socket: string = PROXY.adminSocket): string {
  const script = 'my $s = IO::Socket::UNIX->new(Peer => $ARGV[0]) or die "cannot connect to $ARGV[0]: $!\\n"; print $s "$ARGV[1]\\n"; print while <$s>;';
  return `if [ -S ${shq(socket)} ]; then perl -MIO::Socket::UNIX -e ${shq(script)} ${shq(socket)} ${shq(command)}; else echo no-socket; fi`;
}

export interface ServerState {
  name: string;
  /** UP, DOWN, MAINT, "UP 1/2" (going down), "DOWN 1/2" (coming up), … */
  status: string;
  /** The last check's result: L7OK (an authenticated /readyz answered 200), L4CON, L7STS, INI … */
  check: string;
}

/** The backend's servers from `show stat` (CSV, first line its header). */
export function parseServerStates(csv: string, backend = PROXY_BACKEND): ServerState[] {
  const lines = csv.split("\n").filter((l) => l.trim() !== "");
  const header = lines.find((l) => l.startsWith("# "))?.slice(2).split(",") ?? [];
  const col = (name: string) => header.indexOf(name);
  const [px, sv, status, check] = [col("pxname"), col("svname"), col("status"), col("check_status")];
  if (px < 0 || sv < 0 || status < 0) return [];
  return lines
    .filter((l) => !l.startsWith("#"))
    .map((l) => l.split(","))
    .filter((f) => f[px] === backend && f[sv] !== "FRONTEND" && f[sv] !== "BACKEND")
    .map((f) => ({ name: f[sv]!, status: f[status]!, check: (f[check] ?? "").replace(/^\* /, "") }));
}

/** Serving now: UP (or on its way down, one check failed) after a check that passed. */
export const serving = (s: ServerState): boolean => /^UP\b/.test(s.status) && s.check === "L7OK";

export async function serverStates(remote: StepRemote): Promise<ServerState[] | undefined> {
  const r = await remote.exec(proxyCli("show stat"), { allowFail: true, timeoutMs: 15_000 });
  if (r.stdout.trim() === "no-socket") return undefined;
  if (r.code !== 0) throw new Error(`haproxy's admin socket did not answer: ${(r.stderr || r.stdout).trim().split("\n").pop()}`);
  return parseServerStates(r.stdout);
}

/**
 * Runs `restart` (an apiserver's restart on `master`) with that master drained on every node-local
 * proxy: no new connection goes to it while it stops and starts, the ones it carries finish or are
 * closed by the apiserver itself, and its clients reconnect through the other masters. Afterwards
 * it is set ready again and awaited UP (two authenticated /readyz passes) behind every proxy, so
 * the next master's restart never finds a proxy with no apiserver to send to. Proxies that are not
 * running yet (a first bring-up) are skipped. Without the drain a proxy would keep sending new
 * connections to the restarting apiserver until its checks fail (up to the failure window), and
 * the first connections after its start would reach it before it is ready.
 */
export async function withMasterDrained<T>(rc: RunContext, restart: () => Promise<T>): Promise<T> {
  if (!rc.inv.apiserver.nodeLocalProxy) return restart();
  const server = `${PROXY_BACKEND}/${rc.host.name}`;
  const proxies: { host: Host; remote: StepRemote }[] = [];
  for (const host of kubeletHosts(rc.inv)) {
    const remote = host.name === rc.host.name ? rc.remote : await rc.onHost(host);
    const states = await serverStates(remote).catch((e: Error) => {
      throw new GateError(`the apiserver proxy on ${host.name} did not answer before ${rc.host.name}'s apiserver restarts (${e.message}); nothing was restarted. Fix: check journalctl -u ${PROXY_UNIT} on ${host.name}, then re-run`);
    });
    if (states?.some((s) => s.name === rc.host.name)) proxies.push({ host, remote });
  }
  const set = (state: "drain" | "ready") => Promise.all(proxies.map(({ remote }) => remote.exec(proxyCli(`set server ${server} state ${state}`), { timeoutMs: 15_000 })));
  await set("drain");
  if (proxies.length > 0) rc.note(`drained on ${proxies.length} apiserver prox${proxies.length === 1 ? "y" : "ies"} for its restart`);
  let result: T;
  try {
    result = await restart();
  } finally {
    // ready again even when the restart failed: the proxies' own checks then keep it out
    await set("ready");
  }
  for (const { host, remote } of proxies) {
    await waitFor(
      `${rc.host.name} UP behind the apiserver proxy on ${host.name}`,
      async () => {
        const s = (await serverStates(remote))?.find((x) => x.name === rc.host.name);
        return s && serving(s) ? true : s ? `${s.status} (${s.check || "no check yet"})` : "not listed";
      },
      { timeoutMs: 60_000, intervalMs: 250, log: rc.log, fix: `check journalctl -u ${PROXY_UNIT} on ${host.name}: its checks of ${rc.host.name}:${rc.inv.network.apiserverPort}/readyz must pass` },
    );
  }
  return result;
}
