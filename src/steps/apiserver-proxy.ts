// apiserver-proxy: haproxy on every host that runs a kubelet, listening on 127.0.0.1 only, in
// front of every master's apiserver (TCP passthrough, active /readyz checks with a certificate of
// the host's own). kubelet, kube-proxy and the bootstrap kubeconfig point at it, so no node depends
// on one master (docs/apiserver-proxy.md). On by default with several masters and no endpoint.
import { HAPROXY, HAPROXY_GROUP } from "../binaries/catalog";
import { Host, Inventory, NODE_LOCAL_PROXY_PORT, hostsWithRole, kubeletHosts } from "../inventory/types";
import { apiserverProxyCert } from "../pki/catalog";
import { leaf } from "../pki/store";
import { shq } from "../remote/shell";
import { GateError, waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion, journalTail, probeUnit } from "./actions";
import { K8S, binary, cert, secret, templated, unit } from "./files";
import { RunContext, StepDef, StepRemote } from "./types";

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

/** Every master as an upstream, in inventory order, named by its host. */
export function proxyServers(inv: Inventory): { name: string; address: string; port: number }[] {
  return hostsWithRole(inv, "master").map((h) => ({ name: h.name, address: h.address, port: inv.network.apiserverPort }));
}

export interface ProxyConfigPaths {
  adminSocket: string;
  caFile: string;
  clientCertFile: string;
  listenAddress: string;
  listenPort: number;
}

/** haproxy.cfg for these servers (paths and port as a host has them unless a test says otherwise). */
export function proxyConfig(servers: { name: string; address: string; port: number }[], paths: ProxyConfigPaths = { adminSocket: PROXY.adminSocket, caFile: PROXY.ca, clientCertFile: PROXY.clientCert, listenAddress: "127.0.0.1", listenPort: NODE_LOCAL_PROXY_PORT }) {
  return templated(PROXY.config, "apiserver-proxy/haproxy.cfg", {
    ...paths,
    maxconn: 2000,
    connectTimeoutMs: PROXY_CHECK.connectTimeoutMs,
    checkTimeoutMs: PROXY_CHECK.checkTimeoutMs,
    checkIntervalMs: PROXY_CHECK.intervalMs,
    fall: PROXY_CHECK.fall,
    rise: PROXY_CHECK.rise,
    servers,
  });
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
  if (proxies.length > 0) rc.log(`${rc.host.name} drained on ${proxies.length} apiserver prox${proxies.length === 1 ? "y" : "ies"} for its restart`);
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

/** The pid of the worker that answers the admin socket (a reload starts a new one). */
async function workerPid(rc: RunContext): Promise<string | undefined> {
  const r = await rc.sh(proxyCli("show info"), { allowFail: true, timeoutMs: 15_000 });
  return /^Pid: (\d+)$/m.exec(r.stdout)?.[1];
}

/** How long the proxy step waits for every master to be UP before one serving master is enough. */
const ALL_UP_WAIT_MS = 20_000;

/** Files a reload applies (haproxy reads them again); anything else (binary, libraries, unit) needs a restart. */
const RELOADED: ReadonlySet<string> = new Set([PROXY.config, PROXY.clientCert, PROXY.ca]);

/** Every shared library haproxy links resolves, with the shipped ones first on the loader's path. */
async function checkLibraries(rc: RunContext): Promise<void> {
  const r = await rc.sh(`command -v ldd >/dev/null || { echo no-ldd; exit 0; }; LD_LIBRARY_PATH=${shq(PROXY.lib)} ldd ${shq(PROXY.binary)} 2>&1 | grep -E 'not found|GLIBC' || true`, { timeoutMs: 30_000 });
  const missing = r.stdout.trim();
  if (missing && missing !== "no-ldd") {
    throw new GateError(
      `haproxy on ${rc.host.name} cannot load: ${missing.split("\n").map((l) => l.trim()).join("; ")}. binkube ships haproxy with the libraries a minimal host lacks (binaries haproxy/); ` +
        "the host must provide glibc 2.34 or later, libssl3, libpcre2-8-0, libsystemd0, libcrypt1 and libstdc++6 (Debian 12, Ubuntu 22.04 or later). Fix: install the missing package on the host, or add the library to binaries haproxy/, and re-run; the proxy was not restarted",
    );
  }
}

/**
 * A reload (master-worker: a new worker takes over the listening socket, the old one finishes its
 * connections), then the files it applied are dated back to the unit's start: they are current
 * with the running process, which `binkube check` and the next run judge by start time.
 */
async function reload(rc: RunContext, startedAt: number, files: string[]): Promise<string> {
  const before = await workerPid(rc);
  await rc.sh(`systemctl reload ${PROXY_UNIT}`, { timeoutMs: 60_000 }).catch(async (e: Error) => {
    throw new GateError(`systemctl reload ${PROXY_UNIT} failed (the running proxy keeps its old configuration): ${e.message}\n${await journalTail(rc, PROXY_UNIT)}`);
  });
  await waitFor(
    `a new haproxy worker on ${rc.host.name}`,
    async () => {
      const now = await workerPid(rc);
      return now !== undefined && now !== before ? true : `worker ${now ?? "not answering"}`;
    },
    { timeoutMs: 30_000, intervalMs: 250, log: rc.log, fix: `check journalctl -u ${PROXY_UNIT} on ${rc.host.name}` },
  );
  await rc.sh(`touch -m -d @${startedAt} -- ${files.map(shq).join(" ")}`);
  return `${PROXY_UNIT} reloaded (established connections kept)`;
}

async function runApiserverProxy(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  await checkLibraries(rc);
  await checkReleaseVersion(rc, HAPROXY, PROXY.binary, PROXY.lib);
  const check = await rc.sh(`LD_LIBRARY_PATH=${shq(PROXY.lib)} ${shq(PROXY.binary)} -c -q -f ${shq(PROXY.config)} 2>&1`, { allowFail: true, timeoutMs: 30_000 });
  if (check.code !== 0) throw new GateError(`haproxy refuses ${PROXY.config} on ${rc.host.name}: ${check.stdout.trim().split("\n").slice(-5).join("; ")}; the proxy was not restarted. Fix: report it (binkube renders this file), or check the haproxy binary in binaries haproxy/`);
  const probe = await probeUnit(rc, PROXY_UNIT);
  const touched = [...new Set([...sync.changed, ...probe.stale.map((s) => s.path)])];
  const graceful = probe.active === "active" && probe.startedAt !== undefined && touched.length > 0 && touched.every((p) => RELOADED.has(p));
  const action = graceful ? await reload(rc, probe.startedAt!, touched) : await applyUnit(rc, PROXY_UNIT, sync.changed.length > 0, { probe });
  let states: ServerState[] = [];
  await activeAndHealthy(rc, PROXY_UNIT, {}, async () => {
    // Every master UP is the normal end, and what the next step's clients should find; a master
    // that stays down (a host that is off) must not hold the nodes' roll, so after a while one
    // serving master is enough and the summary names the others.
    const all = await waitFor(
      `every apiserver UP behind the proxy on ${rc.host.name}`,
      async () => {
        states = (await serverStates(rc.remote)) ?? [];
        return states.length > 0 && states.every(serving) ? true : "not yet";
      },
      { timeoutMs: ALL_UP_WAIT_MS, intervalMs: 500, log: () => undefined, fix: "" },
    ).then(() => true, () => false);
    if (all) return;
    await waitFor(
      `an apiserver UP behind the proxy on ${rc.host.name} (an authenticated /readyz passed)`,
      async () => {
        states = (await serverStates(rc.remote)) ?? [];
        return states.some(serving) ? true : states.length === 0 ? "no answer from haproxy's admin socket yet" : states.map((s) => `${s.name} ${s.status} (${s.check || "no check yet"})`).join(", ");
      },
      { timeoutMs: 60_000, intervalMs: 500, log: rc.log, fix: `check journalctl -u ${PROXY_UNIT} on ${rc.host.name}: the checks need the cluster CA, the host's proxy certificate and a master answering /readyz on :${rc.inv.network.apiserverPort}` },
    );
  });
  const up = states.filter(serving).map((s) => s.name);
  const down = states.filter((s) => !serving(s)).map((s) => `${s.name} ${s.status}`);
  return `${sync.changed.length} files changed, ${action}, ${up.length}/${states.length} apiservers up (${up.join(", ")}${down.length ? `; ${down.join(", ")}` : ""})`;
}

export const apiserverProxy: StepDef = {
  name: "apiserver-proxy",
  scope: "host",
  description: "node-local apiserver proxy: haproxy, its libraries, config, health-check certificate, unit",
  hosts: (inv) => (inv.apiserver.nodeLocalProxy ? kubeletHosts(inv) : []),
  deps: [
    { step: "prepare", on: "same-host", why: "the host passed preflight and has its directories" },
    // A removed master leaves the lists before it stops through the remove step (haproxy's
    // runtime API, steps/remove.ts), not through an edge: remove runs before etcd, etcd before
    // the apiservers, so an edge from remove to this step would be a cycle.
    { step: "apiserver", on: "all", why: "a master is listed only once its apiserver serves (its gate: /healthz); listed earlier, it would get connections before it is ready" },
    { step: "apiserver-proxy", on: "previous-host", why: "one node at a time when the upstream list (or anything else) changes; new nodes in parallel" },
  ],
  run: runApiserverProxy,
  units: [PROXY_UNIT],
  binaries: [HAPROXY],
  certificates: (_inv, host) => [apiserverProxyCert(host)],
  files: ({ inv, pki, binaries }, host: Host) => {
    const client = leaf(pki, apiserverProxyCert(host));
    const libs = binaries.group(HAPROXY_GROUP).filter((n) => n !== HAPROXY);
    return [
      binary(PROXY.bin, HAPROXY),
      ...libs.map((n) => ({ ...binary(PROXY.lib, n), mode: 0o644 })),
      cert(PROXY.ca, pki.cas.ca.certPem),
      secret(PROXY.clientCert, client.certPem + client.keyPem),
      proxyConfig(proxyServers(inv)),
      unit(PROXY_UNIT, "apiserver-proxy/apiserver-proxy.service", { libDir: PROXY.lib, runtimeDirectory: PROXY.runtimeDirectory, binary: PROXY.binary, config: PROXY.config }),
    ];
  },
};
