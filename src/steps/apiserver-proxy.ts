// apiserver-proxy: haproxy on every host that runs a kubelet, listening on 127.0.0.1 only, in
// front of every master's apiserver (TCP passthrough, active /readyz checks with a certificate of
// the host's own). kubelet, kube-proxy and the bootstrap kubeconfig point at it, so no node depends
// on one master (docs/apiserver-proxy.md). On by default with several masters and no endpoint.
import { HAPROXY, HAPROXY_GROUP } from "../binaries/catalog";
import { Host, Inventory, NODE_LOCAL_PROXY_PORT, hostsWithRole, kubeletHosts } from "../inventory/types";
import { apiserverProxyCert } from "../pki/catalog";
import { leafRef } from "../pki/refs";
import { shq } from "../remote/shell";
import { GateError, waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion, journalTail, probeUnit } from "./actions";
import { binary, cert, secret, templated, unit } from "./files";
import { PROXY, PROXY_CHECK, PROXY_UNIT, ServerState, proxyCli, serverStates, serving } from "./node-proxy";
import { RunContext, StepDef } from "./types";

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
    const client = leafRef(apiserverProxyCert(host));
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
