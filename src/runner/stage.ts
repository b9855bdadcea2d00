// Stage early, activate in order (issue 26; BINKUBE_STAGE=1). Once a host's first step (the host-setup group) has
// run, the step server sends the release binaries of all the host's steps ahead, in bring-up order,
// into a content-addressed store on the host (STAGE_DIR/<sha256>), through the deploy's relay: each
// content crosses the operator's link once, one background upload at a time, while the chain brings
// up etcd and the control plane. When a step's turn comes, its sync finds its binaries on a host
// that has them (its own store first: no network) and copies instead of uploading. Nothing about a
// step changes: its triggers, its check, its atomic rename, its rolling order. The store goes when
// the step server ends, and with /var/lib/binkube on teardown.
import * as fs from "node:fs";
import { hostBinaries } from "../cluster";
import { PEER_MIN_BYTES, PeerRelay, RemoteHost, shq, type SshTarget } from "../remote";
import { sha256File } from "../util/hash";
import { record } from "./steps-log";
import { sshTarget } from "./target";

export const STAGE_DIR = "/var/lib/binkube/stage";

interface Content {
  sha256: string;
  localPath: string;
  /** where the host's steps put it (a host prepared again may have it there already) */
  paths: string[];
}

/** The contents to stage: each once, in bring-up order, PEER_MIN_BYTES or more (smaller ones are not worth a copy). */
function contentsOf(files: ReturnType<typeof hostBinaries>["files"]): Content[] {
  const bySha = new Map<string, Content>();
  for (const f of files) {
    if (fs.statSync(f.localPath).size < PEER_MIN_BYTES) continue;
    const sha = f.sha256 ?? sha256File(f.localPath);
    const c = bySha.get(sha);
    if (c) c.paths.push(f.path);
    else bySha.set(sha, { sha256: sha, localPath: f.localPath, paths: [f.path] });
  }
  return [...bySha.values()];
}

export class Stager {
  /** by inventory and host: each host is staged once per step server */
  private readonly jobs = new Map<string, { target?: SshTarget; job: Promise<void> }>();

  constructor(
    private readonly relay: PeerRelay,
    private readonly log: (line: string) => void,
  ) {}

  /** Starts staging the host unless it was (the job never rejects: a step uploads what was not staged). */
  start(configFile: string, hostName: string): Promise<void> | undefined {
    const key = `${configFile}\0${hostName}`;
    if (this.jobs.has(key)) return undefined;
    const entry: { target?: SshTarget; job: Promise<void> } = { job: Promise.resolve() };
    this.jobs.set(key, entry);
    entry.job = this.stage(configFile, hostName, entry).catch((e: Error) => this.log(`stage ${hostName}: ${e.message.split("\n")[0]}; its steps upload what was not staged`));
    return entry.job;
  }

  private async stage(configFile: string, hostName: string, entry: { target?: SshTarget }): Promise<void> {
    const t0 = Date.now();
    const { inv, host, files } = hostBinaries(configFile, hostName);
    if (!host) return;
    const contents = contentsOf(files);
    if (contents.length === 0) return;
    const target = sshTarget(host);
    entry.target = target;
    const conn = await RemoteHost.connect(target, { retries: 1 });
    try {
      // contents already where a step puts them (a host prepared again) are not staged
      const paths = contents.flatMap((c) => c.paths);
      const have = await conn.exec(`for f in ${paths.map(shq).join(" ")}; do [ -f "$f" ] && sha256sum -- "$f"; done; true`, { timeoutMs: 300_000 });
      const present = new Set(have.stdout.split("\n").map((l) => l.slice(0, 64)));
      let sent = 0;
      let copied = 0;
      let staged = 0;
      for (const c of contents) {
        if (present.has(c.sha256) || this.relay.holds(hostName, c.sha256)) continue;
        // other hosts keep it where the steps put it (a node added to a running cluster finds it there)
        const file = { path: `${STAGE_DIR}/${c.sha256}`, mode: 0o644, sourcePath: c.localPath, sha256: c.sha256, public: true, usualPath: c.paths[0]! };
        const r = await conn.sync([file], { peers: this.relay, background: true });
        sent += r.bytesSent;
        copied += r.peerBytes;
        staged++;
      }
      const secs = ((Date.now() - t0) / 1000).toFixed(1);
      this.log(`stage ${hostName}: ${staged} release binaries in ${secs} s (${sent} bytes from the operator, ${copied} from hosts)`);
      // not " ok ": a staging line is not a step run
      record(inv.baseDir, `stage ${hostName} staged ${secs}s ${sent}B peer=${copied} files=${staged}`);
    } finally {
      await conn.close();
    }
  }

  /** Waits for the jobs, then removes the store from every host staged (the step server's last act). */
  async finish(): Promise<void> {
    const entries = [...this.jobs.values()];
    this.jobs.clear();
    await Promise.all(entries.map((e) => e.job));
    await Promise.all(
      entries
        .filter((e) => e.target)
        .map(async (e) => {
          const conn = await RemoteHost.connect(e.target!, { retries: 1 }).catch(() => undefined);
          await conn?.exec(`rm -rf -- ${STAGE_DIR}`, { allowFail: true, timeoutMs: 60_000 }).catch(() => undefined);
          await conn?.close();
        }),
    );
  }
}
