// The step registry: STEPS is the one list of steps, in bring-up order (ordered by their deps,
// steps/registry.ts). Lists other modules need about steps are read from it here, not repeated.
import { addons } from "./addons";
import { apiserver } from "./apiserver";
import { apiserverProxy } from "./apiserver-proxy";
import { bootstrap } from "./bootstrap";
import { containerd } from "./containerd";
import { controllerManager } from "./controller-manager";
import { etcd, etcdHealth } from "./etcd";
import { etcdBackup } from "./etcd-backup";
import { kubeProxy } from "./kube-proxy";
import { kubelet } from "./kubelet";
import { prepare } from "./prepare";
import { orderSteps } from "./registry";
import { removeStep } from "./remove";
import { runtime } from "./runtime";
import { scheduler } from "./scheduler";
import { StepDef, StepGroup } from "./types";

export const STEPS: readonly StepDef[] = orderSteps([
  // a removed host's units: every other step's, stopped in reverse bring-up order (as a teardown does)
  removeStep(() => stopOrder(STEPS)),
  prepare,
  etcd,
  etcdHealth,
  etcdBackup,
  runtime,
  containerd,
  apiserver,
  apiserverProxy,
  bootstrap,
  controllerManager,
  scheduler,
  kubelet,
  kubeProxy,
  addons,
]);

export function stepByName(name: string): StepDef | undefined {
  return STEPS.find((s) => s.name === name);
}

/** The steps of a group, in bring-up order. */
export function stepsInGroup(group: StepGroup, steps: readonly StepDef[] = STEPS): StepDef[] {
  return steps.filter((s) => s.group === group);
}

/** The systemd units of these steps, in their order. */
export function unitsOf(steps: readonly StepDef[]): string[] {
  return steps.flatMap((s) => s.units ?? []);
}

/** Every unit of these steps, last started first: what depends on a unit stops before it. */
export function stopOrder(steps: readonly StepDef[]): string[] {
  return unitsOf(steps).reverse();
}

/** Every binary a step ships by name (the required members of a group). */
export function shippedBinaries(steps: readonly StepDef[] = STEPS): string[] {
  return [...new Set(steps.flatMap((s) => s.binaries ?? []))];
}
