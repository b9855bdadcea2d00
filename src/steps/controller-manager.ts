// controller-manager: talks to its local apiserver with a client certificate (the guide used
// the unauthenticated insecure port), signs kubelet certificates with the cluster CA, and signs
// service-account tokens with a key of its own (the guide used the CA key).
import { hostsWithRole } from "../inventory/types";
import { certKubeconfig, masterURL } from "../pki/kubeconfig";
import { BINARIES } from "../binaries/catalog";
import { K8S, binary, cert, secret, templated, unit } from "./files";
import { StepDef } from "./types";
import { runComponent } from "./component";

export const controllerManager: StepDef = {
  name: "controller-manager",
  scope: "host",
  description: "kube-controller-manager: kubeconfig, signing keys, flags, unit",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "apiserver", on: "all", why: "after every apiserver: an upgrade's version-skew order, apiservers first, then the rest of the control plane" },
    { step: "controller-manager", on: "previous-host", why: "a changed kube-controller-manager restarts one master at a time" },
  ],
  group: "control-plane",
  run: (rc) => runComponent(rc, "kube-controller-manager", "controller-manager"),
  units: ["kube-controller-manager"],
  binaries: BINARIES.controllerManager,
  certificates: () => ["kube-controller-manager"],
  files: ({ inv, pki }, host) => [
    ...BINARIES.controllerManager.map((b) => binary(K8S.bin, b)),
    cert(`${K8S.ssl}/ca.pem`, pki.cas.ca.certPem),
    secret(`${K8S.ssl}/ca-key.pem`, pki.cas.ca.keyPem),
    secret(`${K8S.ssl}/sa.key`, pki.serviceAccount.privateKeyPem),
    // its own master's apiserver, not the node-local proxy: if that one is down, so is this host's
    // share of the work, and leader election hands it to another master (the usual HA layout)
    secret(
      `${K8S.cfg}/kube-controller-manager.kubeconfig`,
      certKubeconfig(inv, pki, "kube-controller-manager", "system:kube-controller-manager", masterURL(inv, host.address)),
    ),
    templated(`${K8S.cfg}/kube-controller-manager.conf`, "kube-controller-manager/kube-controller-manager.conf", {
      podCIDR: inv.network.podCIDR,
      serviceCIDR: inv.network.serviceCIDR,
      clusterName: inv.clusterName,
      kubeletCertHours: inv.certificates.kubeletValidityDays * 24,
    }),
    unit("kube-controller-manager", "kube-controller-manager/kube-controller-manager.service"),
  ],
};
