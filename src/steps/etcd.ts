// etcd: one member per etcd host, mutual TLS for clients and peers, started without blocking
// (a Type=notify member waits for quorum, so `systemctl start` on the first one would hang).
import { etcdPeerCert, etcdServerCert } from "../pki/catalog";
import { leaf } from "../pki/store";
import { Host, Inventory, hostsWithRole } from "../inventory/types";
import { BINARIES } from "../binaries/catalog";
import { ETCD, binary, cert, secret, templated, unit } from "./files";
import { StepDef } from "./types";

export function etcdInitialCluster(inv: Inventory): string {
  return hostsWithRole(inv, "etcd")
    .map((h) => `${h.name}=https://${h.address}:2380`)
    .join(",");
}

export function etcdClientURLs(inv: Inventory): string {
  return hostsWithRole(inv, "etcd")
    .map((h) => `https://${h.address}:2379`)
    .join(",");
}

export const etcd: StepDef = {
  name: "etcd",
  scope: "host",
  description: "etcd member: binaries, certificates, etcd.conf, unit",
  hosts: (inv) => hostsWithRole(inv, "etcd"),
  deps: [{ step: "prepare", on: "same-host" }],
  files: ({ inv, pki }, host: Host) => {
    const server = leaf(pki, etcdServerCert(host));
    const peer = leaf(pki, etcdPeerCert(host));
    const health = leaf(pki, "etcd-healthcheck-client");
    return [
      ...BINARIES.etcd.map((b) => binary(ETCD.bin, b)),
      cert(`${ETCD.ssl}/ca.pem`, pki.cas["etcd-ca"].certPem),
      cert(`${ETCD.ssl}/server.pem`, server.certPem),
      secret(`${ETCD.ssl}/server-key.pem`, server.keyPem),
      cert(`${ETCD.ssl}/peer.pem`, peer.certPem),
      secret(`${ETCD.ssl}/peer-key.pem`, peer.keyPem),
      cert(`${ETCD.ssl}/healthcheck-client.pem`, health.certPem),
      secret(`${ETCD.ssl}/healthcheck-client-key.pem`, health.keyPem),
      templated(`${ETCD.cfg}/etcd.conf`, "etcd/etcd.conf", {
        etcdVersion: inv.etcdVersion,
        name: host.name,
        address: host.address,
        initialCluster: etcdInitialCluster(inv),
        clusterToken: `${inv.clusterName}-etcd`,
        initialClusterState: "new",
      }),
      unit("etcd", "etcd/etcd.service"),
    ];
  },
};

export const etcdHealth: StepDef = {
  name: "etcd-health",
  scope: "once",
  description: "wait until every etcd member is healthy over mTLS",
  hosts: (inv) => hostsWithRole(inv, "etcd"),
  deps: [{ step: "etcd", on: "all" }],
  files: () => [],
  triggers: ({ inv }) => ({ members: etcdInitialCluster(inv) }),
};
