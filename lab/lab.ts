// The lab's programmatic API: labUp, labDown, labStatus, sshArgs.
import * as fs from "node:fs";
import * as path from "node:path";
import { cgroupProcs, hostCgroupDirs } from "./cgroups";
import { BRIDGE, GATEWAY, MAX_HOSTS, MAX_SLOTS, SUBNET, baseRootfsDir, bootTimeoutMs, hostAddress, hostName, labDir, machineName, rolesFor } from "./config";
import {
  ensureRootfs,
  hostRunning,
  personalize,
  refreshHostsFile,
  removeHostFiles,
  sshBaseArgs,
  sshOk,
  startHost,
  stopHost,
  strayNspawns,
  waitForSsh,
  releaseVeth,
} from "./hosts";
import { writeInventory, writeKnownHosts } from "./inventory";
import { bridgePorts, ensureNetwork, teardownNetwork } from "./network";
import { preflight } from "./preflight";
import { allocateSlot, otherLiveLabs, releaseSlot, withLabLock } from "./registry";
import { ensureBaseRootfs, removeTree } from "./rootfs";
import { LabHost, LabState, loadState, saveState, statePath } from "./state";
import { Logger, elapsed, now, processAlive, runOk, sleep, stderrLogger } from "./util";

export type { LabHost, LabState } from "./state";

/** Thrown when this machine lacks root or tools; `message` says what and how to install. */
export class LabPreconditionError extends Error {
  constructor(message: string, readonly problems: string[]) {
    super(message);
    this.name = "LabPreconditionError";
  }
}

export interface LabUpOptions {
  /** Lab dir (default: BINKUBE_LAB_DIR or ./.lab). */
  dir?: string;
  /** Number of hosts, 1..19 (default 3). */
  hosts?: number;
  /** Progress lines (default: stderr). */
  log?: Logger;
  /**
   * "root" (default): binkube logs in as root. "sudo": as `ubuntu` with passwordless sudo, whose
   * key root does not accept (the inventory gets user ubuntu, sudo: true). Fixed when a lab is made.
   */
  operator?: "root" | "sudo";
}

export interface LabDirOptions {
  dir?: string;
  log?: Logger;
}

export interface LabHostStatus {
  name: string;
  address: string;
  roles: string[];
  running: boolean;
  sshOk: boolean;
  pid: number | null;
  /** Why ssh failed, when it did. */
  sshError: string;
}

export interface LabStatus {
  dir: string;
  /** False when DIR has no lab.json. */
  exists: boolean;
  bridge: string;
  hosts: LabHostStatus[];
}

export interface LabDownResult {
  dir: string;
  stopped: string[];
  networkRemoved: boolean;
}

function checkPreconditions(): void {
  const p = preflight();
  if (!p.ok) throw new LabPreconditionError(p.message, p.problems);
}

function newHost(dir: string, slot: number, index: number): LabHost {
  const name = hostName(index);
  const hostDir = path.join(dir, "hosts", name);
  return {
    name,
    index,
    machine: machineName(slot, index),
    address: hostAddress(slot, index),
    roles: rolesFor(index),
    hostDir,
    rootfs: path.join(hostDir, "rootfs"),
    // BINKUBE_LAB_ROOTFS=copy forces a full copy (the fallback when overlayfs cannot be mounted).
    rootfsMode: process.env.BINKUBE_LAB_ROOTFS === "copy" ? "copy" : "overlay",
    log: path.join(hostDir, "console.log"),
    cgroups: [],
    pid: null,
    pidStartTime: null,
    startedAt: null,
    bootSeconds: null,
  };
}

async function ensureLabKey(dir: string, file = "id_ed25519"): Promise<{ priv: string; pub: string }> {
  const priv = path.join(dir, file);
  const pub = `${priv}.pub`;
  if (!fs.existsSync(priv) || !fs.existsSync(pub)) {
    fs.rmSync(priv, { force: true });
    fs.rmSync(pub, { force: true });
    await runOk("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "binkube-lab", "-f", priv]);
  }
  fs.chmodSync(priv, 0o600);
  return { priv, pub: fs.readFileSync(pub, "utf8") };
}

/**
 * Brings the lab in DIR to exactly N running hosts: builds the base rootfs if needed, creates the
 * network, starts missing hosts (in parallel), stops hosts beyond N, leaves running ones alone,
 * and writes DIR/cluster.yaml, DIR/known_hosts and DIR/lab.json.
 */
export async function labUp(opts: LabUpOptions = {}): Promise<LabState> {
  const log = opts.log ?? stderrLogger;
  const n = opts.hosts ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > MAX_HOSTS) throw new Error(`--hosts must be an integer from 1 to ${MAX_HOSTS} (got ${n})`);
  checkPreconditions();
  const dir = labDir(opts.dir);
  fs.mkdirSync(dir, { recursive: true });
  const t0 = now();

  return withLabLock(log, async () => {
    const existing = loadState(dir);
    let slot: number;
    if (existing) {
      slot = allocateSlot(dir, existing.slot, log);
      if (slot !== existing.slot) {
        throw new Error(`${dir}: its lab.json says slot ${existing.slot} but that slot is taken; run 'binkube lab down --dir ${dir}' first`);
      }
    } else {
      // BINKUBE_LAB_SLOT: a slot to try first. Side work (a second lab while an e2e runs) asks for
      // a high one, so the e2e suites keep the low slots (they take their addresses from any slot).
      const wanted = process.env.BINKUBE_LAB_SLOT;
      slot = allocateSlot(dir, wanted && /^\d+$/.test(wanted) && Number(wanted) < MAX_SLOTS ? Number(wanted) : undefined, log);
    }
    const base = await ensureBaseRootfs({
      log,
      mayReplace: () => otherLiveLabs(dir).length === 0 && !(existing && existing.hosts.length > 0),
    });
    await ensureNetwork(log);
    const mode = existing ? (existing.operator ? "sudo" : "root") : (opts.operator ?? "root");
    if (opts.operator && opts.operator !== mode) throw new Error(`${dir}: this lab deploys as ${mode === "sudo" ? "a sudo user" : "root"}; run 'binkube lab down --dir ${dir}' to make one with --operator ${opts.operator}`);
    // binkube's key (the inventory's); in sudo mode root has a key of its own, the lab's
    const key = await ensureLabKey(dir);
    const admin = mode === "sudo" ? await ensureLabKey(dir, "admin_ed25519") : key;

    const st: LabState = existing ?? {
      version: 1,
      dir,
      slot,
      bridge: BRIDGE,
      gateway: GATEWAY,
      subnet: SUBNET,
      baseRootfs: base,
      privateKey: admin.priv,
      ...(mode === "sudo" ? { operator: { user: "ubuntu", privateKey: key.priv } } : {}),
      knownHosts: path.join(dir, "known_hosts"),
      inventory: path.join(dir, "cluster.yaml"),
      hosts: [],
    };
    if (existing && existing.baseRootfs !== base) {
      log(`note: lab uses base ${existing.baseRootfs}, current base is ${base}`);
    }
    saveState(st);

    // Hosts beyond N go first.
    const extra = st.hosts.filter((h) => h.index > n);
    if (extra.length > 0) {
      log(`stopping ${extra.map((h) => h.name).join(", ")} (lab shrinks to ${n} host${n === 1 ? "" : "s"})`);
      await Promise.all(extra.map((h) => stopHost(h, log)));
      for (const h of extra) await removeHostFiles(st, h);
      st.hosts = st.hosts.filter((h) => h.index <= n);
      saveState(st);
    }

    const toStart: LabHost[] = [];
    const kept: string[] = [];
    for (let i = 1; i <= n; i++) {
      let h = st.hosts.find((x) => x.index === i);
      if (h && hostRunning(h)) {
        kept.push(h.name);
        continue;
      }
      if (h) {
        log(`${h.name}: not running; starting it again (its files are kept)`);
        await stopHost(h, log); // clears leftover cgroups of a dead run
      } else {
        h = newHost(dir, slot, i);
        st.hosts.push(h);
      }
      toStart.push(h);
    }
    saveState(st); // every host we may start is on record before anything runs

    if (toStart.length === 0 && extra.length === 0) {
      log(`lab in ${dir} is already up with ${n} host${n === 1 ? "" : "s"}; reusing it`);
    } else if (kept.length > 0) {
      log(`keeping running host${kept.length === 1 ? "" : "s"} ${kept.join(", ")}`);
    }

    if (toStart.length > 0) {
      const tPrep = now();
      await Promise.all(
        toStart.map(async (h) => {
          fs.mkdirSync(h.hostDir, { recursive: true });
          await ensureRootfs(st, h, log);
          await personalize(st, h, admin.pub, mode === "sudo" ? key.pub : undefined);
        }),
      );
      log(`prepared ${toStart.map((h) => h.name).join(", ")} (${toStart[0].rootfsMode}) in ${elapsed(tPrep)}`);
    }
    // /etc/hosts on every host lists every host (kept hosts get the new names too).
    for (const h of st.hosts) refreshHostsFile(st, h);
    writeKnownHosts(st);
    writeInventory(st);

    if (toStart.length > 0) {
      for (const h of toStart) {
        h.cgroups = hostCgroupDirs(h.machine); // on record before they exist
        saveState(st);
        try {
          await releaseVeth(h); // a veth of an earlier host of this name may still be going away
          startHost(h);
        } finally {
          saveState(st);
        }
      }
      log(`booting ${toStart.map((h) => `${h.name} (${h.address})`).join(", ")}`);
      const results = await Promise.allSettled(
        toStart.map(async (h) => {
          h.bootSeconds = await waitForSsh(st, h, bootTimeoutMs());
          log(`${h.name}: ssh ok ${h.bootSeconds.toFixed(2)} s after launch`);
        }),
      );
      saveState(st);
      const errors = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as Error).message);
      if (errors.length > 0) throw new Error(errors.join("\n"));
    }
    log(`lab up: ${st.hosts.length} host${st.hosts.length === 1 ? "" : "s"} in ${dir} (${elapsed(t0)}); inventory ${st.inventory}`);
    return st;
  });
}

/** Stops every host of the lab in DIR, removes its files and, if no lab is left, the network. */
export async function labDown(opts: LabDirOptions = {}): Promise<LabDownResult> {
  const log = opts.log ?? stderrLogger;
  const p = preflight({ needBuildTools: false });
  if (!p.ok) throw new LabPreconditionError(p.message, p.problems);
  const dir = labDir(opts.dir);
  return withLabLock(log, async () => {
    let st: LabState | undefined;
    try {
      st = loadState(dir);
    } catch (e) {
      log(`ignoring unreadable ${statePath(dir)}: ${(e as Error).message}`);
    }
    const stopped: string[] = [];
    if (st) {
      const hosts = st.hosts;
      await Promise.all(
        hosts.map(async (h) => {
          const was = hostRunning(h);
          await stopHost(h, log);
          if (was) stopped.push(h.name);
        }),
      );
    }
    // nspawn processes of this dir that lab.json does not know (a crash between spawn and save).
    for (const s of strayNspawns(dir)) {
      log(`stopping stray systemd-nspawn pid ${s.pid} (${s.rootfs})`);
      try {
        process.kill(s.pid, "SIGTERM");
      } catch {
        // gone
      }
      for (let i = 0; i < 100 && processAlive(s.pid); i++) await sleep(100);
      if (processAlive(s.pid)) process.kill(s.pid, "SIGKILL");
    }
    await removeTree(dir, path.join(dir, "hosts"));
    for (const f of ["lab.json", "cluster.yaml", "known_hosts"]) fs.rmSync(path.join(dir, f), { force: true });
    releaseSlot(dir);

    let networkRemoved = false;
    const others = otherLiveLabs(dir);
    const ports = await bridgePorts();
    if (others.length === 0 && ports.length === 0) {
      await teardownNetwork(log);
      networkRemoved = true;
    } else if (others.length > 0) {
      log(`network kept: other lab${others.length === 1 ? "" : "s"} still up (${others.join(", ")})`);
    } else {
      log(`network kept: interfaces still on ${BRIDGE}: ${ports.join(", ")}`);
    }
    stopped.sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
    log(`lab down: ${stopped.length > 0 ? `stopped ${stopped.join(", ")}` : "no host was running"} (${dir})`);
    return { dir, stopped, networkRemoved };
  });
}

/**
 * Power loss of some hosts: every process of each one is killed at once (SIGKILL, no shutdown),
 * its files kept; `labUp` with the same count boots them again. Returns when they are gone.
 */
export async function labPowerOff(opts: LabDirOptions & { hosts: string[] }): Promise<void> {
  const log = opts.log ?? stderrLogger;
  const dir = labDir(opts.dir);
  await withLabLock(log, async () => {
    const st = loadState(dir);
    if (!st) throw new Error(`no lab in ${dir}`);
    const hosts = opts.hosts.map((n) => st.hosts.find((h) => h.name === n) ?? fail(`no host ${n} in the lab at ${dir}`));
    for (const h of hosts) {
      for (const pid of [...h.cgroups.flatMap(cgroupProcs), ...(h.pid && hostRunning(h) ? [h.pid] : [])]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone already
        }
      }
    }
    await Promise.all(hosts.map((h) => stopHost(h, log))); // reaps what is left, frees veth and cgroups
    saveState(st);
  });
}

function fail(message: string): never {
  throw new Error(message);
}

/** Per host: running? ssh ok? (no lock taken; reads lab.json). */
export async function labStatus(opts: { dir?: string } = {}): Promise<LabStatus> {
  const dir = labDir(opts.dir);
  const st = loadState(dir);
  if (!st) return { dir, exists: false, bridge: BRIDGE, hosts: [] };
  const hosts = await Promise.all(
    st.hosts.map(async (h): Promise<LabHostStatus> => {
      const running = hostRunning(h);
      const ssh = running ? await sshOk(st, h, 3) : { ok: false, error: "not running" };
      return { name: h.name, address: h.address, roles: h.roles, running, sshOk: ssh.ok, pid: running ? h.pid : null, sshError: ssh.error };
    }),
  );
  return { dir, exists: true, bridge: st.bridge, hosts };
}

/** Reads DIR/lab.json (undefined when there is no lab in DIR). */
export function loadLab(dir?: string): LabState | undefined {
  return loadState(labDir(dir));
}

/**
 * Arguments for `ssh` to reach HOSTNAME as root with the lab key and strict host key checking;
 * append the remote command: spawn("ssh", [...sshArgs(st, "lab1"), "systemctl", "is-system-running"]).
 */
export function sshArgs(state: LabState, hostNameOrAddress: string): string[] {
  const h = state.hosts.find((x) => x.name === hostNameOrAddress || x.address === hostNameOrAddress);
  if (!h) throw new Error(`no host ${hostNameOrAddress} in the lab at ${state.dir} (hosts: ${state.hosts.map((x) => x.name).join(", ")})`);
  return [...sshBaseArgs(state), `root@${h.address}`];
}

/** The base rootfs location (for docs and tests). */
export function baseRootfsPath(): string {
  return baseRootfsDir();
}
