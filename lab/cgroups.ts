// Per-host launcher cgroups. systemd-nspawn runs with --keep-unit --register=no (there is no
// systemd on this machine to ask for a scope), so without help every host would share the
// launcher's cgroup and systemd inside the hosts would fight over it. Each host therefore gets
// its own cgroup in EVERY hierarchy this process belongs to (each v1 controller, name=systemd,
// and the unified one), created below this process's own cgroup there (so memory stays under
// the session's memory cgroup), and nspawn is started inside it.
import * as fs from "node:fs";
import * as path from "node:path";
import { CGROUP_GROUP } from "./config";
import { readFileOr, sleep, unescapeMountPath } from "./util";

interface Hierarchy {
  /** "cpu", "cpu,cpuacct", "name=systemd", or "" for the unified (v2) hierarchy. */
  controllers: string;
  mount: string;
  /** This process's cgroup in that hierarchy, as a directory under `mount`. */
  ownDir: string;
}

interface CgMount {
  mount: string;
  root: string;
  fstype: string;
  opts: Set<string>;
}

function cgroupMounts(): CgMount[] {
  const out: CgMount[] = [];
  for (const line of readFileOr("/proc/self/mountinfo", "").split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(" ");
    const b = line.slice(sep + 3).split(" ");
    if (b[0] !== "cgroup" && b[0] !== "cgroup2") continue;
    out.push({ mount: unescapeMountPath(a[4]), root: unescapeMountPath(a[3]), fstype: b[0], opts: new Set((b[2] ?? "").split(",")) });
  }
  return out;
}

/** The hierarchies of this process with where they are mounted (read from /proc, not assumed). */
export function hierarchies(): Hierarchy[] {
  const mounts = cgroupMounts();
  const out: Hierarchy[] = [];
  for (const line of readFileOr("/proc/self/cgroup", "").split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const controllers = m[2];
    const own = m[3];
    let mnt: CgMount | undefined;
    if (m[1] === "0" && controllers === "") {
      mnt = mounts.find((x) => x.fstype === "cgroup2");
    } else {
      const want = controllers.split(",").filter(Boolean);
      mnt = mounts.find((x) => x.fstype === "cgroup" && want.every((c) => x.opts.has(c)));
    }
    if (!mnt) continue; // hierarchy not mounted here: nothing to do for it
    let rel = own;
    if (mnt.root !== "/" && rel.startsWith(mnt.root)) rel = rel.slice(mnt.root.length);
    out.push({ controllers, mount: mnt.mount, ownDir: path.resolve(mnt.mount, "." + rel) });
  }
  return out;
}

function copyIfEmpty(dir: string, file: string): void {
  const f = path.join(dir, file);
  if (!fs.existsSync(f)) return;
  if (readFileOr(f, "").trim() !== "") return;
  const parent = readFileOr(path.join(path.dirname(dir), file), "").trim();
  if (parent) fs.writeFileSync(f, parent);
}

function mkCgroup(dir: string): void {
  if (!fs.existsSync(dir)) fs.mkdirSync(dir);
  // cpuset children start empty and refuse tasks until cpus/mems are set.
  for (const f of ["cpuset.cpus", "cpuset.mems", "cpus", "mems"]) {
    copyIfEmpty(dir, f);
  }
}

export function cgroupProcs(dir: string): number[] {
  return readFileOr(path.join(dir, "cgroup.procs"), "")
    .split("\n")
    .filter(Boolean)
    .map(Number);
}

/**
 * Creates OWNER's cgroup in every hierarchy and returns the directories (write a pid into
 * DIR/cgroup.procs of each to move it there). A leftover empty one is reused; a busy one is an error.
 */
export function createHostCgroups(owner: string): string[] {
  const dirs: string[] = [];
  for (const h of hierarchies()) {
    const group = path.join(h.ownDir, CGROUP_GROUP);
    const dir = path.join(group, owner);
    mkCgroup(group);
    mkCgroup(dir);
    const busy = cgroupProcs(dir);
    if (busy.length > 0) {
      throw new Error(`cgroup ${dir} still has processes (${busy.slice(0, 5).join(" ")}): is that host still running? run 'binkube lab down' first`);
    }
    dirs.push(dir);
  }
  return dirs;
}

/** The cgroup dirs a host would get, without creating them (for cleanup after a crash). */
export function hostCgroupDirs(owner: string): string[] {
  return hierarchies().map((h) => path.join(h.ownDir, CGROUP_GROUP, owner));
}

function rmdirTree(dir: string): void {
  let entries: fs.Dirent[] = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) rmdirTree(path.join(dir, e.name));
  fs.rmdirSync(dir); // cgroupfs: rmdir removes the group with its control files
}

/** Removes the given cgroup dirs (and children nspawn/systemd made below them); retries briefly. */
export async function removeCgroups(dirs: readonly string[]): Promise<string[]> {
  const failed: string[] = [];
  for (const d of dirs) {
    if (!d.includes(`/${CGROUP_GROUP}/`)) continue; // never touch anything we did not make
    let lastErr = "";
    for (let i = 0; i < 20 && fs.existsSync(d); i++) {
      try {
        rmdirTree(d);
      } catch (e) {
        lastErr = (e as Error).message;
        await sleep(100);
      }
    }
    if (fs.existsSync(d)) failed.push(`${d}: ${lastErr}`);
    // The shared group dir goes when its last host goes.
    try {
      fs.rmdirSync(path.dirname(d));
    } catch {
      // other hosts still there
    }
  }
  return failed;
}
