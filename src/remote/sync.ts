/**
 * The pure parts of file sync (file-sync.ts runs them): input validation, local hashing, and the two shell
 * scripts (the one-round-trip check, and the finalize step that chmods/chowns/fsyncs the
 * uploaded temp files and renames them over the targets).
 */
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { RemoteError } from "./errors";
import { octal, shq } from "./shell";
import type { FileToShip } from "./types";

export const TEMP_MARKER = ".binkube-tmp-";
/** prefix of the per-sync staging dir used for sudo uploads */
export const STAGE_PREFIX = "binkube-stage.";

export interface PreparedFile {
  index: number;
  path: string;
  dir: string;
  /** basename, shortened for temp names so `.base.binkube-tmp-XXXXXXXXXXXX` fits NAME_MAX */
  tempBase: string;
  mode: number;
  data?: Buffer;
  sourcePath?: string;
  size: number;
  sha256: string;
  /** a release binary another host of the deploy may hand over (FileToShip.public; never inline content) */
  public: boolean;
  usualPath?: string;
}

const SHA256_RE = /^[0-9a-f]{64}$/;

/** Check the caller's list; throws RemoteError(kind "config") naming the file and the fix. */
export function prepareFiles(host: string, label: string, files: FileToShip[]): PreparedFile[] {
  const bad = (msg: string, fix: string): RemoteError => new RemoteError(host, `${label}: sync: ${msg}`, { kind: "config", fix });
  const seen = new Set<string>();
  return files.map((f, index) => {
    const p = f.path;
    if (typeof p !== "string" || !p.startsWith("/") || p.endsWith("/") || p.split("/").some((s) => s === "." || s === "..")) {
      throw bad(`file #${index} has path ${JSON.stringify(p)}`, "Give an absolute, normalized file path");
    }
    if (/[\0-\x1f\x7f\\]/.test(p)) {
      throw bad(`path ${JSON.stringify(p)} contains a control character or backslash`, "Use plain file names");
    }
    if (seen.has(p)) throw bad(`${p} is listed twice`, "Ship each path once per sync");
    seen.add(p);
    if (!Number.isInteger(f.mode) || f.mode < 0 || f.mode > 0o7777) {
      throw bad(`${p} has mode ${String(f.mode)}`, "Give the permission bits as a number such as 0o644");
    }
    const hasContent = f.content !== undefined;
    const hasSource = f.sourcePath !== undefined;
    if (hasContent === hasSource) {
      throw bad(`${p} must have exactly one of content and sourcePath`, "Fix the render plan entry");
    }
    if (f.sha256 !== undefined && !SHA256_RE.test(f.sha256)) {
      throw bad(`${p} has sha256 ${JSON.stringify(f.sha256)}`, "Give a lowercase hex sha256 or leave it out");
    }
    const dir = path.posix.dirname(p);
    const base = path.posix.basename(p);
    const prepared: PreparedFile = {
      index,
      path: p,
      dir,
      tempBase: base.length > 200 ? base.slice(0, 200) : base,
      mode: f.mode,
      size: 0,
      sha256: f.sha256 ?? "",
      public: f.public === true && hasSource,
      ...(f.usualPath !== undefined ? { usualPath: f.usualPath } : {}),
    };
    if (hasContent) {
      const data = Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content as string, "utf8");
      const sha = createHash("sha256").update(data).digest("hex");
      if (f.sha256 !== undefined && f.sha256 !== sha) {
        throw bad(`${p}: given sha256 ${f.sha256} does not match its content (${sha})`, "Recompute the plan");
      }
      prepared.data = data;
      prepared.size = data.length;
      prepared.sha256 = sha;
    } else {
      prepared.sourcePath = f.sourcePath as string;
    }
    return prepared;
  });
}

interface DigestCacheEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}
/** local file → sha256, keyed by path and invalidated by size / mtime / inode */
const digestCache = new Map<string, DigestCacheEntry>();

/** Fill size and sha256 of a sourcePath file (hashing it unless the caller gave the sha256). */
export async function digestSource(host: string, label: string, f: PreparedFile): Promise<void> {
  const src = f.sourcePath;
  if (src === undefined) return;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(src);
  } catch (err) {
    throw new RemoteError(host, `${label}: sync: cannot read local file ${src} for ${f.path}: ${(err as Error).message}`, {
      kind: "config",
      cause: err,
      fix: "Render or download the file first (binkube render / the release binaries)",
    });
  }
  if (!st.isFile()) {
    throw new RemoteError(host, `${label}: sync: local ${src} for ${f.path} is not a regular file`, {
      kind: "config",
      fix: "Point sourcePath at a file",
    });
  }
  f.size = st.size;
  if (f.sha256) return;
  const cached = digestCache.get(src);
  if (cached && cached.size === st.size && cached.mtimeMs === st.mtimeMs && cached.ino === st.ino) {
    f.sha256 = cached.sha256;
    return;
  }
  const hash = createHash("sha256");
  await new Promise<void>((resolve, reject) => {
    const rs = fs.createReadStream(src, { highWaterMark: 1 << 20 });
    rs.on("data", (chunk) => hash.update(chunk));
    rs.on("error", reject);
    rs.on("end", () => resolve());
  });
  f.sha256 = hash.digest("hex");
  digestCache.set(src, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: f.sha256 });
}

/** `dir/.base.binkube-tmp-` quoted, ready for a trailing `*` glob or a random suffix. */
function tempPrefixWord(f: PreparedFile): string {
  return `${shq(f.dir)}/${shq(`.${f.tempBase}${TEMP_MARKER}`)}`;
}

export function tempPathFor(f: PreparedFile, rand: string): string {
  return `${f.dir}/.${f.tempBase}${TEMP_MARKER}${rand}`;
}

/**
 * The single check round trip: create parent dirs, delete stale temp files of these targets
 * (left by an interrupted sync; `keep` = this sync's own temp names, which an early upload may
 * already be writing), print mode/owner and sha256 of every existing target, and resolve the
 * owner spec to ids.
 * `startedMs`: when this sync started (its temp names carry it). Only temps of syncs that started
 * earlier (or of an older binkube, with no time in the name) are stale: the check script of a sync
 * whose connection was killed can still run on the host, and must not delete the upload of the
 * sync that retries it.
 * Output lines: `M <octal mode> <user>:<group> <uid>:<gid> <path>` and `<sha256>  <path>`.
 */
export function buildCheckScript(files: PreparedFile[], opts: { owner?: string | undefined; keep?: string[]; startedMs?: number } = {}): string {
  const dirs = [...new Set(files.map((f) => f.dir))];
  const keep = opts.keep ?? [];
  const lines = [
    `mkdir -p -- ${dirs.map(shq).join(" ")} || exit 3`,
    // unquoted * : glob over this target's temp names only, sparing this sync's own
    ...files.map((f) => {
      const mine = keep.filter((k) => k.startsWith(`${f.dir}/.${f.tempBase}${TEMP_MARKER}`));
      if (mine.length === 0 && opts.startedMs === undefined) return `rm -f -- ${tempPrefixWord(f)}*`;
      const spare = mine.map((k) => `[ "$t" = ${shq(k)} ] || `).join("");
      if (opts.startedMs === undefined) return `for t in ${tempPrefixWord(f)}*; do ${spare}rm -f -- "$t"; done`;
      // the start time in the name (digits before the first '-'); none: an older binkube's, stale
      const older = `{ e=\${t#${tempPrefixWord(f)}}; e=\${e%%-*}; case $e in ''|*[!0-9]*) true ;; *) [ "$e" -lt ${opts.startedMs} ] ;; esac; }`;
      return `for t in ${tempPrefixWord(f)}*; do ${spare}{ ${older} && rm -f -- "$t"; }; done`;
    }),
    "set --",
    `for f in ${files.map((f) => shq(f.path)).join(" ")}; do if [ -f "$f" ]; then set -- "$@" "$f"; fi; done`,
    `if [ $# -gt 0 ]; then stat -L -c 'M %a %U:%G %u:%g %n' -- "$@"; sha256sum -- "$@"; fi`,
    ...(opts.owner !== undefined ? [ownerResolveLine(opts.owner)] : []),
    "exit 0",
  ];
  return lines.join("\n");
}

/** `O <uid> <gid>` for the owner spec: "user" means the user and its primary group (`chown user:`). */
function ownerResolveLine(spec: string): string {
  const [u = "", g] = spec.split(":");
  const num = (x: string): boolean => /^\d+$/.test(x);
  const uid = num(u) ? u : `$(id -u -- ${shq(u)} 2>/dev/null)`;
  const gid =
    g === undefined || g === ""
      ? `$(id -g -- ${shq(u)} 2>/dev/null)`
      : num(g)
        ? g
        : `$(getent group ${shq(g)} | cut -d: -f3)`;
  return `printf 'O %s %s\\n' "${uid}" "${gid}"`;
}

export interface RemoteState {
  mode?: number;
  ownerNames?: string;
  /** "uid:gid" */
  ownerIds?: string;
  sha256?: string;
}

export interface CheckOutput {
  files: Map<string, RemoteState>;
  /** the owner spec resolved on the host; undefined fields = no such user/group there */
  owner?: { uid?: number; gid?: number };
}

export function parseCheckOutput(stdout: string): CheckOutput {
  const files = new Map<string, RemoteState>();
  const result: CheckOutput = { files };
  const get = (p: string): RemoteState => {
    let s = files.get(p);
    if (!s) {
      s = {};
      files.set(p, s);
    }
    return s;
  };
  for (const line of stdout.split("\n")) {
    if (line.startsWith("M ")) {
      const m = /^M ([0-7]+) (\S+) (\S+) (.*)$/.exec(line);
      if (!m) continue;
      const s = get(m[4] as string);
      s.mode = parseInt(m[1] as string, 8);
      s.ownerNames = m[2] as string;
      s.ownerIds = m[3] as string;
    } else if (line.startsWith("O ")) {
      const [, u, g] = line.split(" ");
      const owner: { uid?: number; gid?: number } = {};
      if (u && /^\d+$/.test(u)) owner.uid = Number(u);
      if (g && /^\d+$/.test(g)) owner.gid = Number(g);
      result.owner = owner;
    } else {
      const m = /^([0-9a-f]{64}) [ *](.*)$/.exec(line);
      if (!m) continue;
      get(m[2] as string).sha256 = m[1] as string;
    }
  }
  return result;
}

export interface OwnerIds {
  uid: number;
  gid: number;
}

export function ownerMatches(owner: OwnerIds, s: RemoteState): boolean {
  return s.ownerIds === `${owner.uid}:${owner.gid}`;
}

export interface FinalizeItem {
  file: PreparedFile;
  /** temp path next to the target; undefined for a mode/owner-only fix */
  temp?: string;
  /** sudo uploads: the staged copy to cp into `temp` first */
  staged?: string;
}

/**
 * Turn uploaded temp files into targets: (cp from stage), size check, chown, chmod, fsync,
 * `mv -fT` (atomic rename). On any failure the trap removes the temp files; targets already
 * renamed are complete, the others untouched.
 */
export function buildFinalizeScript(
  items: FinalizeItem[],
  opts: { owner?: OwnerIds; fsync: boolean; stageDir?: string },
): string {
  const temps = items.filter((i) => i.temp).map((i) => shq(i.temp as string));
  const cleanup = [temps.length > 0 ? `rm -f -- ${temps.join(" ")}` : "", opts.stageDir ? `rm -rf -- ${shq(opts.stageDir)}` : ""]
    .filter(Boolean)
    .join("; ");
  const lines = ["set -e"];
  if (cleanup) lines.push(`trap ${shq(cleanup)} EXIT`);
  for (const it of items) {
    const target = it.temp ?? it.file.path;
    const t = shq(target);
    if (it.temp && it.staged) lines.push(`cp -- ${shq(it.staged)} ${t}`);
    if (it.temp) {
      const size = it.file.size;
      lines.push(
        `[ "$(stat -c %s -- ${t})" = ${size} ] || { echo ${shq(`binkube: ${target} is not ${size} bytes after upload`)} >&2; exit 1; }`,
      );
    }
    // chown first: it clears setuid/setgid bits, which chmod then sets
    if (opts.owner) lines.push(`chown ${opts.owner.uid}:${opts.owner.gid} -- ${t}`);
    lines.push(`chmod ${octal(it.file.mode)} -- ${t}`);
  }
  if (opts.fsync && temps.length > 0) lines.push(`sync -- ${temps.join(" ")} 2>/dev/null || true`);
  for (const it of items) {
    if (it.temp) lines.push(`mv -fT -- ${shq(it.temp)} ${shq(it.file.path)}`);
  }
  return lines.join("\n");
}

/** User-side (no sudo) command creating the per-sync staging dir; prints its path. */
export function buildStageScript(): string {
  const base = '"${TMPDIR:-/var/tmp}"';
  return [
    "umask 077",
    // staging dirs of syncs that died more than an hour ago
    `find ${base} -maxdepth 1 -name '${STAGE_PREFIX}*' -user "$(id -u)" -mmin +60 -exec rm -rf -- {} + 2>/dev/null || true`,
    `mktemp -d ${base}/${STAGE_PREFIX}XXXXXXXXXX`,
  ].join("\n");
}
