// binkube teardown / binkube reset: take one host back to what it was before binkube deployed
// to it. What is removed comes from the plan (every file every step instance of the host ships,
// every unit those steps run), not from a hand-kept list, so a new step's files go too. One
// script over one SSH session; every command tolerates absence, so a re-run after an
// interrupted teardown finishes the job.
import * as path from "node:path";
import { openBinaries } from "./binaries/source";
import { BinkubeError } from "./errors";
import { loadInventory } from "./inventory/load";
import { forgetHost } from "./inventory/ledger";
import { Host, Inventory, hasRole } from "./inventory/types";
import { Log } from "./log";
import { LeafSource, loadPki } from "./pki/load";
import { Plan, buildPlan } from "./plan";
import { RemoteHost } from "./remote";
import { shq } from "./remote/shell";
import { sshTarget } from "./runner/target";
import { stepByName } from "./steps";
import { ETCD, K8S, SYSTEMD_DIR } from "./steps/files";
import { PREPARE_DIRS } from "./steps/prepare";
import { IMAGES_DIR } from "./steps/runtime-contract";
import { STAGE_PREFIX, TEMP_MARKER } from "./remote/sync";
import { UPLOAD_DIR as RESTORE_UPLOAD_DIR } from "./etcd-restore";
import { SNAPSHOT_DIR } from "./steps/etcd-snapshot";

/** The etcd member's data directory (templates/etcd/etcd.conf.hbs ETCD_DATA_DIR). */
export const ETCD_DATA_DIR = `${ETCD.data}/default.etcd`;
/** Where pods' volumes are mounted (secrets and service-account tokens: tmpfs) and docker's layers. */
const KUBELET_DIR = "/var/lib/kubelet";
const DOCKER_DIR = "/var/lib/docker";
/** containerd's (runtime: containerd): its images and snapshots; and its state, where containers' rootfs are mounted. */
const CONTAINERD_DIR = "/var/lib/containerd";
const CONTAINERD_RUN = "/run/containerd";

/**
 * Data beside etcd's that a teardown deletes in "delete" mode and names when it keeps it.
 * etcd's: the snapshots taken before restarts and by etcd-backup.timer (every Secret each) and
 * the data a restore set aside. A node's: docker's layers, the pods' directories, dockershim's
 * sandbox checkpoints, the containers' logs (kubelet's /var/log/pods, its links in /var/log/containers).
 * /var/lib/etcd-restore (a snapshot a restore uploaded) is not kept in either mode: it holds every
 * Secret and nothing reads it again.
 */
const ETCD_KEPT = [SNAPSHOT_DIR, `${ETCD_DATA_DIR}.before-restore-*`];
const NODE_KEPT = [DOCKER_DIR, CONTAINERD_DIR, KUBELET_DIR, "/var/lib/dockershim", "/var/log/pods", "/var/log/containers"];

/**
 * Written on the host by the steps or by the components themselves, so no PlannedFile names them:
 * the kubelet's certificates from its CSR (--cert-dir) and the kubeconfig its bootstrap wrote, the
 * bootstrap kubeconfig the kubelet step writes over stdin (it holds the join token) and its temp
 * name, the runtime step's image-load markers (ARCHIVE.loaded), the etcd join drop-in and its
 * environment file, the components' logs, the drain step's marks.
 */
const WRITTEN_ON_HOST = [
  `${K8S.ssl}/kubelet-client-*.pem`,
  `${K8S.ssl}/kubelet.crt`,
  `${K8S.ssl}/kubelet.key`,
  `${K8S.cfg}/kubelet.kubeconfig`,
  `${K8S.cfg}/bootstrap.kubeconfig`,
  `${K8S.cfg}/bootstrap.kubeconfig.tmp`,
  `${IMAGES_DIR}/*.loaded`,
  `${ETCD.cfg}/etcd-join.conf`,
  "/etc/systemd/system/*.service.d/10-binkube-*.conf",
];
const WRITTEN_DIRS = ["/opt/kubernetes/logs", "/var/lib/binkube"];
/** docker's own file beside the daemon.json binkube ships: its trust key. */
const DOCKER_WRITTEN = ["/etc/docker/key.json"];
/**
 * What the pod network leaves on a node: the CNI plugins' state (host-local IP reservations of
 * pods that are gone, flannel's saved net configs) and flannel's subnet.env. A new cluster on the
 * host must not inherit them (another pod CIDR: stale reservations, a wrong subnet).
 */
const NETWORK_STATE = ["/var/lib/cni", "/run/flannel"];
/** docker's runtime directory: containers' network namespaces are bind-mounted in netns/. */
const DOCKER_RUN = "/run/docker";
/** Where file sync stages uploads when it goes through sudo (the ssh user's default TMPDIR). */
const STAGE_DIR = "/var/tmp";

/**
 * flannel v0.12 and docker also put rules straight into built-in chains, jumping to no chain of
 * their own (nat POSTROUTING: `-s <podCIDR> -d <podCIDR> -j RETURN`, `-s <podCIDR> ! -d 224.0.0.0/4
 * -j MASQUERADE`, `-s 172.17.0.0/16 ! -o docker0 -j MASQUERADE`; filter FORWARD: `-s/-d <podCIDR>
 * -j ACCEPT`, `-o docker0 … -j ACCEPT`). A rule of these chains with one of these words (the pod
 * network, docker's default bridge network, the interfaces) is deleted by its own text: its
 * `iptables -S` line with -A turned into -D. xargs splits the line as iptables quoted it (a
 * comment with spaces) and runs nothing else, unlike eval.
 */
const RULE_CHAINS = ["nat:POSTROUTING", "filter:FORWARD"];
const DOCKER_NET = "172.17.0.0/16";
function builtinRules(podCIDR: string): string[] {
  const words = [podCIDR, DOCKER_NET, ...INTERFACES].join(" ");
  return [
    `  for tc in ${RULE_CHAINS.join(" ")}; do`,
    '    t=${tc%%:*}; c=${tc#*:}',
    `    iptables -w -t "$t" -S "$c" 2>/dev/null | awk -v words=${shq(words)} 'BEGIN { n = split(words, w, " "); for (i = 1; i <= n; i++) ours[w[i]] = 1 } $1 == "-A" { for (i = 3; i <= NF; i++) if ($i in ours) { sub(/^-A /, "-D "); print; next } }' | while IFS= read -r rule; do`,
    `      printf '%s\\n' "$rule" | xargs iptables -w -t "$t" 2>/dev/null || echo "teardown: iptables -t $t $rule: could not delete it"`,
    "    done",
    "  done",
  ];
}

/** Interfaces the runtime and the CNI create (veths: the host ends of pods' and containers' pairs). */
const INTERFACES = ["cni0", "flannel.1", "docker0"];
/** iptables chains kube-proxy, flannel, the CNI portmap/bridge plugins and docker create. */
const CHAIN_PATTERN = "^(KUBE-|FLANNEL|CNI-|DOCKER)";
const TABLES = ["filter", "nat", "mangle"];
/** ipsets kube-router's NetworkPolicy firewall creates (pkg/controllers/netpol, v1.3.2). */
const KUBE_ROUTER_IPSETS = "^(KUBE-SRC-|KUBE-DST-)";
const BUILTIN_CHAINS = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

export type DataMode = "aside" | "delete";

export interface TeardownPlan {
  host: Host;
  /**
   * systemd units of the host's step instances with their suffix ("kubelet.service",
   * "etcd-backup.timer"), in the order they stop: dependents first, a timer before the job it starts.
   */
  units: string[];
  /** Every path the host's step instances ship, sorted. */
  files: string[];
  data: DataMode;
  /** Where etcd's data goes in "aside" mode. */
  aside: string;
  /** The cluster's pod network (flannel's Network): rules naming it in built-in chains are the cluster's. */
  podCIDR: string;
  /**
   * Every directory binkube ships files to on any host, sorted: an interrupted upload leaves its
   * temp file (`.NAME.binkube-tmp-RANDOM`) there. Every host's, so a host whose roles changed is covered.
   */
  uploadDirs: string[];
}

/** "kubelet" → "kubelet.service"; "etcd-backup.timer" stays (steps name services without the suffix). */
export function unitName(u: string): string {
  return /\.(service|timer|socket|mount|path)$/.test(u) ? u : `${u}.service`;
}

/** BINKUBE_TEARDOWN_DATA=delete deletes the data; anything else (or nothing) keeps etcd's aside. */
export function dataMode(env: NodeJS.ProcessEnv = process.env): DataMode {
  const v = env.BINKUBE_TEARDOWN_DATA;
  if (v === undefined || v === "" || v === "keep") return "aside";
  if (v === "delete") return "delete";
  throw new BinkubeError(`BINKUBE_TEARDOWN_DATA=${v}: expected "delete" (or unset, which keeps etcd's data aside)`);
}

/** The plan of the inventory as it is, rendered as triggers see it (only paths are used: nothing is issued). */
export function planForTeardown(inv: Inventory): Plan {
  return buildPlan({ inv, pki: loadPki(inv), binaries: openBinaries(inv), gone: [], leafIdentity: new LeafSource(inv.pkiDir).identity });
}

/** What tearing `hostName` down removes, from the plan. Undefined when the host is not in the plan's inventory. */
export function teardownPlan(plan: Plan, hostName: string, data: DataMode, now = new Date()): TeardownPlan | undefined {
  const host = plan.inv.hosts.find((h) => h.name === hostName);
  if (!host) return undefined;
  const mine = plan.instances.filter((i) => i.host.name === hostName);
  // Bring-up order reversed: kubelet before docker, the apiserver before etcd, etcd-backup.timer
  // before the etcd-backup.service it starts (a step's jobs listed before its units, then reversed).
  const units = [...new Set(mine.flatMap((i) => {
    const def = stepByName(i.step);
    return [...(def?.jobs ?? []), ...(def?.units ?? [])].map(unitName);
  }))].reverse();
  const files = [...new Set(mine.flatMap((i) => i.files.map((f) => f.path)))].sort();
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const uploadDirs = [...new Set(plan.instances.flatMap((i) => i.files.map((f) => path.posix.dirname(f.path))))].sort();
  return { host, units, files, data, aside: `${ETCD_DATA_DIR}.torn-down-${stamp}`, podCIDR: plan.inv.network.podCIDR, uploadDirs };
}

/** What the teardown does, in order: printed by `binkube reset` without --yes, and for an unreachable host. */
export function describeTeardown(tp: TeardownPlan): string[] {
  const node = runsRuntime(tp);
  return [
    `units stopped and disabled: ${tp.units.join(", ") || "none"}`,
    ...(node
      ? [
          tp.units.includes(CONTAINERD_UNIT)
            ? "containerd's pods removed (crictl rmp -a -f) once the kubelet is stopped, before containerd stops: its shims would outlive it"
            : "docker's containers removed (docker rm -f) once the kubelet is stopped, before docker stops: with live-restore they would outlive it",
          `everything mounted under ${KUBELET_DIR}, ${DOCKER_DIR}, ${CONTAINERD_RUN} and ${CONTAINERD_DIR} unmounted (pods' volumes, the runtime's layers)`,
        ]
      : []),
    `${tp.files.length} files binkube shipped removed (${topDirs(tp.files).join(", ")}), with the unit files and what the steps and components wrote there (kubelet certificates, the bootstrap kubeconfig, image-load markers, logs, interrupted uploads' temp files); directories binkube made go once empty, and what is left in them is named`,
    ...(node ? [`network state removed: ${[...NETWORK_STATE, DOCKER_RUN, CONTAINERD_RUN].join(", ")} (containers' netns unmounted first), /etc/docker/key.json`] : []),
    ...(node
      ? [
          `interfaces ${INTERFACES.join(", ")} and leftover veth* deleted, routes inside ${tp.podCIDR} flushed (host-gw); iptables chains KUBE-*, FLANNEL*, CNI-*, DOCKER* in ${TABLES.join("/")} flushed and deleted with their jumps; the rules flannel and docker put in nat POSTROUTING and filter FORWARD (naming ${tp.podCIDR}, ${DOCKER_NET} or those interfaces) deleted`,
        ]
      : [`no docker, kubelet or pod network here: docker, ${DOCKER_DIR}, interfaces and iptables are left alone`]),
    `${RESTORE_UPLOAD_DIR} (a snapshot a restore uploaded: every Secret) deleted`,
    tp.data === "delete"
      ? `data DELETED: ${[ETCD_DATA_DIR, ...ETCD_KEPT, ...(node ? NODE_KEPT : [])].join(", ")} (BINKUBE_TEARDOWN_DATA=delete)`
      : `etcd data (if any) moved to ${tp.aside}; kept, and named when there: ${[...ETCD_KEPT, ...(node ? NODE_KEPT : [])].join(", ")} (BINKUBE_TEARDOWN_DATA=delete deletes them; the snapshots hold every Secret)`,
  ];
}

/** "/opt/kubernetes", "/usr/lib/systemd/system", …: the directories the files are under, for people. */
function topDirs(files: string[]): string[] {
  return [...new Set(files.map((f) => f.split("/").slice(0, 3).join("/")))].sort();
}

/**
 * The trees binkube creates for itself (prepare.ts on every host; /etc/docker with daemon.json).
 * Directories go only when empty and only inside these: /usr/lib/systemd/system or /etc/sysctl.d
 * are the system's, even empty.
 */
const OWN_TREES = ["/opt/kubernetes", "/opt/etcd", "/opt/cni", "/etc/cni", "/etc/docker", "/etc/containerd"];

/**
 * Directories inside binkube's own trees that the files (shipped or written there) leave behind, and the ones prepare made
 * on every host whatever its roles (/opt/etcd/bin on a node, /opt/kubernetes/manifests), deepest
 * first, the trees themselves last.
 */
function leftDirs(files: string[]): string[] {
  const dirs = new Set<string>();
  const own = (d: string) => OWN_TREES.some((t) => d === t || d.startsWith(`${t}/`));
  for (const f of [...files, ...WRITTEN_ON_HOST, ...PREPARE_DIRS.map((d) => `${d}/-`)]) for (let d = path.posix.dirname(f); own(d); d = path.posix.dirname(d)) dirs.add(d);
  return [...dirs].sort((a, b) => b.split("/").length - a.split("/").length || a.localeCompare(b));
}

/** The own trees that exist, with what they still hold: shipped for an earlier inventory, or not binkube's. */
function reportLeft(trees: string[]): string[] {
  return trees.map(
    (t) =>
      `if [ -e "$R"${shq(t)} ]; then echo "teardown: kept ${t}: it holds what the plan does not name: $(cd "$R"${shq(t)} && find . ! -type d | head -n 5 | sed 's|^\\./||' | tr '\\n' ' ')(shipped for an earlier inventory, or not binkube's)"; fi`,
  );
}

const DOCKER_UNIT = "docker.service";
const CONTAINERD_UNIT = "containerd.service";
/** Seconds `docker rm -f` of every container may take by default (then docker is stopped anyway). */
const CONTAINER_REMOVAL_S = 180;

/**
 * docker runs with live-restore (daemon.json) and KillMode=process (its unit): stopping it leaves
 * every container running (flannel re-adding its iptables rules, pods' mounts busy). So once the
 * kubelet is stopped (nothing restarts them), every container is removed while docker still
 * answers, bounded by `timeout` (it kills the whole process group).
 */
function removeContainers(seconds: number): string[] {
  return [
    `if ids=$(timeout -k 5 60 docker ps -aq 2>/dev/null) && [ -n "$ids" ]; then`,
    `  if printf '%s\\n' $ids | timeout -k 10 ${seconds} xargs -r docker rm -f >/dev/null 2>&1; then echo "teardown: $(printf '%s\\n' $ids | wc -l | tr -d ' ') containers removed"`,
    `  else echo "teardown: docker rm -f of the containers failed or took over ${seconds} s: docker is stopped anyway, and live-restore leaves what was not removed running"; fi`,
    "fi",
  ];
}

/**
 * containerd's unit has KillMode=process (a restart leaves containers running): once the kubelet
 * is stopped, every pod (its sandbox and containers) is stopped and removed through the CRI while
 * containerd still answers, bounded by `timeout`.
 */
function removePods(seconds: number): string[] {
  return [
    `if command -v crictl >/dev/null 2>&1; then`,
    `  if timeout -k 10 ${seconds} crictl rmp -a -f >/dev/null 2>&1; then echo "teardown: every pod removed (crictl rmp -a -f)"`,
    `  else echo "teardown: crictl rmp -a -f failed or took over ${seconds} s: containerd is stopped anyway, and containers it did not remove keep running"; fi`,
    "fi",
  ];
}

/**
 * After docker stopped: a containerd-shim still running is a container docker left (its mounts
 * stay busy), a containerd the one dockerd started. Said, not killed: `ps` on the host tells whose.
 */
function reportShims(): string[] {
  return [`left=$(echo $(pgrep -x 'containerd|containerd-shim' 2>/dev/null)); if [ -n "$left" ]; then echo "teardown: containerd/containerd-shim still running after the runtime stopped (pids $left; see ps -ef): containers it did not remove"; fi`];
}

/**
 * Whether binkube ran docker, the kubelet and the pod network on the host (the runtime step's
 * hosts are the kubelet's). On an etcd member alone none of it is binkube's: a docker, its
 * /var/lib/docker, docker0 or iptables rules there belong to someone else and are left alone.
 */
export function runsRuntime(tp: TeardownPlan): boolean {
  return tp.units.includes(DOCKER_UNIT) || tp.units.includes(CONTAINERD_UNIT);
}

/** 4. and 5.: interfaces and iptables (hosts that ran the pod network). */
function network(tp: TeardownPlan): string[] {
  return [
    "# 4. network: the bridges, flannel's VXLAN device, the veths left of pods and containers; the CNI's and flannel's state; docker's netns",
    ...INTERFACES.map((i) => `ip link delete ${shq(i)} 2>/dev/null || true`),
    // flannel's host-gw backend routes each other node's pod subnet via that node (vxlan's went
    // with flannel.1). Only routes inside the pod network: no host address is in it (inventory check).
    `ip -4 route flush root ${shq(tp.podCIDR)} 2>/dev/null || true`,
    ...NETWORK_STATE.map((d) => `rm -rf --one-file-system ${`"$R"${shq(d)}`}`),
    `if [ "$run_clear" = 1 ]; then rm -rf --one-file-system ${`"$R"${shq(DOCKER_RUN)}`}; else echo "teardown: ${DOCKER_RUN} kept: something is still mounted there"; fi`,
    `if [ "$crun_clear" = 1 ]; then rm -rf --one-file-system ${`"$R"${shq(CONTAINERD_RUN)}`}; else echo "teardown: ${CONTAINERD_RUN} kept: something is still mounted there"; fi`,
    `for v in $(ip -o link show type veth 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | grep '^veth'); do ip link delete "$v" 2>/dev/null || true; done`,
    "# 5. iptables: jumps from the built-in chains first, then every chain flushed, then deleted; then flannel's and docker's own rules in built-in chains",
    "if command -v iptables >/dev/null 2>&1; then",
    `  for t in ${TABLES.join(" ")}; do`,
    `    for c in ${BUILTIN_CHAINS.join(" ")}; do`,
    `      for n in $(iptables -w -t "$t" -L "$c" -n --line-numbers 2>/dev/null | awk 'NR > 2 && $2 ~ /${CHAIN_PATTERN}/ { print $1 }' | sort -rn); do`,
    '        iptables -w -t "$t" -D "$c" "$n" 2>/dev/null || true',
    "      done",
    "    done",
    `    chains=$(iptables -w -t "$t" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /${CHAIN_PATTERN}/ { print $2 }')`,
    '    for c in $chains; do iptables -w -t "$t" -F "$c" 2>/dev/null || true; done',
    '    for c in $chains; do iptables -w -t "$t" -X "$c" 2>/dev/null || true; done',
    "  done",
    ...builtinRules(tp.podCIDR),
    "fi",
    // kube-router's NetworkPolicy sets (KUBE-SRC-/KUBE-DST-, its own prefixes), free once no rule
    // names them. Its image carries the ipset command; a host without one keeps them (kernel
    // memory only, nothing matches them any more) and says so.
    `if command -v ipset >/dev/null 2>&1; then for s in $(ipset list -n 2>/dev/null | grep -E '${KUBE_ROUTER_IPSETS}'); do ipset destroy "$s" 2>/dev/null || echo "teardown: ipset $s: could not destroy it"; done`,
    `else echo "teardown: no ipset command here: kube-router's ipsets, if any, stay until a reboot (no rule names them any more)"; fi`,
  ];
}

/**
 * The script that tears the host down, for `sh` as root. `root` prefixes every path (tests run
 * it in a temp dir); on a host it is "". `containerRemovalS` bounds the removal of docker's
 * containers (tests shorten it). Ends with "teardown: done" on stdout; exits non-zero
 * only when a mount under a directory to delete would not go (deleting through it could reach
 * whatever is mounted there).
 */
export function teardownScript(tp: TeardownPlan, opts: { root?: string; containerRemovalS?: number } = {}): string {
  const node = runsRuntime(tp);
  const q = (p: string) => `"$R"${shq(p)}`;
  // A glob must stay outside quotes to expand.
  const glob = (p: string) => `"$R"${p}`;
  const unitFiles = tp.units.map((u) => `${SYSTEMD_DIR}/${u}`);
  const files = [...new Set([...tp.files, ...unitFiles])].sort();
  const lines = [
    "set -u",
    `R=${shq(opts.root ?? "")}`,
    "rc=0",
    "# 1. every unit of the host's steps stopped and disabled, dependents first; docker's containers removed before docker stops",
    ...tp.units.flatMap((u) => [
      ...(u === DOCKER_UNIT ? removeContainers(opts.containerRemovalS ?? CONTAINER_REMOVAL_S) : []),
      ...(u === CONTAINERD_UNIT ? removePods(opts.containerRemovalS ?? CONTAINER_REMOVAL_S) : []),
      // stop on its own too: disable fails once the unit file is gone (a re-run), and --now with it
      `systemctl disable --now ${shq(u)} >/dev/null 2>&1 || systemctl stop ${shq(u)} >/dev/null 2>&1 || true`,
      ...(u === DOCKER_UNIT || u === CONTAINERD_UNIT ? reportShims() : []),
    ]),
    ...tp.units.map((u) => `systemctl reset-failed ${shq(u)} >/dev/null 2>&1 || true`),
    "# 2. pods' volumes (secrets: tmpfs) and docker's layers unmounted, deepest first, before anything there is removed",
    "# (below the directory only: the directory itself may be the operator's own disk, kept mounted)",
    "unmount_under() {",
    `  for m in $(awk -v p="$1" 'index($2, p "/") == 1 { print $2 }' "$R"/proc/mounts 2>/dev/null | sort -r); do`,
    '    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true',
    "  done",
    `  if awk -v p="$1" 'index($2, p "/") == 1 { found = 1 } END { exit !found }' "$R"/proc/mounts 2>/dev/null; then`,
    '    echo "teardown: still mounted under $1 (see /proc/mounts)"; return 1',
    "  fi",
    "}",
    ...(node
      ? [
          `kubelet_clear=0; unmount_under "$R"${shq(KUBELET_DIR)} && kubelet_clear=1`,
          `docker_clear=0; unmount_under "$R"${shq(DOCKER_DIR)} && docker_clear=1`,
          // containers' network namespaces (nsfs bind mounts in /run/docker/netns)
          `run_clear=0; unmount_under "$R"${shq(DOCKER_RUN)} && run_clear=1`,
          // containerd's (runtime: containerd): containers' rootfs and sandboxes' shm under its state
          `crun_clear=0; unmount_under "$R"${shq(CONTAINERD_RUN)} && crun_clear=1`,
          `containerd_clear=0; unmount_under "$R"${shq(CONTAINERD_DIR)} && containerd_clear=1`,
        ]
      : ["# (no kubelet or docker here: binkube did not run them on this host)"]),
    "# 3. every file binkube shipped (from the plan), the unit files, and what the components wrote beside them",
    ...files.map((f) => `rm -f ${q(f)}`),
    ...WRITTEN_ON_HOST.map((f) => `rm -f ${glob(f)}`),
    ...WRITTEN_DIRS.map((d) => `rm -rf --one-file-system ${q(d)}`),
    ...(node ? DOCKER_WRITTEN.map((f) => `rm -f ${q(f)}`) : []),
    // interrupted uploads: temp files beside their targets, and sudo's staging directories
    ...tp.uploadDirs.map((d) => `rm -f ${q(d)}/${shq(".")}*${shq(TEMP_MARKER)}*`),
    `rm -rf ${q(STAGE_DIR)}/${shq(STAGE_PREFIX)}*`,
    // what `systemctl enable` linked (WantedBy=), should the disable above have failed; a
    // Persistent= timer's record of its last run
    ...tp.units.map((u) => `rm -f ${glob(`/etc/systemd/system/*.wants/${u}`)}`),
    ...tp.units.filter((u) => u.endsWith(".timer")).map((u) => `rm -f ${q(`/var/lib/systemd/timers/stamp-${u}`)}`),
    ...tp.units.map((u) => `rmdir ${q(`/etc/systemd/system/${u}.d`)} 2>/dev/null || true`),
    ...leftDirs(files).map((d) => `rmdir ${q(d)} 2>/dev/null || true`),
    ...reportLeft(OWN_TREES),
    ...(node ? network(tp) : ["# 4., 5. (no pod network here: no kubelet, docker, flannel or kube-proxy ran on this host)"]),
    "# 6. data: a restore's uploaded snapshot always goes (every Secret, never read again), so do half-written scheduled snapshots",
    `rm -rf --one-file-system ${q(RESTORE_UPLOAD_DIR)}`,
    `rm -f ${q(SNAPSHOT_DIR)}/.*.tmp ${q(SNAPSHOT_DIR)}/.*.tmp.part`,
    ...(tp.data === "delete"
      ? [
          `rm -rf --one-file-system ${q(ETCD_DATA_DIR)} ${ETCD_KEPT.map(glob).join(" ")}`,
          ...(node
            ? [
                `if [ "$docker_clear" = 1 ]; then rm -rf --one-file-system ${q(DOCKER_DIR)}; else echo "teardown: ${DOCKER_DIR} NOT deleted: something is still mounted there"; rc=1; fi`,
                `if [ "$containerd_clear" = 1 ]; then rm -rf --one-file-system ${q(CONTAINERD_DIR)}; else echo "teardown: ${CONTAINERD_DIR} NOT deleted: something is still mounted there"; rc=1; fi`,
                `if [ "$kubelet_clear" = 1 ]; then rm -rf --one-file-system ${q(KUBELET_DIR)}; else echo "teardown: ${KUBELET_DIR} NOT deleted: something is still mounted there"; rc=1; fi`,
                `rm -rf --one-file-system ${NODE_KEPT.filter((d) => d !== DOCKER_DIR && d !== CONTAINERD_DIR && d !== KUBELET_DIR).map(q).join(" ")}`,
              ]
            : []),
          `echo "teardown: data deleted: ${[ETCD_DATA_DIR, ...ETCD_KEPT, ...(node ? NODE_KEPT : [])].join(", ")}"`,
        ]
      : [
          `if [ -d ${q(ETCD_DATA_DIR)} ]; then mv ${q(ETCD_DATA_DIR)} ${q(tp.aside)} && echo "teardown: etcd data kept at ${tp.aside}"; fi`,
          // named, so whoever reads the output knows what is still there (BINKUBE_TEARDOWN_DATA=delete deletes it)
          `for d in ${[...ETCD_KEPT, ...(node ? NODE_KEPT : [])].map(glob).join(" ")}; do if [ -e "$d" ]; then echo "teardown: kept \${d#"$R"}"; fi; done`,
        ]),
    // prepare made it on every host; it holds what was set aside, if anything
    `rmdir ${q(ETCD.data)} 2>/dev/null || true`,
    "systemctl daemon-reload >/dev/null 2>&1 || true",
    'if [ "$rc" = 0 ]; then echo "teardown: done"; fi',
    'exit "$rc"',
  ];
  return lines.join("\n") + "\n";
}

/** Runs the script on the host. An unreachable host throws, saying what is left there. */
export async function runTeardown(inv: Inventory, tp: TeardownPlan, log: Log): Promise<string[]> {
  let conn: RemoteHost;
  try {
    conn = await RemoteHost.connect(sshTarget(tp.host), { log, retries: 1 });
  } catch (e) {
    const why = (e as Error).message.split("\n")[0]!;
    throw new BinkubeError(
      [
        `teardown of ${tp.host.name}: cannot reach it (${why}). Nothing was changed there; it still has everything binkube deployed:`,
        ...describeTeardown(tp).map((l) => `  not done: ${l}`),
        `Fix: bring ${tp.host.name} back and run \`npx cdktf destroy\` again (it retries this host), or \`binkube reset --host ${tp.host.name} --yes\`; or wipe the machine. It stays in .binkube/hosts.json until then.`,
      ].join("\n"),
    );
  }
  try {
    // docker ps and rm -f of every container alone may take 4 minutes (removeContainers)
    const r = await conn.exec(teardownScript(tp), { allowFail: true, timeoutMs: 600_000 });
    const said = r.stdout.split("\n").filter((l) => l.startsWith("teardown: ")).map((l) => l.slice("teardown: ".length));
    if (r.code !== 0) throw new BinkubeError(`teardown of ${tp.host.name}: the script exited ${r.code} (${[...said, r.stderr.trim().split("\n").pop() ?? ""].filter(Boolean).join("; ")}). Fix: see what is still mounted (findmnt) on ${tp.host.name}, then re-run; every part tolerates what is already gone`);
    forgetHost(inv, tp.host.name);
    return said;
  } finally {
    await conn.close();
  }
}

export interface TeardownOptions {
  /** `binkube reset`: outside Terraform, only with `yes`. */
  reset?: { yes: boolean };
  env?: NodeJS.ProcessEnv;
}

/** `binkube teardown --host NAME` (Terraform's destroy provisioner) and `binkube reset --host NAME`. */
export async function teardownCommand(configFile: string, hostName: string, say: Log, opts: TeardownOptions = {}): Promise<number> {
  const cmd = opts.reset ? "reset" : "teardown";
  const { inventory: inv } = loadInventory(configFile);
  const data = dataMode(opts.env);
  if (!inv.hosts.some((h) => h.name === hostName)) {
    if (!opts.reset) {
      say(`teardown: ${hostName} is not in the inventory: that is a host removal, which the plan's remove step does (drain, etcd member removal, units stopped); nothing to do here`);
      return 0;
    }
    throw new BinkubeError(`reset: ${hostName} is not in ${inv.file}: its roles decide what binkube shipped there, so what to remove is unknown. Fix: add it back with its roles for the reset, or wipe the machine`);
  }
  const tp = teardownPlan(planForTeardown(inv), hostName, data)!;
  if (opts.reset) {
    say(`reset ${hostName}:`);
    for (const l of describeTeardown(tp)) say(`  ${l}`);
    say(`WARNING: ${hostName} is still in the inventory, so Terraform's state still records it as deployed: after the reset, \`npx binkube repair\` (or \`npx cdktf deploy\` with -replace of its resources) deploys it again, \`npx cdktf destroy\` tears down the whole cluster`);
    if (hasRole(tp.host, "etcd")) say(`WARNING: ${hostName} stays a member of the etcd cluster, its data set aside; in a cluster of several members, remove it from the inventory and deploy first (member remove), then reset it and add it back (docs/day2.md, "Tearing down")`);
    if (!opts.reset.yes) {
      say("reset: nothing done. Re-run with --yes to tear the host down");
      return 1;
    }
  }
  const said = await runTeardown(inv, tp, say);
  for (const l of said) say(`${cmd} ${hostName}: ${l}`);
  say(`${cmd} ${hostName}: forgotten in .binkube/hosts.json (a next deploy treats it as new); pki/ is kept`);
  return 0;
}
