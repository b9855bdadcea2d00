// `binkube check`: what the hosts really have and run, against what binkube would ship. Read-only;
// one SSH connection and one command per host, every host at once, so it takes as long as the
// slowest host. For every (step, host): each file's sha256, mode and owner; each unit enabled,
// active, and started after the files it reads. Secrets are compared by hash and never printed.
import * as fs from "node:fs";
import { Cluster } from "./cluster";
import { Host } from "./inventory/types";
import { StepInstance } from "./plan";
import { RemoteHost } from "./remote";
import { shq } from "./remote/shell";
import { stepByName } from "./steps";
import { describeStale, parseUnitProbe, readAtStart, unitProbeScript } from "./steps/unit-probe";
import { sshTarget } from "./runner/target";
import { sha256, sha256File } from "./util/hash";

export interface Drift {
  host: string;
  step: string;
  /** Terraform resource id of the instance ("kubelet_lab2"): what `binkube repair` replaces. */
  id: string;
  /** The file path or "unit NAME". */
  what: string;
  detail: string;
}

export interface HostReport {
  host: string;
  /** Set when the host could not be checked (unreachable…): every instance on it is unknown. */
  error?: string;
  drifts: Drift[];
  files: number;
  units: number;
}

interface Expected {
  inst: StepInstance;
  path: string;
  sha256: string;
  mode: number;
  owner: string;
  secret: boolean;
}

/** The sha256 a binary has on disk here (a URL source's download, or the directory's file). */
function binarySha(cluster: Cluster, name: string): string {
  const info = cluster.binaries.get(name);
  if (info.url === undefined) return info.hash;
  if (info.localPath && fs.existsSync(info.localPath)) return sha256File(info.localPath);
  return "";
}

function expectedFiles(cluster: Cluster, insts: StepInstance[], host: Host): Expected[] {
  const owner = host.ssh.user === "root" || host.ssh.sudo ? "root" : host.ssh.user;
  const out = new Map<string, Expected>();
  for (const inst of insts) {
    for (const f of inst.files) {
      if (out.has(f.path)) continue; // shared (ca.pem): the plan already refuses different contents
      const sha = f.binary !== undefined ? binarySha(cluster, f.binary) : sha256(f.content ?? "");
      out.set(f.path, { inst, path: f.path, sha256: sha, mode: f.mode, owner: f.owner ?? owner, secret: f.secret === true });
    }
  }
  return [...out.values()];
}

/** Where a host keeps the sha256 of files check already read (root only; a cache, never trusted alone). */
export const HASH_CACHE = "/var/lib/binkube/sha256-cache";

/**
 * `S <sha256> <path>` and `M <mode> <user>:<group> <path>` for each existing file; the unit probe.
 * Hashing ~1 GB of binaries and images per host took seconds, so a host keeps the sha256 of each
 * file keyed by inode, size, ctime and mtime: any write, rename or chmod changes the ctime, which
 * no program can set back. A file whose ctime is under 2 s old is never cached (a second write in
 * the same second would keep its key). Misses are hashed 2 at a time.
 */
export function checkScript(paths: string[], units: { unit: string; paths: string[] }[], cache = HASH_CACHE): string {
  const lines = [
    "set --",
    `for f in ${paths.map(shq).join(" ")}; do [ -f "$f" ] && set -- "$@" "$f"; done`,
    `C=${shq(cache)}`,
    'if [ $# -gt 0 ]; then',
    '  T=$(mktemp -d) || exit 3',
    `  trap 'rm -rf "$T"' EXIT`,
    '  stat -L -c \'M %a %U:%G %n\' -- "$@"',
    '  stat -L -c \'%i:%s:%Z:%Y %n\' -- "$@" > "$T/keys"',
    '  : > "$T/miss"',
    // cache lines: KEY SHA PATH
    '  { cat "$C" 2>/dev/null; echo "--"; cat "$T/keys"; } | awk -v miss="$T/miss" \'$0 == "--" { k = 1; next } !k { sha[$1 " " substr($0, length($1) + length($2) + 3)] = $2; next } { p = substr($0, length($1) + 2); if (($1 " " p) in sha) print "S " sha[$1 " " p] " " p; else print p > miss }\' > "$T/hits"',
    '  if [ -s "$T/miss" ]; then tr \'\\n\' \'\\0\' < "$T/miss" | xargs -0 -n 4 -P 2 sha256sum -- | sed \'s/^/S /\' >> "$T/hits"; fi',
    '  cat "$T/hits"',
    // the new cache: every file with its key, but those changed in the last 2 s
    '  if mkdir -p -m 0700 "$(dirname "$C")" 2>/dev/null; then',
    '    now=$(date +%s)',
    '    { cat "$T/hits"; echo "--"; cat "$T/keys"; } | awk -v now="$now" \'$0 == "--" { k = 1; next } !k { p = substr($0, 68); sub(/^[ *]/, "", p); sha[p] = $2; next } { p = substr($0, length($1) + 2); split($1, f, ":"); if ((p in sha) && f[3] < now - 2) print $1 " " sha[p] " " p }\' > "$C.tmp" && mv -f "$C.tmp" "$C" || rm -f "$C.tmp"',
    '  fi',
    'fi',
    unitProbeScript(units),
  ];
  return lines.join("\n");
}

export function parseCheck(stdout: string): Map<string, { sha256?: string; mode?: number; owner?: string }> {
  const files = new Map<string, { sha256?: string; mode?: number; owner?: string }>();
  const get = (p: string) => files.get(p) ?? (files.set(p, {}), files.get(p)!);
  for (const line of stdout.split("\n")) {
    let m = /^M ([0-7]+) (\S+) (.+)$/.exec(line);
    if (m) {
      const f = get(m[3]!);
      f.mode = parseInt(m[1]!, 8);
      f.owner = m[2]!;
      continue;
    }
    // "S SHA PATH" from the cache, "S SHA  PATH" (or " *PATH") from sha256sum
    m = /^S ([0-9a-f]{64}) [ *]?(.+)$/.exec(line);
    if (m) get(m[2]!).sha256 = m[1]!;
  }
  return files;
}

const short = (h: string) => h.slice(0, 12);

/** The drifts of one host from its check output. */
export function hostDrifts(host: string, expected: Expected[], units: { inst: StepInstance; unit: string; paths: string[]; job?: boolean }[], stdout: string): Drift[] {
  const seen = parseCheck(stdout);
  const probes = parseUnitProbe(stdout, units);
  const drifts: Drift[] = [];
  const add = (inst: StepInstance, what: string, detail: string) => drifts.push({ host, step: inst.step, id: inst.id, what, detail });
  for (const e of expected) {
    const got = seen.get(e.path);
    if (!got || got.sha256 === undefined) {
      add(e.inst, e.path, "missing");
      continue;
    }
    if (e.sha256 && got.sha256 !== e.sha256) add(e.inst, e.path, e.secret ? "content differs (a secret: hashes not shown)" : `content differs (sha256 ${short(got.sha256)} on the host, ${short(e.sha256)} planned)`);
    if (got.mode !== e.mode) add(e.inst, e.path, `mode ${got.mode?.toString(8).padStart(4, "0")}, planned ${e.mode.toString(8).padStart(4, "0")}`);
    const [user, group] = (got.owner ?? "").split(":");
    if (user !== e.owner || group !== e.owner) add(e.inst, e.path, `owner ${got.owner}, planned ${e.owner}:${e.owner}`);
  }
  for (const u of units) {
    const p = probes.get(u.unit)!;
    if (u.job) {
      // a oneshot its timer starts: inactive between runs; "failed" is what its last run left
      if (p.active === "failed") add(u.inst, `unit ${u.unit}`, `its last run failed (journalctl -u ${u.unit} on ${host} says why)`);
      continue;
    }
    if (p.enabled !== "enabled") add(u.inst, `unit ${u.unit}`, `not enabled (${p.enabled})`);
    if (p.active !== "active") add(u.inst, `unit ${u.unit}`, `not active (${p.active})`);
    else if (p.stale.length > 0) add(u.inst, `unit ${u.unit}`, `running process is older than its files: ${describeStale(p)}`);
  }
  return drifts;
}

async function checkHost(cluster: Cluster, host: Host): Promise<HostReport> {
  const insts = cluster.plan.instances.filter((i) => i.host.name === host.name && i.step !== "remove");
  const expected = expectedFiles(cluster, insts, host);
  const units = insts.flatMap((inst) => [
    ...(stepByName(inst.step)?.units ?? []).map((unit) => ({ inst, unit, paths: readAtStart(inst.files) })),
    ...(stepByName(inst.step)?.jobs ?? []).map((unit) => ({ inst, unit, paths: [], job: true })),
  ]);
  const report: HostReport = { host: host.name, drifts: [], files: expected.length, units: units.length };
  let remote: RemoteHost | undefined;
  try {
    remote = await RemoteHost.connect(sshTarget(host), { retries: 1 });
    const r = await remote.exec(checkScript(expected.map((e) => e.path), units), { timeoutMs: 120_000 });
    report.drifts = hostDrifts(host.name, expected, units, r.stdout);
  } catch (e) {
    report.error = (e as Error).message.split("\n")[0]!;
  } finally {
    await remote?.close();
  }
  return report;
}

/** Every host of the inventory, checked at once. */
export function checkCluster(cluster: Cluster): Promise<HostReport[]> {
  return Promise.all(cluster.inv.hosts.map((h) => checkHost(cluster, h)));
}

/** The table `binkube check` prints: one line per drift, grouped by host and step. */
export function formatReport(reports: HostReport[]): string {
  const lines: string[] = [];
  for (const r of reports) {
    if (r.error) {
      lines.push(`${r.host}: NOT CHECKED: ${r.error}`);
      continue;
    }
    if (r.drifts.length === 0) {
      lines.push(`${r.host}: ok (${r.files} files, ${r.units} units)`);
      continue;
    }
    lines.push(`${r.host}: ${r.drifts.length} drifted (${r.files} files, ${r.units} units checked)`);
    const width = Math.max(...r.drifts.map((d) => d.step.length));
    for (const d of r.drifts) lines.push(`  ${d.step.padEnd(width)}  ${d.what}: ${d.detail}`);
  }
  return lines.join("\n");
}

/** Terraform resource ids of the drifted instances, in plan (bring-up) order. */
export function driftedIds(cluster: Cluster, reports: HostReport[]): string[] {
  const ids = new Set(reports.flatMap((r) => r.drifts.map((d) => d.id)));
  return cluster.plan.instances.filter((i) => ids.has(i.id)).map((i) => i.id);
}
