// Constants and locations of the lab. Everything a reader may want to change is here.
import * as path from "node:path";
import { PACKAGE_ROOT } from "../src/paths";

/** Debian suite of the base rootfs. */
export const SUITE = "bookworm";

/**
 * Packages in the base rootfs. The first line is what a booting, ssh-able systemd host needs;
 * the rest is what the etcd/docker/kubelet/kube-proxy steps will want later (all small, from
 * Debian main). Nothing is ever installed inside a host at run time.
 */
export const BASE_PACKAGES: readonly string[] = [
  "systemd", "systemd-sysv", "openssh-server", "dbus", "iproute2", "iputils-ping", "procps",
  "ca-certificates", "netbase",
  "iptables", "kmod", "conntrack", "socat", "ethtool", "ebtables", "ipset", "curl",
  "xz-utils", "less", "sudo",
];

/** Bump when the base customization changes so an old cache is rebuilt. */
export const BASE_REVISION = 3;

/**
 * Lab-only runc wrapper (drops CAP_SYS_RESOURCE, clamps a negative oomScoreAdj; see the file),
 * installed in the base as /usr/local/sbin/runc: dockerd finds it before /usr/bin/runc on
 * systemd's default PATH. Its content is part of the base's inputs hash.
 */
export const RUNC_WRAPPER_SOURCE = path.join(PACKAGE_ROOT, "lab", "runc-wrapper.sh");
export const RUNC_WRAPPER_PATH = "usr/local/sbin/runc";

/** Lab network: one /24 on one bridge; a blackhole for the wider range keeps traffic here. */
export const BRIDGE = "bkbr0";
export const SUBNET_PREFIX = "10.250.213";
export const SUBNET = `${SUBNET_PREFIX}.0/24`;
export const PREFIX_LEN = 24;
export const GATEWAY = `${SUBNET_PREFIX}.1`;
export const BLACKHOLE = "10.250.0.0/16";
/** Preference of the `ip rule` that drops anything the machine would forward from the bridge. */
export const RULE_PREF = 21300;

/**
 * Several labs (different --dir) can run at once on one machine. Each gets a slot; slot S uses
 * addresses .(11 + 20*S) … .(29 + 20*S). Slot 0 is the usual one: lab1 = .11, lab2 = .12, …
 */
export const MAX_SLOTS = 12;
export const MAX_HOSTS = 19;

export function hostAddress(slot: number, index: number): string {
  return `${SUBNET_PREFIX}.${10 + 20 * slot + index}`;
}

export function hostName(index: number): string {
  return `lab${index}`;
}

/** nspawn machine name (also gives the host-side veth `vb-NAME`): unique across slots. */
export function machineName(slot: number, index: number): string {
  return slot === 0 ? hostName(index) : `${hostName(index)}-${slot}`;
}

export function rolesFor(index: number): string[] {
  if (index === 1) return ["etcd", "master", "node"];
  if (index <= 3) return ["etcd", "node"];
  return ["node"];
}

/** Cache of the base rootfs. BINKUBE_LAB_CACHE replaces /var/cache/binkube/lab. */
export function cacheDir(): string {
  return path.resolve(process.env.BINKUBE_LAB_CACHE || "/var/cache/binkube/lab");
}

export function baseRootfsDir(): string {
  return path.join(cacheDir(), `rootfs-${SUITE}`);
}

/** Machine-wide run state (lock + which lab dir owns which slot). */
export function runDir(): string {
  return path.resolve(process.env.BINKUBE_LAB_RUN || "/run/binkube/lab");
}

/** Lab dir: --dir, else BINKUBE_LAB_DIR, else ./.lab */
export function labDir(dir?: string): string {
  return path.resolve(dir || process.env.BINKUBE_LAB_DIR || ".lab");
}

export function bootTimeoutMs(): number {
  const s = Number(process.env.BINKUBE_LAB_BOOT_TIMEOUT || "90");
  return (Number.isFinite(s) && s > 0 ? s : 90) * 1000;
}

/** Where a v1 hierarchy (or the unified one) gets our per-host cgroups, below our own cgroup. */
export const CGROUP_GROUP = "binkube-lab";
