// Builds a step's RunContext (steps/types.ts) for one instance: a connection to its host, file
// sync, and a lazily opened connection to the first master for kubectl.
import type { StepScope } from "../cluster";
import { stepLines } from "../log";
import { Host, hostsWithRole } from "../inventory/types";
import { FileToShip, RemoteHost, type PeerSource } from "../remote";
import type { RunContext, StepRemote } from "../steps/types";
import { operatorSide } from "./operator-side";
import { sshTarget } from "./target";

/** The runner's side of a context: bytes sent over every connection, and closing them. */
export interface OpenRunContext extends RunContext {
  bytesSent(): number;
  /** Bytes the step's host copied from other hosts instead (the deploy's relay). */
  peerBytes(): number;
  /** Copies from other hosts that failed and went over the operator's link instead. */
  peerFallbacks(): number;
  /** Milliseconds spent in sync() (check, upload, finalize). */
  syncMs(): number;
  close(): Promise<void>;
}

export function filesToShip(scope: StepScope): FileToShip[] {
  return scope.inst.files.map((f) => {
    if (f.binary === undefined) return { path: f.path, mode: f.mode, content: f.content ?? "" };
    const info = scope.binaries.get(f.binary);
    if (!info.present || !info.localPath) throw new Error(`binary ${f.binary} is not available`);
    // a release binary is the same for every host that gets it: another host may hand it over
    return { path: f.path, mode: f.mode, sourcePath: info.localPath, sha256: info.url ? undefined : info.hash, public: true };
  });
}

/**
 * Connections are opened once per host and shared (the step's own host, the first master for
 * kubectl, an etcd host). The step's own host is connected before run() unless the step is
 * "lazy" (removal: one attempt, on first use, since the host may be gone).
 */
export async function openRunContext(scope: StepScope, opts: { step: string; log: (line: string) => void; verbose: boolean; connect?: "eager" | "lazy"; firstBringUp?: boolean; peers?: PeerSource }): Promise<OpenRunContext> {
  const { inv, inst } = scope;
  const lazy = opts.connect === "lazy";
  const connections = new Map<string, Promise<RemoteHost>>();
  const connect = (host: Host, retries?: number): Promise<RemoteHost> => {
    let c = connections.get(host.name);
    if (!c) {
      c = RemoteHost.connect(sshTarget(host), { log: opts.log, verbose: opts.verbose, ...(retries !== undefined ? { retries } : {}) });
      connections.set(host.name, c);
    }
    return c;
  };
  const own = () => connect(inst.host, lazy ? 1 : undefined);
  if (!lazy) await own();
  const resolved = async () => (await Promise.all([...connections.values()].map((c) => c.catch(() => undefined)))).filter((r): r is RemoteHost => r !== undefined);
  const remote: StepRemote = {
    exec: async (command, o) => (await own()).exec(command, o),
    fetchFile: async (remotePath, localPath, o) => (await own()).fetchFile(remotePath, localPath, o),
  };
  const firstMaster = hostsWithRole(inv, "master")[0]!;
  let sent = 0;
  let peerBytes = 0;
  let peerFallbacks = 0;
  let syncMs = 0;
  return {
    inv,
    host: inst.host,
    files: inst.files,
    firstBringUp: opts.firstBringUp === true,
    remote,
    log: opts.log,
    ...stepLines(opts.step, inst.host.name, opts.log),
    sh: (command, o) => remote.exec(command, o),
    sync: async () => {
      const t0 = Date.now();
      try {
        const r = await (await own()).sync(filesToShip(scope), opts.peers ? { peers: opts.peers } : {});
        sent += r.bytesSent;
        peerBytes += r.peerBytes;
        peerFallbacks += r.peerFallbacks;
        return r;
      } finally {
        syncMs += Date.now() - t0;
      }
    },
    controlPlane: () => connect(firstMaster),
    onHost: (host) => connect(host),
    operator: operatorSide(inv),
    bytesSent: () => sent,
    peerBytes: () => peerBytes,
    peerFallbacks: () => peerFallbacks,
    syncMs: () => syncMs,
    close: async () => {
      for (const c of await resolved()) await c.close();
    },
  };
}
