// Builds a step's RunContext (steps/types.ts) for one instance: a connection to its host, file
// sync, and a lazily opened connection to the first master for kubectl.
import type { StepScope } from "../cluster";
import { hostsWithRole } from "../inventory/types";
import { FileToShip, RemoteHost } from "../remote";
import type { RunContext } from "../steps/types";
import { sshTarget } from "./target";

/** The runner's side of a context: the full connection (bytes sent) and closing it. */
export interface OpenRunContext extends RunContext {
  remote: RemoteHost;
  close(): Promise<void>;
}

export function filesToShip(scope: StepScope): FileToShip[] {
  return scope.inst.files.map((f) => {
    if (f.binary === undefined) return { path: f.path, mode: f.mode, content: f.content ?? "" };
    const info = scope.binaries.get(f.binary);
    if (!info.present || !info.localPath) throw new Error(`binary ${f.binary} is not available`);
    return { path: f.path, mode: f.mode, sourcePath: info.localPath, sha256: info.url ? undefined : info.hash };
  });
}

export async function openRunContext(scope: StepScope, opts: { log: (line: string) => void; verbose: boolean }): Promise<OpenRunContext> {
  const { inv, inst } = scope;
  const connectOpts = { log: opts.log, verbose: opts.verbose };
  const remote = await RemoteHost.connect(sshTarget(inst.host), connectOpts);
  let control: Promise<RemoteHost> | undefined;
  const firstMaster = hostsWithRole(inv, "master")[0]!;
  const rc: OpenRunContext = {
    inv,
    host: inst.host,
    files: inst.files,
    remote,
    log: opts.log,
    sh: (command, o) => remote.exec(command, o),
    sync: () => remote.sync(filesToShip(scope)),
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
