// One lab host: its rootfs (overlayfs over the base, or a copy), its identity, its nspawn
// process (in its own cgroups), waiting for its sshd, stopping it.
import { spawn, spawnSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { cgroupProcs, createHostCgroups, removeCgroups } from "./cgroups";
import { BRIDGE, GATEWAY, PREFIX_LEN } from "./config";
import { removeTree, umountUnder } from "./rootfs";
import type { LabHost, LabState } from "./state";
import {
  Logger,
  isMountPoint,
  now,
  procCmdline,
  procStartTime,
  processAlive,
  run,
  runOk,
  sleep,
  tailFile,
  which,
  writeFileAtomic,
} from "./util";

const MARKER = "etc/binkube-lab-host.json";

/** Mounts (or copies) the host's rootfs over the base. Idempotent. */
export async function ensureRootfs(st: LabState, h: LabHost, log: Logger): Promise<void> {
  const upper = path.join(h.hostDir, "upper");
  const work = path.join(h.hostDir, "work");
  fs.mkdirSync(h.rootfs, { recursive: true });
  if (h.rootfsMode === "overlay") {
    if (isMountPoint(h.rootfs)) return;
    fs.mkdirSync(upper, { recursive: true });
    fs.mkdirSync(work, { recursive: true });
    const opts = `lowerdir=${st.baseRootfs},upperdir=${upper},workdir=${work}`;
    const r = await run("mount", ["-t", "overlay", "overlay", "-o", opts, h.rootfs]);
    if (r.code === 0) return;
    if (fs.readdirSync(upper).length > 0) {
      throw new Error(`${h.name}: cannot mount its overlay rootfs (${r.stderr.trim()}) and ${upper} already holds its files`);
    }
    log(`${h.name}: overlayfs not usable here (${r.stderr.trim()}); copying the base instead`);
    h.rootfsMode = "copy";
    fs.rmSync(upper, { recursive: true, force: true });
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (fs.existsSync(path.join(h.rootfs, "etc"))) return; // copy already made
  await runOk("cp", ["-a", "--reflink=auto", `${st.baseRootfs}/.`, `${h.rootfs}/`]);
}

function hostsFile(st: LabState): string {
  const lines = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
    "# binkube lab hosts (rewritten by binkube lab up)",
    ...st.hosts.map((x) => `${x.address}\t${x.name}`),
    "",
  ];
  return lines.join("\n");
}

/**
 * Gives a fresh rootfs its identity: hostname, /etc/hosts, ssh host keys, machine-id, network,
 * authorized_keys. Skipped for a rootfs that already has one (a host being restarted keeps it).
 */
export async function personalize(st: LabState, h: LabHost, publicKey: string, operatorKey?: string): Promise<void> {
  const r = (rel: string): string => path.join(h.rootfs, rel);
  if (fs.existsSync(r(MARKER))) return;
  writeFileAtomic(r("etc/hostname"), `${h.name}\n`);
  writeFileAtomic(r("etc/hosts"), hostsFile(st));
  writeFileAtomic(r("etc/machine-id"), crypto.randomBytes(16).toString("hex") + "\n", 0o444);
  writeFileAtomic(r("etc/resolv.conf"), `# binkube lab: no DNS server; queries to the gateway fail fast\nnameserver ${GATEWAY}\n`);
  writeFileAtomic(
    r("etc/systemd/network/10-host0.network"),
    [
      "# binkube lab: static address on the lab bridge",
      "[Match]",
      "Name=host0",
      "",
      "[Network]",
      `Address=${h.address}/${PREFIX_LEN}`,
      `Gateway=${GATEWAY}`,
      "LinkLocalAddressing=no",
      "IPv6AcceptRA=no",
      "",
    ].join("\n"),
  );
  fs.mkdirSync(r("root/.ssh"), { recursive: true, mode: 0o700 });
  fs.chmodSync(r("root/.ssh"), 0o700);
  writeFileAtomic(r("root/.ssh/authorized_keys"), publicKey.trim() + "\n", 0o600);
  if (st.operator && operatorKey) await addOperator(h.rootfs, st.operator.user, operatorKey);
  // Fresh host keys, made with this machine's ssh-keygen straight into the rootfs.
  for (const f of fs.readdirSync(r("etc/ssh"))) if (f.startsWith("ssh_host_")) fs.rmSync(r(`etc/ssh/${f}`));
  await Promise.all(
    [
      ["ed25519", []],
      ["ecdsa", ["-b", "256"]],
      ["rsa", ["-b", "2048"]], // 2048: a lab key, and 4x faster to make than 3072
    ].map(([t, extra]) =>
      runOk("ssh-keygen", ["-q", "-t", t as string, ...(extra as string[]), "-N", "", "-C", `root@${h.name}`, "-f", r(`etc/ssh/ssh_host_${t}_key`)]),
    ),
  );
  writeFileAtomic(
    r(MARKER),
    JSON.stringify({ name: h.name, address: h.address, lab: st.dir, createdAt: new Date().toISOString() }, null, 2) + "\n",
  );
}

/**
 * A cloud-image style operator account: its own key, passwordless sudo, no password. root does
 * not accept that key (only the lab's own), so a deploy with it can only work through sudo.
 */
async function addOperator(rootfs: string, user: string, publicKey: string): Promise<void> {
  await runOk("useradd", ["--root", rootfs, "--create-home", "--shell", "/bin/bash", "--user-group", user]);
  const passwd = fs.readFileSync(path.join(rootfs, "etc", "passwd"), "utf8").split("\n").find((l) => l.startsWith(`${user}:`))!.split(":");
  const [uid, gid] = [Number(passwd[2]), Number(passwd[3])];
  const ssh = path.join(rootfs, "home", user, ".ssh");
  fs.mkdirSync(ssh, { recursive: true, mode: 0o700 });
  writeFileAtomic(path.join(ssh, "authorized_keys"), publicKey.trim() + "\n", 0o600);
  for (const p of [ssh, path.join(ssh, "authorized_keys")]) fs.chownSync(p, uid, gid);
  writeFileAtomic(path.join(rootfs, "etc", "sudoers.d", `binkube-lab-${user}`), `${user} ALL=(ALL) NOPASSWD:ALL\n`, 0o440);
}

/** Rewrites /etc/hosts on a host (used when hosts are added or removed). */
export function refreshHostsFile(st: LabState, h: LabHost): void {
  const f = path.join(h.rootfs, "etc", "hosts");
  if (!fs.existsSync(path.dirname(f))) return;
  const want = hostsFile(st);
  if (fs.existsSync(f) && fs.readFileSync(f, "utf8") === want) return;
  writeFileAtomic(f, want);
}

function nspawnArgs(h: LabHost): string[] {
  const args = [
    "-b",
    "-q",
    "-D",
    h.rootfs,
    "-M",
    h.machine,
    `--hostname=${h.name}`,
    `--network-bridge=${BRIDGE}`,
    "--register=no",
    "--keep-unit",
    "--link-journal=no",
    "--resolv-conf=off",
    "--timezone=off",
    "--console=read-only",
    // What docker/kubelet will need later; harmless for etcd-only hosts.
    "--capability=all",
    "--system-call-filter=@keyring",
  ];
  if (fs.existsSync("/dev/kmsg")) args.push("--bind-ro=/dev/kmsg");
  // docker's overlay2 and containerd's overlayfs snapshotter cannot stack on the host's overlayfs
  // root (mount: EINVAL): give /var/lib/docker and /var/lib/containerd plain ext4 directories of
  // their own (lab-side only; real hosts need nothing).
  for (const [dir, at] of [["var-lib-docker", "/var/lib/docker"], ["var-lib-containerd", "/var/lib/containerd"]]) {
    const own = path.join(h.hostDir, dir);
    fs.mkdirSync(own, { recursive: true, mode: 0o711 });
    args.push(`--bind=${own}:${at}`);
  }
  return args;
}

/**
 * The kernel deletes a stopped host's veth (vb-MACHINE) asynchronously; a host started again
 * at once under the same name fails with "File exists". Wait briefly, then delete the leftover.
 */
export async function releaseVeth(h: LabHost): Promise<void> {
  const link = `vb-${h.machine}`.slice(0, 15);
  const present = () => fs.existsSync(path.join("/sys/class/net", link));
  for (let i = 0; i < 50 && present(); i++) await sleep(100);
  if (present()) spawnSync("ip", ["link", "del", link], { stdio: "ignore" });
}

/**
 * Starts the host: its own cgroups first, then systemd-nspawn detached (its pid is that of the
 * shell that moved itself into the cgroups and exec'd nspawn). Fills h.pid / h.cgroups.
 */
export function startHost(h: LabHost): void {
  const nspawn = which("systemd-nspawn");
  if (!nspawn) throw new Error("systemd-nspawn not found");
  h.cgroups = createHostCgroups(h.machine);
  const fd = fs.openSync(h.log, "a");
  fs.writeSync(fd, `\n=== ${new Date().toISOString()} starting ${h.name}: ${nspawn} ${nspawnArgs(h).join(" ")}\n`);
  const script =
    'IFS=:; for d in $BK_CGROUPS; do echo $$ > "$d/cgroup.procs" || { echo "cannot enter cgroup $d" >&2; exit 97; }; done; unset IFS BK_CGROUPS; exec "$@"';
  const child = spawn("/bin/sh", ["-c", script, "sh", nspawn, ...nspawnArgs(h)], {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: { ...process.env, BK_CGROUPS: h.cgroups.join(":") },
  });
  fs.closeSync(fd);
  if (!child.pid) throw new Error(`${h.name}: could not start systemd-nspawn`);
  child.on("error", () => undefined);
  child.unref();
  h.pid = child.pid;
  h.pidStartTime = procStartTime(child.pid) ?? null;
  h.startedAt = new Date().toISOString();
}

export function hostRunning(h: LabHost): boolean {
  if (!processAlive(h.pid, h.pidStartTime)) return false;
  // Still the shell (about to exec) or already nspawn: both are ours. While the shell execs
  // nspawn, /proc/PID/cmdline reads empty for a moment; the process is alive and no zombie
  // (processAlive), so that is ours too. A CI run once failed "exited while booting" here with
  // nothing from nspawn in the console log after the start header.
  const cmd = procCmdline(h.pid as number);
  return cmd.length === 0 || cmd.some((a) => a.endsWith("systemd-nspawn")) || cmd[0] === "/bin/sh";
}

export function sshBaseArgs(st: LabState, timeoutSeconds = 10): string[] {
  return [
    "-F",
    "/dev/null",
    "-i",
    st.privateKey,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    `UserKnownHostsFile=${st.knownHosts}`,
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    `ConnectTimeout=${timeoutSeconds}`,
    "-o",
    "LogLevel=ERROR",
    "-p",
    "22",
  ];
}

function tcpOpen(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: address, port });
    const done = (ok: boolean): void => {
      s.removeAllListeners();
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export async function sshOk(st: LabState, h: LabHost, timeoutSeconds = 5): Promise<{ ok: boolean; error: string }> {
  const r = await run("ssh", [...sshBaseArgs(st, timeoutSeconds), `root@${h.address}`, "true"], {
    timeoutMs: (timeoutSeconds + 5) * 1000,
  });
  return { ok: r.code === 0, error: r.code === 0 ? "" : (r.stderr.trim() || `ssh exit ${r.code}`) };
}

/** Waits until the host's sshd accepts the lab key with strict host key checking. */
export async function waitForSsh(st: LabState, h: LabHost, timeoutMs: number): Promise<number> {
  const t0 = now();
  const deadline = Date.now() + timeoutMs;
  let lastErr = "port 22 not open yet";
  while (Date.now() < deadline) {
    if (!hostRunning(h)) {
      throw new Error(
        `${h.name} (${h.address}): systemd-nspawn exited while booting; see ${h.log}\n--- ${h.log} (tail) ---\n${tailFile(h.log, 20)}`,
      );
    }
    if (await tcpOpen(h.address, 22, 1000)) {
      const r = await sshOk(st, h, 5);
      if (r.ok) return Number(now() - t0) / 1e9;
      lastErr = r.error;
    }
    await sleep(100);
  }
  throw new Error(
    `${h.name} (${h.address}): sshd did not answer within ${Math.round(timeoutMs / 1000)} s (last: ${lastErr}); ` +
      `see its console log ${h.log}; clean up with 'binkube lab down --dir ${st.dir}'\n--- ${h.log} (tail) ---\n${tailFile(h.log, 20)}`,
  );
}

async function waitGone(pid: number, start: number | null, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!processAlive(pid, start)) return true;
    await sleep(100);
  }
  return !processAlive(pid, start);
}

/**
 * Stops the host: SIGTERM to nspawn (clean poweroff of the container), SIGKILL after 10 s, then
 * SIGKILL anything left in its cgroups and remove them. Idempotent.
 */
export async function stopHost(h: LabHost, log: Logger): Promise<void> {
  if (h.pid && hostRunning(h)) {
    const pid = h.pid;
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // already gone
    }
    if (!(await waitGone(pid, h.pidStartTime, 10000))) {
      log(`${h.name}: still running 10 s after SIGTERM; sending SIGKILL`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      await waitGone(pid, h.pidStartTime, 5000);
    }
  }
  for (const d of h.cgroups) {
    for (const p of cgroupProcs(d)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
  await releaseVeth(h);
  // nspawn refuses to rm_rf its propagation dir when /run is not a tmpfs (as here); do it.
  const propagate = path.join("/run/systemd/nspawn/propagate", h.machine);
  if (!h.pid || !processAlive(h.pid, h.pidStartTime)) fs.rmSync(propagate, { recursive: true, force: true });
  const failed = await removeCgroups(h.cgroups);
  if (failed.length > 0) log(`${h.name}: could not remove cgroups: ${failed.join("; ")}`);
  else h.cgroups = [];
  h.pid = null;
  h.pidStartTime = null;
}

/** Unmounts and deletes the host's files (DIR/hosts/NAME). */
export async function removeHostFiles(st: LabState, h: LabHost): Promise<void> {
  await umountUnder(h.rootfs);
  await removeTree(st.dir, h.hostDir);
}

/** nspawn processes whose rootfs lies under DIR/hosts (found even without a lab.json). */
export function strayNspawns(dir: string): { pid: number; rootfs: string }[] {
  const prefix = path.join(dir, "hosts") + "/";
  const out: { pid: number; rootfs: string }[] = [];
  for (const e of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const cmd = procCmdline(Number(e));
    if (!cmd.some((a) => a.endsWith("systemd-nspawn"))) continue;
    const i = cmd.indexOf("-D");
    const root = i >= 0 ? cmd[i + 1] : undefined;
    if (root && root.startsWith(prefix) && processAlive(Number(e))) out.push({ pid: Number(e), rootfs: root });
  }
  return out;
}
