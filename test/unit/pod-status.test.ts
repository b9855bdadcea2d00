// The addons gate's summary of stuck pods: which node, which container, why.
import assert from "node:assert/strict";
import { test } from "node:test";
import { podReadiness } from "../../src/steps/pod-status";

const pod = (name: string, node: string | undefined, status: object) => ({ metadata: { name }, spec: node ? { nodeName: node } : {}, status });

test("ready pods are keyed by node; a crash-looping one names its container, reason, restarts and last exit", () => {
  const json = JSON.stringify({
    items: [
      pod("kube-flannel-ds-a", "lab1", { phase: "Running", conditions: [{ type: "Ready", status: "True" }] }),
      pod("kube-flannel-ds-b", "lab2", {
        phase: "Running",
        conditions: [{ type: "Ready", status: "False" }],
        initContainerStatuses: [{ name: "install-cni", ready: true, restartCount: 0, state: { terminated: { reason: "Completed", exitCode: 0 } } }],
        containerStatuses: [{ name: "kube-flannel", ready: false, restartCount: 4, state: { waiting: { reason: "CrashLoopBackOff", message: "back-off 40s\nrestarting" } }, lastState: { terminated: { reason: "Error", exitCode: 1 } } }],
      }),
      pod("kube-flannel-ds-c", undefined, { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", message: "0/3 nodes are available" }] }),
    ],
  });
  const r = podReadiness(json);
  assert.deepEqual([...r.ready], [["lab1", "kube-flannel-ds-a"]]);
  assert.deepEqual(
    r.notReady.map((p) => p.line),
    [
      "lab2: kube-flannel-ds-b Running, kube-flannel CrashLoopBackOff (restarts 4, last exit 1): back-off 40s",
      "(unscheduled): kube-flannel-ds-c Pending, not scheduled: 0/3 nodes are available",
    ],
  );
});

test("a failed init container is named; an image that may not be pulled shows its reason and message", () => {
  const r = podReadiness(
    JSON.stringify({
      items: [
        pod("p", "lab3", {
          phase: "Pending",
          conditions: [{ type: "Ready", status: "False" }],
          initContainerStatuses: [{ name: "install-cni", ready: false, restartCount: 0, state: { waiting: { reason: "ErrImageNeverPull", message: 'Container image "quay.io/coreos/flannel:v0.12.0-amd64" is not present' } } }],
          containerStatuses: [{ name: "kube-flannel", ready: false, restartCount: 0, state: { waiting: { reason: "PodInitializing" } } }],
        }),
      ],
    }),
  );
  assert.equal(r.ready.size, 0);
  assert.equal(r.notReady[0]!.line, 'lab3: p Pending, init install-cni ErrImageNeverPull (restarts 0): Container image "quay.io/coreos/flannel:v0.12.0-amd64" is not present; kube-flannel PodInitializing (restarts 0)');
});
