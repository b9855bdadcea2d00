// The bring-up order. Each entry's deps name earlier entries only.
import { addons } from "./addons";
import { apiserver } from "./apiserver";
import { apiserverProxy } from "./apiserver-proxy";
import { bootstrap } from "./bootstrap";
import { controllerManager } from "./controller-manager";
import { etcd, etcdHealth } from "./etcd";
import { etcdBackup } from "./etcd-backup";
import { kubeProxy } from "./kube-proxy";
import { kubelet } from "./kubelet";
import { prepare } from "./prepare";
import { remove } from "./remove";
import { runtime } from "./runtime";
import { scheduler } from "./scheduler";
import { StepDef, StepName } from "./types";

export const STEPS: StepDef[] = [remove, prepare, etcd, etcdHealth, etcdBackup, runtime, apiserver, apiserverProxy, bootstrap, controllerManager, scheduler, kubelet, kubeProxy, addons];

export function stepByName(name: string): StepDef | undefined {
  return STEPS.find((s) => s.name === (name as StepName));
}
