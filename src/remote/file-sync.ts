/**
 * File sync over a connected host: the check round trip, parallel uploads (SFTP beside the
 * target, or via a staging dir with sudo) and the finalize step (SFTP, or a shell script).
 */
import { randomBytes } from "crypto";
import { limiter, within } from "./async";
import { RemoteError, errorMessage } from "./errors";
import { DEFAULT_EXEC_TIMEOUT_MS, connectionLost, runCommand, type Session } from "./exec";
import { octal, shq } from "./shell";
import { isNoSuchFile, isUnsupportedExtension, putFile, sftpChmod, sftpChown, sftpPosixRename, sftpStatSize, sftpUnlink } from "./sftp";
import type { SftpSession } from "./sftp-session";
import type { Ssh2Sftp } from "./ssh2-types";
import {
  buildCheckScript,
  buildFinalizeScript,
  buildStageScript,
  digestSource,
  ownerMatches,
  parseCheckOutput,
  prepareFiles,
  tempPathFor,
  type CheckOutput,
  type FinalizeItem,
  type OwnerIds,
  type PreparedFile,
} from "./sync";
import { PEER_MIN_BYTES, type PeerReceiver, type PeerSyncOptions } from "./peer-source";
import type { FileToShip, SyncOptions, SyncResult } from "./types";

/** files uploaded in parallel over the one SFTP session */
const PARALLEL_UPLOADS = 4;
/**
 * Copies from other hosts at once, each a command on this connection: with the SFTP session and a
 * step's own command well under sshd's 10 sessions per connection, which it frees a little after
 * a channel closes (9 at once, measured on a lab host, had 5 of 200 opens refused; 6, none).
 */
const PARALLEL_COPIES = 3;

/** `<ms since epoch>-<random>`: the time lets a sync's cleanup tell an older sync's leftovers from a later sync's upload. */
function tempSuffix(startedMs: number): string {
  return `${startedMs}-${randomBytes(6).toString("hex")}`;
}

/**
 * Make the host's files equal to `files`. One round trip (an exec) reads sha256, mode and
 * owner of every target, creates parent dirs and removes stale temp files; unchanged files
 * are skipped, mode/owner-only differences fixed in place, the rest written over SFTP to
 * `.NAME.binkube-tmp-RANDOM` beside the target (created 0600), fsync'ed, chown'ed, chmod'ed
 * and renamed over the target (rename(2): posix-rename@openssh.com, or `mv -fT`).
 * Targets that SFTP stat shows missing or of another size start uploading while the check
 * runs (they differ whatever their hash). With sudo, uploads go to a private staging dir
 * and a `sudo` script copies them beside the targets and renames them.
 */
export async function syncFiles(s: Session, sftpSession: SftpSession, files: FileToShip[], opts: SyncOptions & PeerSyncOptions = {}): Promise<SyncResult> {
  const host = s.target.host;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
  const fsync = opts.fsync !== false;
  const sudo = s.target.sudo === true;
  const prepared = prepareFiles(host, s.label, files);
  if (prepared.length === 0) return { changed: [], unchanged: [], bytesSent: 0, peerBytes: 0, peerFallbacks: 0 };
  if (opts.owner !== undefined && !/^[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?$/.test(opts.owner)) {
    throw new RemoteError(host, `${s.label}: sync: owner ${JSON.stringify(opts.owner)} is not user or user:group`, {
      kind: "config",
      fix: "Give the owner as user, user:group or uid:gid",
    });
  }
  await Promise.all(prepared.map((f) => digestSource(host, s.label, f)));

  const result: SyncResult = { changed: [], unchanged: [], bytesSent: 0, peerBytes: 0, peerFallbacks: 0 };
  const startedMs = Date.now();
  const temps = new Map<PreparedFile, string>(prepared.map((f) => [f, tempPathFor(f, tempSuffix(startedMs))]));
  const addBytes = (n: number): void => {
    s.stats.bytesSent += n;
    result.bytesSent += n;
  };

  // the SFTP session (cached per connection) opens while the check runs
  const sftpP = sftpSession.get();
  sftpP.catch(() => undefined);
  const checkP = runCommand(s, buildCheckScript(prepared, { owner: opts.owner, keep: [...temps.values()], startedMs }), { timeoutMs }).then((r) =>
    parseCheckOutput(r.stdout),
  );
  checkP.catch(() => undefined);

  // uploads beside the target (non-sudo), at most PARALLEL_UPLOADS at a time
  const limit = limiter(PARALLEL_UPLOADS);
  const started = new Map<PreparedFile, Promise<boolean>>();
  let current = "";

  // A release binary another host of the deploy already has comes from that host (the relay),
  // written to this file's temp like an upload; the first host to need it uploads it. Waiting for
  // another host's upload holds no upload slot: two syncs whose slots all waited on each other
  // would wait for ever.
  const peers = opts.peers;
  const viaPeers = (f: PreparedFile): boolean => peers !== undefined && f.public && f.size >= PEER_MIN_BYTES;
  const receiver: PeerReceiver = {
    target: s.target,
    run: (command, o) => runCommand(s, command, { stdin: o.stdin, timeoutMs: o.timeoutMs, allowFail: true }),
    channels: limiter(PARALLEL_COPIES),
    log: s.log,
  };
  /** true: the relay copied `f` into its temp (fsync'ed, sha256 checked); false: `upload()` sent it */
  const viaRelay = async (f: PreparedFile, upload: () => Promise<unknown>, servedFrom: string): Promise<boolean> => {
    await checkP; // the parent dir exists and stale temps are gone before anything is written there
    const out = await (peers as NonNullable<typeof peers>).obtain(receiver, { sha256: f.sha256, size: f.size, path: f.path, ...(f.usualPath ? { usualPath: f.usualPath } : {}) }, temps.get(f) as string, { background: opts.background === true });
    if (out.kind === "copied") {
      result.peerBytes += out.bytes;
      return true;
    }
    if (out.fallback) {
      result.peerFallbacks++;
      s.log(`${host}: ${f.path}: ${out.fallback}; sending it from the operator`);
    }
    try {
      await upload();
    } catch (err) {
      out.lease.failed();
      throw err;
    }
    out.lease.uploaded([servedFrom, f.path]);
    return false;
  };

  const startUpload = (sftp: Ssh2Sftp, f: PreparedFile): void => {
    if (started.has(f)) return;
    const temp = temps.get(f) as string;
    const attempt = (): Promise<boolean> =>
      limit(async () => {
        current = f.path;
        if (s.verbose) s.log(`${host}: upload ${f.path} (${f.size} bytes, mode ${octal(f.mode)}) via ${temp}`);
        const put = putFile(sftp, f.data ?? (f.sourcePath as string), f.size, temp, { onBytes: addBytes, fsync });
        return (await Promise.race([put, s.link.state.dead])).fsynced;
      });
    const retried = (): Promise<boolean> =>
      attempt().catch(async (err: unknown) => {
        // an early start can beat the check's mkdir -p of the parent dir: retry once after it
        if (!isNoSuchFile(err)) throw err;
        await checkP;
        return attempt();
      });
    let fsynced = false;
    const p = viaPeers(f)
      ? viaRelay(f, async () => (fsynced = await retried()), temp).then((copied) => copied || fsynced)
      : retried();
    p.catch(() => undefined);
    started.set(f, p);
  };
  const early = sudo
    ? Promise.resolve()
    : sftpP
        .then(async (sftp) => {
          const sizes = await Promise.all(prepared.map((f) => sftpStatSize(sftp, f.path)));
          prepared.forEach((f, i) => {
            if (sizes[i] !== f.size) startUpload(sftp, f);
          });
        })
        .catch(() => undefined);

  const failUploads = async (err: unknown): Promise<never> => {
    await Promise.allSettled(started.values());
    if (!s.link.state.closed) {
      const sftp = await sftpP.catch(() => undefined);
      if (sftp) await discard(s, sftp, [...started.keys()].map((f) => temps.get(f) as string));
    }
    if (err instanceof RemoteError) throw err;
    if (s.link.state.closed) {
      throw connectionLost(s, 
        `while uploading ${current} (${result.bytesSent} bytes of this sync sent; targets untouched, temp files are removed by the next sync)`,
        err,
      );
    }
    const msg = errorMessage(err);
    throw new RemoteError(host, `${s.label}: sync: uploading ${current} failed: ${msg} (target untouched)`, {
      kind: "upload",
      cause: err,
      fix: /permission denied/i.test(msg)
        ? `Connect as root or set sudo: true for ${host} so ${s.target.user} can write there`
        : /no space|quota|failure/i.test(msg)
          ? "Check free disk space on the host and re-run"
          : "Re-run; run with --verbose for details",
    });
  };

  let check: CheckOutput;
  try {
    check = await checkP;
    await early;
  } catch (err) {
    return failUploads(err);
  }
  let owner: OwnerIds | undefined;
  if (opts.owner !== undefined) {
    const o = check.owner;
    if (o?.uid === undefined || o.gid === undefined) {
      return failUploads(
        new RemoteError(host, `${s.label}: sync: owner ${opts.owner} does not exist on the host`, {
          kind: "config",
          fix: "Create the user/group first (the prepare step) or fix the owner",
        }),
      );
    }
    owner = { uid: o.uid, gid: o.gid };
  }
  const unchanged: PreparedFile[] = [];
  const metaOnly: PreparedFile[] = [];
  const upload: PreparedFile[] = [];
  for (const f of prepared) {
    const r = check.files.get(f.path);
    if (!r || r.sha256 !== f.sha256 || started.has(f)) upload.push(f);
    else if (r.mode !== f.mode || (owner && !ownerMatches(owner, r))) metaOnly.push(f);
    else unchanged.push(f);
  }
  result.changed = [...upload, ...metaOnly].sort((a, b) => a.index - b.index).map((f) => f.path);
  result.unchanged = unchanged.map((f) => f.path);
  if (upload.length === 0 && metaOnly.length === 0) {
    if (s.verbose) s.log(`${host}: sync: ${prepared.length} file(s) already up to date`);
    return result;
  }

  const sftp = await withSftp(s, "opening SFTP", () => sftpP);
  let stageDir: string | undefined;
  const items: FinalizeItem[] = [];
  let allFsynced = true;
  if (!sudo) {
    for (const f of upload) startUpload(sftp, f);
    try {
      for (const fsynced of await Promise.all(started.values())) if (!fsynced) allFsynced = false;
    } catch (err) {
      return failUploads(err);
    }
    for (const f of upload) items.push({ file: f, temp: temps.get(f) as string });
  } else if (upload.length > 0) {
    stageDir = (await runCommand(s, buildStageScript(), { asRoot: false, timeoutMs })).stdout.trim();
    if (!stageDir.startsWith("/")) {
      throw new RemoteError(host, `${s.label}: sync: could not create a staging dir (mktemp printed ${JSON.stringify(stageDir)})`, {
        kind: "upload",
        fix: `Make /var/tmp (or $TMPDIR) writable for ${s.target.user}`,
      });
    }
    const dir = stageDir;
    const copied = new Set<PreparedFile>();
    try {
      await Promise.all(
        upload.map(async (f) => {
          const staged = `${dir}/${f.index}`;
          const put = () =>
            limit(async () => {
              current = f.path;
              if (s.verbose) s.log(`${host}: upload ${f.path} (${f.size} bytes, mode ${octal(f.mode)}) via ${staged}`);
              // staged copies are fsync'ed after the root-side copy instead
              await Promise.race([putFile(sftp, f.data ?? (f.sourcePath as string), f.size, staged, { onBytes: addBytes, fsync: false }), s.link.state.dead]);
            });
          // a copy from another host lands (as root) in the temp beside the target, like the finalize's cp
          if (!viaPeers(f)) await put();
          else if (await viaRelay(f, put, staged)) copied.add(f);
        }),
      );
    } catch (err) {
      if (!s.link.state.closed) {
        await runCommand(s, `rm -rf -- ${shq(dir)}`, { asRoot: false, allowFail: true, timeoutMs: 30_000 }).catch(() => undefined);
      }
      return failUploads(err);
    }
    for (const f of upload) items.push(copied.has(f) ? { file: f, temp: temps.get(f) as string } : { file: f, temp: temps.get(f) as string, staged: `${dir}/${f.index}` });
  }
  for (const f of metaOnly) items.push({ file: f });

  const finalizeOpts: { owner?: OwnerIds; fsync: boolean; stageDir?: string } = { fsync: fsync && (sudo || !allFsynced) };
  if (owner) finalizeOpts.owner = owner;
  if (stageDir) finalizeOpts.stageDir = stageDir;
  let viaExec = sudo;
  if (!sudo) {
    try {
      await finalizeOverSftp(s, sftp, items, owner);
    } catch (err) {
      if (!isUnsupportedExtension(err)) {
        await discard(s, sftp, items.filter((i) => i.temp).map((i) => i.temp as string));
        if (s.link.state.closed) throw connectionLost(s, "while finalizing the upload (targets untouched or complete)", err);
        throw new RemoteError(host, `${s.label}: sync: applying mode/owner or renaming into place failed: ${errorMessage(err)}`, {
          kind: "upload",
          cause: err,
          fix: "Check that no target is a directory and re-run",
        });
      }
      viaExec = true; // server without posix-rename@openssh.com: rename with mv -fT
    }
  }
  if (viaExec) await runCommand(s, buildFinalizeScript(items, finalizeOpts), { timeoutMs });
  const fromPeers = result.peerBytes > 0 ? `, ${result.peerBytes} bytes of them copied from other hosts` : "";
  s.log(
    `${host}: sync: ${upload.length} uploaded (${result.bytesSent} bytes${fromPeers}), ${metaOnly.length} mode/owner fixed, ${unchanged.length} unchanged`,
  );
  return result;
}

/** chown, chmod, then rename every temp over its target (renames last, back to back). */
async function finalizeOverSftp(s: Session, sftp: Ssh2Sftp, items: FinalizeItem[], owner: OwnerIds | undefined): Promise<void> {
  const race = <T>(p: Promise<T>): Promise<T> => Promise.race([p, s.link.state.dead]);
  await race(
    Promise.all(
      items.map(async (it) => {
        const p = it.temp ?? it.file.path;
        // chown first: it clears setuid/setgid bits, which chmod then sets
        if (owner) await sftpChown(sftp, p, owner.uid, owner.gid);
        await sftpChmod(sftp, p, it.file.mode);
      }),
    ),
  );
  const renames = items.filter((it) => it.temp);
  if (renames.length === 0) return;
  if (s.verbose) for (const it of renames) s.log(`${s.target.host}: rename ${it.temp} -> ${it.file.path}`);
  await race(Promise.all(renames.map((it) => sftpPosixRename(sftp, it.temp as string, it.file.path))));
}

/** best effort removal of this sync's temp files (the next sync removes them anyway) */
async function discard(s: Session, sftp: Ssh2Sftp, paths: string[]): Promise<void> {
  if (s.link.state.closed || paths.length === 0) return;
  await within(Promise.all(paths.map((p) => sftpUnlink(sftp, p).catch(() => undefined))), 10_000, undefined);
}

async function withSftp(s: Session, doing: string, open: () => Promise<Ssh2Sftp>): Promise<Ssh2Sftp> {
  try {
    return await Promise.race([open(), s.link.state.dead]);
  } catch (err) {
    if (s.link.state.closed) throw connectionLost(s, doing, err);
    throw new RemoteError(s.target.host, `${s.label}: cannot open an SFTP session: ${errorMessage(err)}`, {
      kind: "connection",
      cause: err,
      fix: "Enable the sftp subsystem in the host's sshd_config (Subsystem sftp internal-sftp or /usr/lib/openssh/sftp-server)",
    });
  }
}
