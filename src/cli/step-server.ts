// The step server: one long-lived process that runs the `binkube step` requests of a deploy,
// sent by bin/step-client.cjs over a unix socket. Terraform starts one process per (step, host);
// each paid ~0.3 s of CPU (node, ~260 modules, a cold plan load) before its first SSH byte, and
// at 12 hosts 25 of them competed for 2 cores. Here the modules load once and stay warm; each
// request still loads its own instance from the inventory, pki/ and binaries as they are now.
//
// Protocol, one connection per request: the client sends one JSON line {argv, bootMs}; the server
// answers JSON lines {err: text} (what the step prints on stderr) and a last {exit: code}.
// The socket's name is a hash of the client's environment, working directory and build
// (step-client.cjs), so every request here sees the process.env and cwd its client had.
import * as fs from "node:fs";
import * as net from "node:net";
import { Writable } from "node:stream";
import { parseArgs } from "./args";
import { configFrom, stepMain } from "./step";
import { stepByName } from "../steps";
import { Stager } from "../runner/stage";
import { inventoryTargets } from "../runner/target";
import { LeafIssuer } from "../pki/issue";
import { PeerRelay } from "../remote";

/** A server with no request for this long exits (a deploy's requests come back to back). */
const IDLE_MS = 15_000;

interface Request {
  argv: string[];
  bootMs?: number;
}

function parseRequest(line: string): Request {
  const r = JSON.parse(line) as Partial<Request>;
  if (!Array.isArray(r.argv) || !r.argv.every((a) => typeof a === "string")) throw new Error("argv must be a list of strings");
  return { argv: r.argv, ...(typeof r.bootMs === "number" ? { bootMs: r.bootMs } : {}) };
}

/** Which instance a request runs: the step, --host and --config (the rest are options). */
function instanceKey(argv: string[]): string {
  const args = parseArgs(argv);
  return JSON.stringify([args.positional[0] ?? "", args.flags.get("host") ?? "", args.flags.get("config") ?? ""]);
}

export interface ServeOptions {
  /** Removed once listening: the client that started this server holds it meanwhile. */
  spawnLock?: string;
  idleMs?: number;
  /** What answers a request (tests give a stand-in); default stepMain. */
  runStep?: typeof stepMain;
}

export async function serveSteps(socketPath: string, opts: ServeOptions = {}): Promise<void> {
  const idleMs = opts.idleMs ?? IDLE_MS;
  const runStep = opts.runStep ?? stepMain;
  // One for the server's life: runs that ship the same pending leaf share the key being generated.
  const issuer = new LeafIssuer();
  // One relay per inventory: a deploy's hosts hand release binaries to each other (peer-relay.ts);
  // two clusters deployed from one checkout never serve each other.
  const relays = new Map<string, PeerRelay>();
  // BINKUBE_PEER_COPY=0: every byte from the operator (bench:deploy's side-by-side baseline).
  const relayFor = process.env.BINKUBE_PEER_COPY === "0" ? undefined : (configFile: string): PeerRelay => {
    let r = relays.get(configFile);
    if (!r) {
      let targets: ReturnType<typeof inventoryTargets> | undefined;
      // the inventory's hosts, read once: where a content no host of this deploy has yet may already sit
      r = new PeerRelay(() => (targets ??= inventoryTargets(configFile)));
      relays.set(configFile, r);
    }
    return r;
  };
  const log = (line: string) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  let active = 0;
  let idle: NodeJS.Timeout | undefined;
  let ownIno = -1;
  // One run per instance at a time: a client that was interrupted leaves its run going here, and
  // a re-run deploy must not start the same step on the same host beside it.
  const running = new Map<string, Promise<unknown>>();
  // Staging ahead (runner/stage.ts) rides on the relay, and only with BINKUBE_STAGE=1: on the lab's
  // 2 shared cores it did not pay (3 hosts 88.2 s against 90.1 s without; 6 hosts 119.4 s against
  // 98.5 s: a staged binary is copied twice on the host, and the hosts' CPU is what binds there).
  const stagers = new Map<string, Stager>();
  const stageAfter = (argv: string[]): void => {
    if (!relayFor || process.env.BINKUBE_STAGE !== "1") return;
    const args = parseArgs(argv);
    const step = stepByName(args.positional[0] ?? "");
    const host = args.flags.get("host");
    if (step?.group !== "host-setup" || typeof host !== "string") return;
    const config = configFrom(args);
    let stager = stagers.get(config);
    if (!stager) {
      stager = new Stager(relayFor(config), log);
      stagers.set(config, stager);
    }
    const job = stager.start(config, host);
    if (!job) return;
    // the server stays up while it stages (it counts as a request)
    active++;
    void job.finally(() => {
      active--;
      armIdle();
    });
  };

  const server = net.createServer((sock) => {
    sock.on("error", () => undefined); // a client that went away: its step still runs to the end
    let buf = "";
    const onData = (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      sock.off("data", onData);
      void answer(sock, buf.slice(0, nl));
    };
    sock.on("data", onData);
  });

  const send = (sock: net.Socket, frame: object) => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(frame)}\n`);
  };

  async function answer(sock: net.Socket, line: string): Promise<void> {
    active++;
    if (idle) clearTimeout(idle);
    const t0 = Date.now();
    let code = 1;
    let what = "a request";
    try {
      const req = parseRequest(line);
      what = `step ${req.argv.slice(0, 3).join(" ")}`;
      const err = new Writable({
        write(chunk: Buffer, _enc, cb) {
          send(sock, { err: chunk.toString("utf8") });
          cb();
        },
      });
      const key = instanceKey(req.argv);
      const before = running.get(key);
      // chained before awaiting, so a third request waits for the second, not beside it
      const run = (async () => {
        if (before) {
          send(sock, { err: `binkube: ${what}: waiting for the same step, still running from an earlier request, to end\n` });
          await before.catch(() => undefined);
        }
        return runStep(req.argv, err, req.bootMs, { issuer, ...(relayFor ? { relayFor } : {}) });
      })();
      running.set(key, run);
      try {
        code = await run;
      } finally {
        if (running.get(key) === run) running.delete(key);
      }
      // the host is prepared: its binaries start crossing the operator's link now, ahead of their steps
      if (code === 0) stageAfter(req.argv);
    } catch (e) {
      send(sock, { err: `binkube: step server: bad request: ${(e as Error).message}\n` });
      code = 2;
    } finally {
      send(sock, { exit: code });
      sock.end();
      log(`${what}: exit ${code} after ${((Date.now() - t0) / 1000).toFixed(1)} s${sock.destroyed ? " (client gone)" : ""}`);
      active--;
      armIdle();
    }
  }

  function armIdle(): void {
    if (active > 0) return;
    if (idle) clearTimeout(idle);
    idle = setTimeout(stop, idleMs);
  }

  let stopped = false;
  function stop(): void {
    if (stopped) return;
    stopped = true;
    // Unlink the name only while it is still ours: a newer server may have taken it over. With
    // it goes the log its client opened beside it (step-client.cjs): a clean exit leaves nothing
    // to read; a server that dies keeps its log for the client's error message to point at.
    try {
      if (fs.statSync(socketPath).ino === ownIno) {
        fs.rmSync(socketPath);
        if (socketPath.endsWith(".sock")) fs.rmSync(socketPath.replace(/\.sock$/, ".log"), { force: true });
      }
    } catch {
      /* already gone */
    }
    server.close();
  }

  // Bind under a name of our own, then rename into place: a rename is atomic, so a client sees
  // either no server or a listening one, and two servers racing for one name never both fail.
  const tmp = `${socketPath}.${process.pid}`;
  fs.rmSync(tmp, { force: true });
  await new Promise<void>((res, rej) => {
    server.once("error", rej);
    server.listen(tmp, () => res());
  });
  fs.renameSync(tmp, socketPath);
  ownIno = fs.statSync(socketPath).ino;
  if (opts.spawnLock) fs.rmSync(opts.spawnLock, { force: true });
  log(`listening on ${socketPath} (pid ${process.pid})`);
  process.on("SIGTERM", stop);
  armIdle();
  await new Promise<void>((res) => server.on("close", () => res()));
  for (const s of stagers.values()) await s.finish();
  for (const [config, r] of relays) {
    if (r.stats.copies + r.stats.fallbacks > 0) log(`relay for ${config}: ${r.stats.copies} copies between hosts (${r.stats.copiedBytes} bytes), ${r.stats.fallbacks} sent from the operator after a failed copy`);
    await r.close();
  }
  log("idle: exiting");
}
