// cluster:, kubernetes:, etcd:: the cluster's name and the releases it runs, with etcd's backup schedule.
import { calendarEvent, shown, DNS_LABEL } from "../grammar";
import type { Obj, Reader } from "../reader";
import type { Inventory } from "../types";

const DEFAULT_KUBERNETES_VERSION = "v1.17.17";
const DEFAULT_ETCD_VERSION = "v3.4.3";
/** The last v1.17 patch release (v1.17.17, 2021-01-13): a later "v1.17.N" was never published. */
const LAST_1_17_PATCH = 17;

/** cluster.name: a DNS label (it names the state, kubeconfig contexts and lab resources). */
export function readCluster(r: Reader, raw: Obj): string {
  const cluster = r.section(raw, "cluster", "");
  r.known(cluster, ["name"], "cluster");
  const clusterName = r.str(cluster, "name", "cluster", "kubernetes");
  if (!DNS_LABEL.test(clusterName)) r.error("cluster.name", `"${clusterName}" is not a DNS label`, "use lower-case letters, digits and '-'");
  return clusterName;
}

/** kubernetes.version: a v1.17 patch release that exists. */
export function readKubernetes(r: Reader, raw: Obj): string {
  const k8s = r.section(raw, "kubernetes", "");
  r.known(k8s, ["version"], "kubernetes");
  const kubernetesVersion = r.str(k8s, "version", "kubernetes", DEFAULT_KUBERNETES_VERSION);
  const patch = /^v1\.17\.(0|[1-9]\d*)$/.exec(kubernetesVersion);
  if (!patch) r.error("kubernetes.version", `"${kubernetesVersion}" is not a v1.17 release`, "binkube installs Kubernetes v1.17 only: use e.g. v1.17.17");
  else if (Number(patch[1]) > LAST_1_17_PATCH) r.error("kubernetes.version", `${kubernetesVersion} was never released (v1.17 ended at v1.17.${LAST_1_17_PATCH})`, `use v1.17.${LAST_1_17_PATCH}`);
  return kubernetesVersion;
}

/** etcd.version (a v3.4 release) and etcd.backup. */
export function readEtcd(r: Reader, raw: Obj): Pick<Inventory, "etcdVersion" | "etcdBackup"> {
  const etcd = r.section(raw, "etcd", "");
  r.known(etcd, ["version", "backup"], "etcd");
  const etcdVersion = r.str(etcd, "version", "etcd", DEFAULT_ETCD_VERSION);
  // Scheduled snapshots on every member (steps/etcd-backup.ts): a cluster that runs for months
  // without a binkube change still has a recent backup. Daily and 7 kept by default.
  const eb = r.section(etcd, "backup", "etcd");
  r.known(eb, ["schedule", "keep"], "etcd.backup");
  const etcdBackup = { schedule: r.str(eb, "schedule", "etcd.backup", "daily"), keep: r.int(eb, "keep", "etcd.backup", 7, 1, 1000) };
  const badSchedule = calendarEvent(etcdBackup.schedule);
  if (badSchedule) r.error("etcd.backup.schedule", `"${shown(etcdBackup.schedule)}" ${badSchedule}`, 'give a systemd calendar event (systemd.time(7)): daily, hourly, or e.g. "*-*-* 02:30:00"');
  if (!/^v3\.4\.\d+$/.test(etcdVersion)) r.error("etcd.version", `"${etcdVersion}" is not an etcd v3.4 release`, "Kubernetes v1.17 is validated with etcd v3.4.x: use e.g. v3.4.3");
  return { etcdVersion, etcdBackup };
}
