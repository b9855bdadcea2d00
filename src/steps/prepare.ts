// prepare: kernel modules and sysctls every host needs; preflight checks run here at deploy time.
import { hasRole, runsKubelet } from "../inventory/types";
import { GateError } from "../util/wait";
import { ETCD, ETCD_USER, K8S, templated } from "./files";
import { StepDef, RunContext } from "./types";

/** The directories prepare creates on every host, whatever its roles (the teardown removes them again once empty). */
export const PREPARE_DIRS = [ETCD.bin, ETCD.cfg, ETCD.ssl, K8S.bin, K8S.cfg, K8S.ssl, K8S.manifests, "/opt/cni/bin", "/etc/cni/net.d", "/usr/lib/systemd/system"];
/** The same, 0700: etcd's data and the components' logs (the audit log among them). */
export const PREPARE_PRIVATE_DIRS = [ETCD.data, "/opt/kubernetes/logs"];

/** Allowed clock difference: certificates are backdated 5 minutes. */
const MAX_SKEW_S = 120;

const PROBE = [
  "echo systemd=$(test -d /run/systemd/system && echo yes || echo no)",
  "echo cgroupfs=$(stat -fc %T /sys/fs/cgroup/ 2>/dev/null)",
  "echo swap=$(swapon --noheadings --show=NAME 2>/dev/null | tr '\\n' ' ')",
  "echo now=$(date +%s)",
  "echo iptables=$(command -v iptables >/dev/null && echo yes || echo no)",
  // docker's images and kubelet's pods live under /var/lib: total and available 1K blocks.
  "echo disk=$(df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print $2, $4}')",
].join("; ");

/** kubelet v1.17 defaults: evict below 15% free imagefs, delete unused images above 85% used. */
const KUBELET_MIN_FREE_PERCENT = 15;

/**
 * Below kubelet's default thresholds a node evicts its pods and deletes unused images, preloaded
 * ones included, right after it starts. Unless the operator chose thresholds (kubelet.extraArgs),
 * refuse now with the numbers rather than fail later as pods that cannot find their image.
 */
export function diskProblem(rc: Pick<RunContext, "inv">, df: string): string | undefined {
  const args = rc.inv.kubelet.extraArgs;
  if (args["eviction-hard"] !== undefined || args["image-gc-high-threshold"] !== undefined) return undefined;
  const [total, avail] = df.split(" ").map(Number) as [number, number];
  if (!(total > 0) || !Number.isFinite(avail)) return undefined;
  const free = (100 * avail) / total;
  if (free >= KUBELET_MIN_FREE_PERCENT) return undefined;
  const gib = (k: number) => (k / 1024 / 1024).toFixed(1);
  return `/var/lib has ${free.toFixed(1)}% free (${gib(avail)} of ${gib(total)} GiB); kubelet's defaults evict pods below ${KUBELET_MIN_FREE_PERCENT}% free and delete unused images (preloaded ones too) above ${100 - KUBELET_MIN_FREE_PERCENT}% used: free space, or choose thresholds in kubelet.extraArgs (eviction-hard, image-gc-high-threshold)`;
}

async function preflight(rc: RunContext): Promise<string[]> {
  const node = runsKubelet(rc.host);
  const before = Math.floor(Date.now() / 1000);
  const out = (await rc.sh(PROBE)).stdout;
  const v = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(out)?.[1]?.trim() ?? "";
  const problems: string[] = [];
  if (v("systemd") !== "yes") problems.push("systemd is not running as init (/run/systemd/system missing): binkube manages services with systemd");
  if (node && v("cgroupfs") === "cgroup2fs") problems.push("the host boots the unified cgroup v2 hierarchy; kubelet v1.17 needs cgroup v1: add systemd.unified_cgroup_hierarchy=0 to the kernel command line and reboot");
  if (node && rc.inv.kubelet.failSwapOn && v("swap")) problems.push(`swap is on (${v("swap")}); kubelet v1.17 refuses to run with swap: swapoff -a and remove swap from /etc/fstab (or set kubelet.failSwapOn: false)`);
  if (node && v("iptables") !== "yes") problems.push("iptables is missing; docker and kube-proxy need it: apt-get install iptables");
  const disk = node ? diskProblem(rc, v("disk")) : undefined;
  if (disk) problems.push(disk);
  const skew = Number(v("now")) - before;
  if (Number.isFinite(skew) && Math.abs(skew) > MAX_SKEW_S) problems.push(`the clock is ${skew} s off this machine's; TLS certificates will be rejected: sync time (chrony/systemd-timesyncd)`);
  return problems;
}

async function runPrepare(rc: RunContext): Promise<string> {
  const problems = await preflight(rc);
  if (problems.length > 0) throw new GateError(`preflight failed:\n  - ${problems.join("\n  - ")}`);
  await rc.sh(`mkdir -p ${PREPARE_DIRS.join(" ")} && mkdir -p -m 0700 ${PREPARE_PRIVATE_DIRS.join(" ")}`);
  // etcd runs as a system user of its own (no login, no home of its own beyond the data dir).
  if (hasRole(rc.host, "etcd")) await rc.sh(`id -u ${ETCD_USER} >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/etcd --no-create-home --shell /usr/sbin/nologin ${ETCD_USER}`);
  const sync = await rc.sync();
  // Modules and sysctls may be fixed by the kernel or a container runtime: apply what we can,
  // then check what a node really needs.
  await rc.sh("modprobe br_netfilter 2>/dev/null; modprobe overlay 2>/dev/null; sysctl -q -p /etc/sysctl.d/99-kubernetes.conf 2>/dev/null; true");
  if (runsKubelet(rc.host)) {
    const r = await rc.sh("cat /proc/sys/net/ipv4/ip_forward; cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo missing");
    const [fwd, bridge] = r.stdout.trim().split("\n");
    if (fwd !== "1") throw new GateError("net.ipv4.ip_forward is not 1 after applying /etc/sysctl.d/99-kubernetes.conf: pods on different nodes cannot reach each other");
    if (bridge === "missing") rc.warn(`br_netfilter is not loaded (no /proc/sys/net/bridge); kube-proxy needs it for pod-to-service traffic on the same bridge`);
    // kubelet's protectKernelDefaults: name a wrong value here rather than as a kubelet crash loop.
    const keys = Object.keys(KUBELET_KERNEL_DEFAULTS);
    const got = (await rc.sh(keys.map((k) => `cat /proc/sys/${k.replace(/\./g, "/")} 2>/dev/null || echo missing`).join("; "))).stdout.trim().split("\n");
    const wrong = keys.flatMap((k, i) => (got[i]?.trim() === KUBELET_KERNEL_DEFAULTS[k] ? [] : [`${k} = ${got[i]?.trim()} (kubelet needs ${KUBELET_KERNEL_DEFAULTS[k]})`]));
    if (wrong.length > 0) throw new GateError(`kernel settings kubelet's protectKernelDefaults refuses: ${wrong.join(", ")}; /etc/sysctl.d/99-kubernetes.conf sets them, but the kernel did not take them. Fix: sysctl -w them (or find what resets them) and re-run`);
  }
  return `preflight ok, ${sync.changed.length} files changed`;
}

/** What kubelet v1.17 requires of the kernel (cm/container_manager_linux.go setupKernelTunables). */
const KUBELET_KERNEL_DEFAULTS: Record<string, string> = {
  "vm.overcommit_memory": "1",
  "vm.panic_on_oom": "0",
  "kernel.panic": "10",
  "kernel.panic_on_oops": "1",
  "kernel.keys.root_maxkeys": "1000000",
  "kernel.keys.root_maxbytes": "25000000",
};

export const prepare: StepDef = {
  name: "prepare",
  scope: "host",
  description: "preflight checks, kernel modules, sysctls, directories",
  hosts: (inv) => inv.hosts,
  deps: [],
  group: "host-setup",
  run: runPrepare,
  files: () => [
    templated("/etc/modules-load.d/kubernetes.conf", "prepare/modules-kubernetes.conf", {}),
    templated("/etc/sysctl.d/99-kubernetes.conf", "prepare/sysctl-kubernetes.conf", {}),
  ],
};
