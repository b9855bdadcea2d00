// The validated, normalized inventory: every default applied, every path absolute.

export const ROLES = ["etcd", "master", "node"] as const;
export type Role = (typeof ROLES)[number];

export const ENGINES = ["terraform_data", "null_resource"] as const;
export type Engine = (typeof ENGINES)[number];
/** The container runtimes `runtime:` may name (steps/runtime-contract.ts: what each means to the kubelet). */
export const RUNTIMES = ["docker", "containerd"] as const;

export interface SshSettings {
  user: string;
  port: number;
  /** Absolute path of the private key. Required to deploy: binkube does not use ssh-agent (runner/target.ts refuses without one). */
  privateKey?: string;
  /** Absolute path of an OpenSSH known_hosts file. */
  knownHosts?: string;
  /** Pinned host key fingerprints ("SHA256:…"), an alternative to knownHosts. */
  hostKeyFingerprints: string[];
  sudo: boolean;
  bastion?: { address: string; port: number; user: string; privateKey?: string };
}

export interface Host {
  name: string;
  address: string;
  roles: Role[];
  ssh: SshSettings;
  /** Extra node labels applied by the kubelet step (not validated beyond syntax). */
  labels: Record<string, string>;
}

/** A downloadable artifact: a single binary or an archive whose members become binaries. */
export interface BinaryUrl {
  url: string;
  sha256?: string;
  sha512?: string;
  /** For archives: binary name → path inside the archive. Absent: the URL is the binary itself, named `name`. */
  files?: Record<string, string>;
  name?: string;
}

export interface BinarySource {
  /** Absolute directory holding the binaries by name (etcd, kube-apiserver, …, cni/<plugin>). */
  dir?: string;
  urls: BinaryUrl[];
  /** Absolute directory where downloaded artifacts are cached. */
  cacheDir: string;
}

export interface Images {
  pause: string;
  flannel: string;
  coredns: string;
  metricsServer: string;
  /** kube-router, run with its NetworkPolicy firewall only (addons.networkPolicy). */
  kubeRouter: string;
  /** Image archives (docker save output), absolute paths, loaded on every node before kubelet starts. */
  preload: string[];
}

export interface Inventory {
  /** Absolute path of the inventory file and its directory. */
  file: string;
  baseDir: string;
  pkiDir: string;
  clusterName: string;
  kubernetesVersion: string;
  etcdVersion: string;
  /** Scheduled snapshots on the members: an OnCalendar= event and how many to keep on each. */
  etcdBackup: { schedule: string; keep: number };
  hosts: Host[];
  network: {
    serviceCIDR: string;
    podCIDR: string;
    clusterDNS: string;
    clusterDomain: string;
    nodePortRange: string;
    /** First address of the service range: the `kubernetes` Service's ClusterIP. */
    kubernetesServiceIP: string;
    apiserverPort: number;
    /** flannel backend: vxlan (default) or host-gw. */
    flannelBackend: "vxlan" | "host-gw";
  };
  binaries: BinarySource;
  /** The container runtime on every kubelet host: docker (default, dockershim) or containerd (CRI). */
  runtime: (typeof RUNTIMES)[number];
  cni: "flannel";
  certificates: { validityDays: number; caValidityDays: number; kubeletValidityDays: number };
  apiserver: {
    extraSANs: string[];
    /** Optional load balancer / VIP in front of the masters, e.g. https://10.0.0.100:6443. */
    endpoint?: string;
    /**
     * Unauthenticated requests allowed (as system:anonymous, which RBAC lets read only /healthz,
     * /version and the like): a load balancer's health check needs it in v1.17. docs/cis.md 1.2.1.
     */
    anonymousAuth: boolean;
    /**
     * A node-local apiserver proxy (haproxy on 127.0.0.1:NODE_LOCAL_PROXY_PORT) on every host that
     * runs a kubelet, balancing over every master with active health checks; kubelets and
     * kube-proxy use it. Resolved: the inventory's apiserver.nodeLocalProxy, else on when there are
     * several masters and no endpoint (docs/apiserver-proxy.md).
     */
    nodeLocalProxy: boolean;
  };
  engine: Engine;
  /**
   * Where Terraform keeps the state: "local" (.binkube/terraform.tfstate beside the inventory) or
   * "pg" (PostgreSQL, shared by a team, locked during applies; the connection string comes from
   * PG_CONN_STR in the environment only, so it never reaches cdktf.out or the state).
   */
  state: { backend: "local" } | { backend: "pg"; schema: string };
  /**
   * How changes that restart node services (docker, kubelet, kube-proxy) roll: at most this many
   * nodes at a time, each batch behind its health gates. A count, or a percentage of the nodes.
   */
  rolling: {
    maxUnavailable: number | `${number}%`;
    /** How long a node's drain (before a docker upgrade) may take before the roll stops there. */
    drainTimeoutSeconds: number;
  };
  images: Images;
  addons: {
    /** metrics-server (the metrics.k8s.io aggregated API: kubectl top, the HPA); on by default. */
    metricsServer: boolean;
    /** kube-router's firewall enforces NetworkPolicy beside flannel; on by default (docs/network-policy.md). */
    networkPolicy: boolean;
  };
  kubeProxy: {
    /** conntrack table size per core; 0 leaves nf_conntrack_max alone (hosts where it is read-only, e.g. containers). */
    conntrackMaxPerCore: number;
  };
  kubelet: {
    /** Extra kubelet flags for unusual hosts (documented in docs/inventory.md; policy in inventory/extra-args.ts). */
    extraArgs: Record<string, string>;
    /** extraArgs that weaken the kubelet, each accepted with the operator's reason (and warned about at every render and deploy). */
    weakened: Weakened[];
    failSwapOn: boolean;
    /** Taint masters that are also nodes NoSchedule (node-role.kubernetes.io/master), as kubeadm does. */
    taintMasters: boolean;
  };
}

/** A setting that weakens a component, accepted because the inventory says why (docs/cis.md). */
export interface Weakened {
  flag: string;
  reason: string;
}

export interface InventoryIssue {
  /** Dotted path of the offending field, e.g. hosts[1].address. */
  field: string;
  message: string;
  fix: string;
  /** The line of the inventory file it is about, when the file has one for it. */
  line?: number;
}

/**
 * Where the node-local apiserver proxy listens, on 127.0.0.1 of every kubelet host. Not the
 * apiserver's 6443: on a master the apiserver serves that port (on the host's address; an
 * operator who binds it to every address would collide), and a client dialing 127.0.0.1:6443 on
 * a master should reach that master, not a balancer. 6444 is next to it, outside the node port
 * range and clear of every port the cluster uses (load.ts reservedPorts).
 */
export const NODE_LOCAL_PROXY_PORT = 6444;

export function hasRole(host: Host, role: Role): boolean {
  return host.roles.includes(role);
}

export function hostsWithRole(inv: Inventory, role: Role): Host[] {
  return inv.hosts.filter((h) => hasRole(h, role));
}

/**
 * Whether a host runs the container runtime, a kubelet and kube-proxy: every node, and every
 * master even when the inventory does not make it a node. Its apiserver dials Service and pod
 * IPs (admission and CRD-conversion webhooks, aggregated APIs such as metrics-server), which
 * only kube-proxy and the pod network make reachable; without them those calls time out. A
 * master without the node role joins tainted NoSchedule, so no workload lands on it
 * (kubeadm's layout).
 */
export function runsKubelet(host: Host): boolean {
  return hasRole(host, "node") || hasRole(host, "master");
}

export function kubeletHosts(inv: Inventory): Host[] {
  return inv.hosts.filter(runsKubelet);
}
