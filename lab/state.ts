// DIR/lab.json: everything `down` and `status` need, written before anything is started so
// that a crashed `up` can always be cleaned up.
import * as fs from "node:fs";
import * as path from "node:path";
import { writeFileAtomic } from "./util";

export interface LabHost {
  name: string;
  /** 1-based index: lab1 = 1. */
  index: number;
  /** systemd-nspawn machine name (= name in slot 0); the host-side veth is vb-MACHINE. */
  machine: string;
  address: string;
  roles: string[];
  /** Host dir: DIR/hosts/NAME (rootfs/, upper/, work/, console.log). */
  hostDir: string;
  rootfs: string;
  /** "overlay": rootfs is an overlayfs mount over the base; "copy": a plain copy. */
  rootfsMode: "overlay" | "copy";
  log: string;
  cgroups: string[];
  pid: number | null;
  /** /proc/PID/stat start time, so a recycled pid is never taken for this host. */
  pidStartTime: number | null;
  startedAt: string | null;
  /** Seconds from launching nspawn to a successful `ssh true`, for the last boot. */
  bootSeconds: number | null;
}

export interface LabState {
  version: 1;
  dir: string;
  slot: number;
  bridge: string;
  gateway: string;
  subnet: string;
  baseRootfs: string;
  /** Root's key: the lab's own access to its hosts (tests' probes, `lab status`). */
  privateKey: string;
  /**
   * Set when binkube deploys as a non-root user with passwordless sudo (`lab up --operator sudo`,
   * as on cloud images): the inventory's user and key. That key is not authorized for root.
   */
  operator?: { user: string; privateKey: string };
  knownHosts: string;
  inventory: string;
  hosts: LabHost[];
}

export function statePath(dir: string): string {
  return path.join(dir, "lab.json");
}

export function loadState(dir: string): LabState | undefined {
  let raw: string;
  try {
    raw = fs.readFileSync(statePath(dir), "utf8");
  } catch {
    return undefined;
  }
  const st = JSON.parse(raw) as LabState;
  if (st.version !== 1 || !Array.isArray(st.hosts)) throw new Error(`${statePath(dir)}: not a binkube lab state file`);
  st.hosts.sort((a, b) => a.index - b.index);
  return st;
}

export function saveState(st: LabState): void {
  st.hosts.sort((a, b) => a.index - b.index);
  writeFileAtomic(statePath(st.dir), JSON.stringify(st, null, 2) + "\n", 0o644);
}
