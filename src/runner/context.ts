// What a step's run() gets: its instance, a connection to its host, file sync, and a lazily
// opened connection to the first master for kubectl.
import type { Cluster } from "../cluster";
import { hostsWithRole, Host } from "../inventory/types";
import { ExecOptions, ExecResult, FileToShip, RemoteHost, SyncResult } from "../remote";
import type { StepInstance } from "../render/plan";
import { sshTarget } from "./target";

export interface RunContext {
  cluster: Cluster;
  inst: StepInstance;
  host: Host;
  remote: RemoteHost;
  log: (line: string) => void;
  /** Runs a command on the step's host; throws on a non-zero exit unless allowFail. */
  sh(command: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Uploads the step's files (unchanged ones are skipped by sha256). */
  sync(): Promise<SyncResult>;
  /** Connection to the first master, where kubectl and admin.kubeconfig live. */
  controlPlane(): Promise<RemoteHost>;
  close(): Promise<void>;
}

export function filesToShip(cluster: Cluster, inst: StepInstance): FileToShip[] {
  return inst.files.map((f) => {
    if (f.binary === undefined) return { path: f.path, mode: f.mode, content: f.content ?? "" };
    const info = cluster.binaries.get(f.binary);
    if (!info.present || !info.localPath) throw new Error(`binary ${f.binary} is not available`);
    return { path: f.path, mode: f.mode, sourcePath: info.localPath, sha256: info.url ? undefined : info.hash };
  });
}

export async function openRunContext(cluster: Cluster, inst: StepInstance, opts: { log: (line: string) => void; verbose: boolean }): Promise<RunContext> {
  const connectOpts = { log: opts.log, verbose: opts.verbose };
  const remote = await RemoteHost.connect(sshTarget(inst.host), connectOpts);
  let control: Promise<RemoteHost> | undefined;
  const firstMaster = hostsWithRole(cluster.inv, "master")[0]!;
  const rc: RunContext = {
    cluster,
    inst,
    host: inst.host,
    remote,
    log: opts.log,
    sh: (command, o) => remote.exec(command, o),
    sync: () => remote.sync(filesToShip(cluster, inst)),
    controlPlane: () => {
      if (firstMaster.name === inst.host.name) return Promise.resolve(remote);
      control ??= RemoteHost.connect(sshTarget(firstMaster), connectOpts);
      return control;
    },
    close: async () => {
      await remote.close();
      if (control) await (await control.catch(() => undefined))?.close();
    },
  };
  return rc;
}
