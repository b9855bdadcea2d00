// apiserver: kube-apiserver on every master, with its own client certificates for etcd and the
// kubelets, a dedicated service-account key, no insecure port, and the front-proxy for the
// aggregation layer. kubectl and an admin kubeconfig ride along for the once-steps.
import { BINARIES } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { certKubeconfig, masterURL } from "../pki/kubeconfig";
import { leafRef } from "../pki/refs";
import { etcdClientURLs } from "./etcdctl";
import { K8S, binary, cert, secret, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { TLS_CIPHER_SUITES } from "./tls";
import { encryptionConfig } from "../pki/encryption";
import { waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion, kubectl, probeUnit } from "./actions";
// the node-local proxies drain this master while it restarts (they balance over every master)
import { withMasterDrained } from "./node-proxy";
import { posix } from "node:path";
import { shq } from "../remote/shell";

/** The apiserver's audit log (--audit-log-path), which lumberjack rotates beside itself. */
export const AUDIT_LOG = "/opt/kubernetes/logs/k8s-audit.log";

/**
 * The audit log and its rotated copies are root's alone (0600, in a 0700 directory). The v1.17
 * apiserver leaves creating the file to lumberjack v2.0.0, which makes it 0644; lumberjack keeps the
 * mode and owner of an existing file when it rotates (a new file gets the old one's), so a file
 * made 0600 here stays 0600. Kubernetes does the same itself from v1.21 (kubernetes#95387).
 */
export function auditLogCommand(log = AUDIT_LOG): string {
  const dir = posix.dirname(log);
  const name = posix.basename(log, ".log");
  return `mkdir -p ${shq(dir)} && chown root:root ${shq(dir)} && chmod 0700 ${shq(dir)} && touch ${shq(log)} && chown root:root ${shq(log)} && find ${shq(dir)} -maxdepth 1 -type f -name ${shq(`${name}*`)} -exec chmod 0600 {} +`;
}

async function runApiserver(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  // The static token file of earlier versions (one shared, never-expiring bootstrap token) must not linger.
  await rc.sh(`rm -f ${K8S.cfg}/token.csv`);
  // Before the (re)start: the running apiserver keeps writing to the file it has open, whose mode this fixes too.
  await rc.sh(auditLogCommand());
  await checkReleaseVersion(rc, "kube-apiserver");
  const probe = await probeUnit(rc, "kube-apiserver");
  const restarts = probe.active === "active" && (sync.changed.length > 0 || probe.stale.length > 0);
  const applyAndGate = async () => {
    const action = await applyUnit(rc, "kube-apiserver", sync.changed.length > 0, { probe });
    await activeAndHealthy(rc, "kube-apiserver", { timeoutMs: 60_000 }, () =>
      waitFor(
        `kube-apiserver /healthz on ${rc.host.name}`,
        async () => ((await kubectl(rc.remote, "get --raw /healthz", { allowFail: true, timeoutMs: 15_000 })).trim() === "ok" ? true : "not ok yet"),
        { timeoutMs: 120_000, intervalMs: 1000, log: rc.log, fix: "check etcd health and the apiserver flags" },
      ),
    );
    return action;
  };
  // A running apiserver leaves the node-local proxies' rotation while it restarts (node-proxy.ts).
  const action = restarts ? await withMasterDrained(rc, applyAndGate) : await applyAndGate();
  return `${sync.changed.length} files changed, ${action}, /healthz ok`;
}

export const apiserver: StepDef = {
  name: "apiserver",
  scope: "host",
  description: "kube-apiserver: binaries, certificates, flags, unit",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "prepare", on: "same-host", why: "the host passed preflight and has its directories" },
    { step: "etcd-health", on: "all", why: "its storage: every etcd member healthy" },
    { step: "apiserver", on: "previous-host", why: "a changed apiserver restarts one master at a time, so the API stays up" },
  ],
  group: "control-plane",
  run: runApiserver,
  units: ["kube-apiserver"],
  binaries: BINARIES.apiserver,
  certificates: () => ["apiserver", "apiserver-kubelet-client", "apiserver-etcd-client", "front-proxy-client", "admin"],
  files: ({ inv, pki }, host) => {
    const pair = (name: string, stem = name) => {
      const l = leafRef(name);
      return [cert(`${K8S.ssl}/${stem}.pem`, l.certPem), secret(`${K8S.ssl}/${stem}-key.pem`, l.keyPem)];
    };
    return [
      // kubectl and admin.kubeconfig ride along for the once-steps: the apiserver never reads them
      ...BINARIES.apiserver.map((b) => ({ ...binary(K8S.bin, b), live: b === "kubectl" || undefined })),
      cert(`${K8S.ssl}/ca.pem`, pki.cas.ca.certPem),
      cert(`${K8S.ssl}/etcd-ca.pem`, pki.cas["etcd-ca"].certPem),
      cert(`${K8S.ssl}/front-proxy-ca.pem`, pki.cas["front-proxy-ca"].certPem),
      ...pair("apiserver"),
      ...pair("apiserver-kubelet-client"),
      ...pair("apiserver-etcd-client"),
      ...pair("front-proxy-client"),
      cert(`${K8S.ssl}/sa.pub`, pki.serviceAccount.publicKeyPem),
      templated(`${K8S.cfg}/audit-policy.yaml`, "kube-apiserver/audit-policy.yaml", {}),
      secret(`${K8S.cfg}/encryption-config.yaml`, encryptionConfig(pki.encryption)),
      templated(`${K8S.cfg}/kube-apiserver.conf`, "kube-apiserver/kube-apiserver.conf", {
        etcdServers: etcdClientURLs(inv),
        address: host.address,
        apiserverPort: inv.network.apiserverPort,
        serviceCIDR: inv.network.serviceCIDR,
        nodePortRange: inv.network.nodePortRange,
        cipherSuites: TLS_CIPHER_SUITES.join(","),
        anonymousAuth: inv.apiserver.anonymousAuth,
        auditLog: AUDIT_LOG,
      }),
      unit("kube-apiserver", "kube-apiserver/kube-apiserver.service"),
      { ...secret(`${K8S.cfg}/admin.kubeconfig`, certKubeconfig(inv, pki, "admin", "admin", masterURL(inv, host.address))), live: true },
    ];
  },
};
