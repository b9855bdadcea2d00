// scheduler: like the controller-manager, a client certificate instead of the insecure port.
import { hostsWithRole } from "../inventory/types";
import { certKubeconfig, masterURL } from "../pki/kubeconfig";
import { BINARIES } from "../binaries/catalog";
import { K8S, binary, secret, templated, unit } from "./files";
import { StepDef } from "./types";
import { runComponent } from "./component";

export const scheduler: StepDef = {
  name: "scheduler",
  scope: "host",
  description: "kube-scheduler: kubeconfig, flags, unit",
  hosts: (inv) => hostsWithRole(inv, "master"),
  deps: [
    { step: "apiserver", on: "all", why: "after every apiserver: an upgrade's version-skew order, apiservers first, then the rest of the control plane" },
    { step: "scheduler", on: "previous-host", why: "a changed kube-scheduler restarts one master at a time" },
  ],
  group: "control-plane",
  run: (rc) => runComponent(rc, "kube-scheduler", "scheduler"),
  units: ["kube-scheduler"],
  binaries: BINARIES.scheduler,
  certificates: () => ["kube-scheduler"],
  files: ({ inv, pki }, host) => [
    ...BINARIES.scheduler.map((b) => binary(K8S.bin, b)),
    // its own master's apiserver, not the node-local proxy: if that one is down, so is this host's
    // share of the work, and leader election hands it to another master (the usual HA layout)
    secret(`${K8S.cfg}/kube-scheduler.kubeconfig`, certKubeconfig(inv, pki, "kube-scheduler", "system:kube-scheduler", masterURL(inv, host.address))),
    templated(`${K8S.cfg}/kube-scheduler.conf`, "kube-scheduler/kube-scheduler.conf", {}),
    unit("kube-scheduler", "kube-scheduler/kube-scheduler.service"),
  ],
};
