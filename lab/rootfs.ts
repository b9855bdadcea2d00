// The cached base rootfs: debootstrap once, customize, rename into place when complete.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { BASE_PACKAGES, BASE_REVISION, RUNC_WRAPPER_PATH, RUNC_WRAPPER_SOURCE, SUITE, baseRootfsDir, cacheDir } from "./config";
import { Logger, elapsed, now, processAlive, readFileOr, run, runOk, unescapeMountPath } from "./util";

/** The stamp inside the base rootfs: tells which package set / customization built it. */
const STAMP = "etc/binkube-lab-base.json";

interface BaseStamp {
  suite: string;
  revision: number;
  packages: string[];
  /** sha256 of the files the customization writes (prepare script + unit, runc wrapper). */
  inputs?: string;
  builtAt: string;
  buildSeconds: number;
}

function wantedStamp(): Omit<BaseStamp, "builtAt" | "buildSeconds"> {
  return { suite: SUITE, revision: BASE_REVISION, packages: [...BASE_PACKAGES], inputs: inputsHash() };
}

function runcWrapper(): string {
  return fs.readFileSync(RUNC_WRAPPER_SOURCE, "utf8");
}

/** Hash of what customizeBase writes besides packages: a change to any of them rebuilds the base. */
function inputsHash(): string {
  const h = crypto.createHash("sha256");
  for (const part of [PREPARE_SCRIPT, PREPARE_UNIT, runcWrapper()]) h.update(part).update("\0");
  return h.digest("hex");
}

function readBaseStamp(dir = baseRootfsDir()): BaseStamp | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(dir, STAMP), "utf8")) as BaseStamp;
  } catch {
    return undefined;
  }
}

function stampMatches(s: BaseStamp | undefined): boolean {
  const w = wantedStamp();
  return (
    !!s && s.suite === w.suite && s.revision === w.revision && s.packages.join(",") === w.packages.join(",") &&
    s.inputs === w.inputs
  );
}

/**
 * The Debian mirror, read at run time from this machine's own apt sources (deb822 .sources
 * files first, then sources.list). BINKUBE_LAB_MIRROR overrides. Never hard-coded.
 */
function debianMirror(): string {
  if (process.env.BINKUBE_LAB_MIRROR) return process.env.BINKUBE_LAB_MIRROR;
  const found: string[] = [];
  const d = "/etc/apt/sources.list.d";
  let files: string[] = [];
  try {
    files = fs.readdirSync(d).filter((f) => f.endsWith(".sources")).sort().map((f) => path.join(d, f));
  } catch {
    // no such dir
  }
  for (const f of files) {
    for (const stanza of readFileOr(f, "").split(/\n\s*\n/)) {
      const fields: Record<string, string> = {};
      for (const line of stanza.split("\n")) {
        if (line.startsWith("#")) continue;
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m) fields[m[1].toLowerCase()] = m[2].trim();
      }
      if (fields.enabled === "no") continue;
      const types = (fields.types ?? "").split(/\s+/);
      const suites = (fields.suites ?? "").split(/\s+/);
      if (types.includes("deb") && suites.includes(SUITE) && fields.uris) found.push(fields.uris.split(/\s+/)[0]);
    }
  }
  for (const f of ["/etc/apt/sources.list", ...listFiles()]) {
    for (const raw of readFileOr(f, "").split("\n")) {
      const line = raw.replace(/#.*/, "").trim();
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m && m[2] === SUITE) found.push(m[1]);
    }
  }
  if (found.length === 0) {
    throw new Error(
      `no Debian '${SUITE}' source found in /etc/apt/sources.list.d/*.sources or /etc/apt/sources.list; ` +
        "set BINKUBE_LAB_MIRROR to the mirror URL",
    );
  }
  return found[0];
}

function listFiles(): string[] {
  const d = "/etc/apt/sources.list.d";
  try {
    return fs.readdirSync(d).filter((f) => f.endsWith(".list")).sort().map((f) => path.join(d, f));
  } catch {
    return [];
  }
}

/** Unmounts everything mounted at or below DIR (deepest first). */
export async function umountUnder(dir: string): Promise<void> {
  const abs = path.resolve(dir);
  const points = readFileOr("/proc/self/mountinfo", "")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => !!p)
    .map(unescapeMountPath)
    .filter((p) => p === abs || p.startsWith(abs + "/"))
    .sort((a, b) => b.length - a.length);
  for (const p of points) {
    const r = await run("umount", [p]);
    if (r.code !== 0) await run("umount", ["-l", p]);
  }
}

/** rm -rf that first unmounts anything below TARGET and refuses paths outside PARENT. */
export async function removeTree(parent: string, target: string): Promise<void> {
  const p = path.resolve(parent);
  const t = path.resolve(target);
  if (!t.startsWith(p + path.sep)) throw new Error(`refusing to remove ${t}: not inside ${p}`);
  if (!fs.existsSync(t)) return;
  await umountUnder(t);
  const still = readFileOr("/proc/self/mountinfo", "")
    .split("\n")
    .map((l) => unescapeMountPath(l.split(" ")[4] ?? ""))
    .filter((m) => m === t || m.startsWith(t + "/"));
  if (still.length > 0) throw new Error(`refusing to remove ${t}: still mounted: ${still.join(", ")}`);
  fs.rmSync(t, { recursive: true, force: true });
}

/** Leftover temp builds of killed runs (their pid is gone): remove them. */
async function cleanStaleBuilds(cache: string, log: Logger): Promise<void> {
  let names: string[] = [];
  try {
    names = fs.readdirSync(cache);
  } catch {
    return;
  }
  for (const n of names) {
    const m = /^\.rootfs-.*\.(?:tmp|old)-(\d+)$/.exec(n);
    if (!m) continue;
    if (processAlive(Number(m[1]))) continue;
    log(`rootfs: removing leftover ${path.join(cache, n)} of an interrupted build`);
    await removeTree(cache, path.join(cache, n));
  }
}

interface EnsureBaseOptions {
  log: Logger;
  /** Called when the cache is outdated: may the old base be replaced (no lab uses it)? */
  mayReplace: () => boolean;
}

/** Returns the base rootfs dir, building it first if there is none (or an outdated unused one). */
export async function ensureBaseRootfs(opts: EnsureBaseOptions): Promise<string> {
  const { log } = opts;
  const cache = cacheDir();
  const final = baseRootfsDir();
  fs.mkdirSync(cache, { recursive: true });
  await cleanStaleBuilds(cache, log);
  const current = readBaseStamp(final);
  if (fs.existsSync(final)) {
    if (stampMatches(current)) return final;
    if (current && !opts.mayReplace()) {
      log(`rootfs: ${final} is outdated but a running lab uses it; keeping it (run 'lab down' everywhere to rebuild)`);
      return final;
    }
    log(`rootfs: ${final} is ${current ? "outdated" : "incomplete"}; rebuilding`);
  }

  const tmp = path.join(cache, `.rootfs-${SUITE}.tmp-${process.pid}`);
  const started = now();
  const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
  const mirror = debianMirror();
  const buildLog = path.join(cache, "build.log");
  const logFd = fs.openSync(buildLog, "w");
  log(`rootfs: building the ${SUITE} base (debootstrap minbase, ${BASE_PACKAGES.length} extra packages) in ${tmp}; takes about a minute; full log: ${buildLog}`);
  let phase = "";
  let count = 0;
  let lastLine = "";
  const heartbeat = setInterval(() => {
    log(`rootfs: … ${elapsed(started)}: ${lastLine}`);
  }, 10000);
  try {
    const args = [
      "--variant=minbase",
      `--include=${BASE_PACKAGES.join(",")}`,
      "--components=main",
      SUITE,
      tmp,
      mirror,
    ];
    fs.writeSync(logFd, `debootstrap ${args.join(" ")}\n`);
    const r = await run("debootstrap", args, {
      onLine: (line) => {
        fs.writeSync(logFd, line + "\n");
        if (!line.trim()) return;
        lastLine = line.trim();
        const m = /^I: (\w+)(.*)$/.exec(line.trim());
        if (!m) return;
        count++;
        // Per-package lines ("Retrieving foo 1.2", "Unpacking foo...") are summarized by phase.
        let key = line.trim();
        if (m[1] === "Retrieving" || m[1] === "Validating") key = "I: Retrieving packages...";
        else if (m[1] === "Extracting") key = "I: Extracting packages...";
        else if (/^ \S+\.\.\.$/.test(m[2])) key = phase; // "I: Unpacking libc6:amd64..."
        if (key !== phase) {
          phase = key;
          log(`rootfs: ${elapsed(started)}: ${key.replace(/^I: /, "")}`);
        }
      },
    });
    if (r.code !== 0) {
      const dlog = readFileOr(path.join(tmp, "debootstrap", "debootstrap.log"), "").split("\n").slice(-15).join("\n");
      throw new Error(
        `debootstrap failed (exit ${r.code}) after ${elapsed(started)}; see ${buildLog}` +
          (dlog ? `\n--- debootstrap.log (tail) ---\n${dlog}` : ""),
      );
    }
    log(`rootfs: debootstrap done after ${elapsed(started)} (${count} steps); customizing`);
    await customizeBase(tmp);
    const stamp: BaseStamp = { ...wantedStamp(), builtAt: new Date().toISOString(), buildSeconds: Math.round(seconds()) };
    fs.writeFileSync(path.join(tmp, STAMP), JSON.stringify(stamp, null, 2) + "\n");
    // Swap into place: old (if any) aside, new in, old removed.
    if (fs.existsSync(final)) {
      const old = path.join(cache, `.rootfs-${SUITE}.old-${process.pid}`);
      fs.renameSync(final, old);
      fs.renameSync(tmp, final);
      await removeTree(cache, old);
    } else {
      fs.renameSync(tmp, final);
    }
    const size = (await run("du", ["-sm", final])).stdout.split("\t")[0];
    log(`rootfs: base ready in ${elapsed(started)}: ${final} (${size} MB)`);
    return final;
  } catch (e) {
    await removeTree(cache, tmp).catch(() => undefined);
    throw e;
  } finally {
    clearInterval(heartbeat);
    fs.closeSync(logFd);
  }
}

/** What every host shares: no host keys, no machine-id, sshd config, units enabled. */
async function customizeBase(root: string): Promise<void> {
  const p = (rel: string): string => path.join(root, rel);
  // Host keys made by openssh-server's postinst would be shared by every host: drop them.
  for (const f of fs.readdirSync(p("etc/ssh"))) {
    if (f.startsWith("ssh_host_")) fs.rmSync(p(`etc/ssh/${f}`));
  }
  fs.writeFileSync(p("etc/machine-id"), "");
  fs.mkdirSync(p("var/lib/dbus"), { recursive: true });
  fs.rmSync(p("var/lib/dbus/machine-id"), { force: true });
  fs.symlinkSync("/etc/machine-id", p("var/lib/dbus/machine-id"));
  fs.mkdirSync(p("etc/ssh/sshd_config.d"), { recursive: true });
  fs.writeFileSync(
    p("etc/ssh/sshd_config.d/binkube-lab.conf"),
    "# binkube lab host: key-only root login\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n",
  );
  fs.writeFileSync(p("etc/hostname"), "localhost\n");
  fs.rmSync(p("etc/resolv.conf"), { force: true });
  fs.writeFileSync(p("etc/resolv.conf"), "# binkube lab: set per host\n");
  fs.writeFileSync(p("etc/fstab"), "# binkube lab host: nothing to mount\n");
  fs.mkdirSync(p("usr/local/sbin"), { recursive: true });
  fs.writeFileSync(p("usr/local/sbin/binkube-lab-prepare"), PREPARE_SCRIPT, { mode: 0o755 });
  fs.writeFileSync(p("etc/systemd/system/binkube-lab-prepare.service"), PREPARE_UNIT);
  fs.writeFileSync(p(RUNC_WRAPPER_PATH), runcWrapper(), { mode: 0o755 });
  await runOk("chroot", [
    root, "systemctl", "enable", "systemd-networkd.service", "ssh.service", "binkube-lab-prepare.service",
  ]);
  // The hosts have no network beyond the lab: no apt lists or downloaded .debs needed.
  for (const d of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
    for (const f of fs.readdirSync(p(d))) {
      const full = p(`${d}/${f}`);
      if (fs.statSync(full).isFile()) fs.rmSync(full);
    }
  }
}

/**
 * Lab-only workarounds a worker (docker/containerd/kubelet) needs inside an nspawn host, run at
 * boot on every host (harmless for etcd-only hosts; real machines need none of this):
 * - nspawn mounts the cgroup v1 hierarchies read-only; make them writable (only this host's own
 *   subtree is visible, thanks to its per-host cgroups). A plain `remount,rw` says "busy".
 * - /proc/sys is read-only and shared with the real machine; kubelet 1.17 insists on a few values:
 *   show it files holding them (bind mounts) instead of touching the machine.
 */
const PREPARE_SCRIPT = `#!/bin/sh
# binkube lab host preparation: see the unit binkube-lab-prepare.service. Lab hosts only.
awk '$3 == "cgroup" {print $2}' /proc/self/mounts | while read -r m; do
  mount -o remount,bind,rw "$m" || echo "binkube-lab-prepare: cannot make $m writable" >&2
done
d=/run/binkube-lab/sysctl
mkdir -p "$d"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \\
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=\${kv%%=*}; v=\${kv#*=}
  [ -e "/proc/sys/$k" ] || continue
  if awk -v p="/proc/sys/$k" '$5 == p {found = 1} END {exit !found}' /proc/self/mountinfo; then continue; fi
  f="$d/$(echo "$k" | tr / .)"
  echo "$v" > "$f"
  mount --bind "$f" "/proc/sys/$k" || echo "binkube-lab-prepare: cannot bind $f over /proc/sys/$k" >&2
done
exit 0
`;

const PREPARE_UNIT = `[Unit]
Description=binkube lab: writable cgroup v1 hierarchies and kubelet's sysctl values (lab hosts only)
ConditionVirtualization=container
Before=containerd.service docker.service kubelet.service etcd.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/binkube-lab-prepare

[Install]
WantedBy=multi-user.target
`;
