// apiserver: kube-apiserver on every master, with its own client certificates for etcd and the
// kubelets, a dedicated service-account key, no insecure port, and the front-proxy for the
// aggregation layer. kubectl and an admin kubeconfig ride along for the once-steps.
import { BINARIES } from "../binaries/catalog";
import { hostsWithRole } from "../inventory/types";
import { certKubeconfig } from "../pki/kubeconfig";
import { leaf } from "../pki/store";
import { etcdClientURLs } from "./etcd";
import { K8S, binary, cert, secret, templated, unit } from "./files";
import { StepDef, RunContext } from "./types";
import { TLS_CIPHER_SUITES } from "./tls";
import { encryptionConfig } from "../pki/encryption";
import { waitFor } from "../util/wait";
import { activeAndHealthy, applyUnit, checkReleaseVersion, kubectl } from "./actions";

async function runApiserver(rc: RunContext): Promise<string> {
  const sync = await rc.sync();
  // The static token file of earlier versions (one shared, never-expiring bootstrap token) must not linger.
  await rc.sh(`rm -f ${K8S.cfg}/token.csv`);
  await checkReleaseVersion(rc, "kube-apiserver");
  const action = await applyUnit(rc, "kube-apiserver", sync.changed.length > 0);
  await activeAndHealthy(rc, "kube-apiserver", { timeoutMs: 60_000 }, () =>
    waitFor(
      `kube-apiserver /healthz on ${rc.host.name}`,
      async () => ((await kubectl(rc.remote, "get --raw /healthz", { allowFail: true, timeoutMs: 15_000 })).trim() === "ok" ? true : "not ok yet"),
      { timeoutMs: 120_000, intervalMs: 1000, log: rc.log, fix: "check etcd health and the apiserver flags" },
    ),
  );
  return `${sync.changed.length} files changed, ${action}, /healthz ok`;
}

export const apiserver: StepDef = {
  name: "apiserver",
  scope: "host",
  description: "kube-apiserver: binaries, certificates, flags, unit",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "prepare", on: "same-host" },
    { step: "etcd-health", on: "all" },
    { step: "apiserver", on: "previous-host" },
  ],
  run: runApiserver,
  units: ["kube-apiserver"],
  files: ({ inv, pki }, host) => {
    const pair = (name: string, stem = name) => {
      const l = leaf(pki, name);
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
      }),
      unit("kube-apiserver", "kube-apiserver/kube-apiserver.service"),
      { ...secret(`${K8S.cfg}/admin.kubeconfig`, certKubeconfig(inv, pki, "admin", "admin", `https://${host.address}:${inv.network.apiserverPort}`)), live: true },
    ];
  },
};
