// The runtime step's drain decisions, against a scripted host that keeps the pending-restart
// marker (the day-2 e2e runs the same code on real docker, kubelet and kubectl drain).
import assert from "node:assert/strict";
import { test } from "node:test";
import { runtime } from "../../src/steps/runtime";
import { Rule, scriptedHost } from "../helpers/scripted-host";
import { otherRuntime } from "../helpers/step-rules";

interface NodeState {
  marker: string;
  joined: boolean;
  unschedulable: boolean;
  drainFails: boolean;
  /** probe lines `F <mtime> <path>` of files newer than dockerd (started 2026-12-04 22:00:00 UTC) */
  stale?: string;
}

/** A node (and the control plane's kubectl) answering the runtime step's commands from `state`. */
function fakeNode(state: NodeState, changed: string[]) {
  // a command that changes the node's state answers with success
  const set = (to: Partial<NodeState>) => (Object.assign(state, to), {});
  const rules: Rule[] = [
    otherRuntime(),
    [/^cat .*docker\.restart-pending/, () => ({ stdout: state.marker })],
    [/^mkdir -p -m 0700 \/var\/lib\/binkube && echo /, (c) => set({ marker: /echo '?([a-z -]+)'? >/.exec(c)![1]! })],
    [/^rm -f .*docker\.restart-pending/, () => set({ marker: "" })],
    [/kubelet\.kubeconfig && echo joined/, () => ({ stdout: state.joined ? "joined" : "" })],
    [/get node \S+ -o jsonpath=\{\.spec\.unschedulable\}/, () => ({ stdout: state.unschedulable ? "true" : "" })],
    [/ cordon /, () => set({ unschedulable: true })],
    [/ uncordon /, () => set({ unschedulable: false })],
    [/ drain /, () => (state.drainFails ? { code: 1, stdout: DRAIN_BLOCKED } : {})],
    [/Ready"\)\]\.status\}/, { stdout: "True" }],
    [/^printf 'U %s A %s\\n' docker /, () => ({ stdout: `U docker A active\nU docker E enabled\nU docker T ${state.stale ? "Fri 2026-12-04 22:00:00 UTC" : ""}\n${state.stale ?? ""}` })],
    [/^systemctl daemon-reload && systemctl enable --quiet docker && systemctl (re)?start docker$/, {}],
    [/^docker info/, { stdout: "cgroupfs\n" }],
    [/docker load/, { stdout: "loaded\n" }],
  ];
  return scriptedHost({ rules, changed, files: [{ path: "/opt/kubernetes/images/pause.tar", mode: 0o644, binary: "/x/pause.tar" }] });
}

const DRAIN_BLOCKED = 'error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod\'s disruption budget.\nerror: unable to drain node "k8s-master", aborting command...\n';

const node = (over: Partial<NodeState> = {}): NodeState => ({ marker: "", joined: true, unschedulable: false, drainFails: false, ...over });

test("an earlier run stopped after the new dockerd landed and before its marker: dockerd older than its binary still drains, restarts and uncordons", async () => {
  const st = node({ stale: `F ${Date.UTC(2026, 11, 4, 22, 1, 0) / 1000} /usr/bin/dockerd\n` });
  const n = fakeNode(st, []);
  n.rc.files.push({ path: "/usr/bin/dockerd", mode: 0o755, binary: "docker/dockerd" });
  assert.match(await n.run(runtime), /0 files changed, docker restarted \(it was older than its files: \/usr\/bin\/dockerd changed at 22:01:00 UTC.*\), drained first and uncordoned when Ready/);
  assert.ok(n.index(/kubeconfig drain /) >= 0 && n.index(/kubeconfig drain /) < n.index(/systemctl restart docker$/), n.commands.join(" | "));
  assert.equal(st.unschedulable, false);
});

test("a new docker binary on a node that runs pods: the intent is written, then cordon, drain, restart, uncordon", async () => {
  const st = node();
  const n = fakeNode(st, ["/usr/bin/dockerd"]);
  assert.match(await n.run(runtime), /docker restarted, drained first and uncordoned when Ready/);
  const order = [/echo 'restart drain cordoned-by-binkube'/, /kubeconfig cordon /, /kubeconfig drain /, /systemctl restart docker$/, /kubeconfig uncordon /, /^rm -f /].map(n.index);
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `order: ${n.commands.join(" | ")}`);
  assert.equal(st.marker, "");
  assert.equal(st.unschedulable, false);
});

test("a blocked drain stops before the restart, names the budget, keeps the node cordoned; the re-run drains, restarts and uncordons", async () => {
  const st = node({ drainFails: true });
  const first = fakeNode(st, ["/usr/bin/dockerd"]);
  await assert.rejects(first.run(runtime), /drain of k8s-master did not finish within 300 s, so the docker restart did not happen; k8s-master stays cordoned and the roll stops here\. kubectl drain said:\n    error when evicting a pod \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget\.\n    error: unable to drain node/);
  assert.equal(first.index(/systemctl restart docker/), -1, "docker restarted although the drain failed");
  assert.equal(st.unschedulable, true);
  assert.equal(st.marker, "restart drain cordoned-by-binkube");
  // the budget is fixed; nothing changed on disk since (the binary landed the first time)
  st.drainFails = false;
  const again = fakeNode(st, []);
  assert.match(await again.run(runtime), /docker restarted, drained first and uncordoned when Ready/);
  assert.ok(again.index(/kubeconfig drain /) < again.index(/systemctl restart docker$/));
  assert.equal(st.unschedulable, false);
  assert.equal(st.marker, "");
});

test("a node an operator cordoned stays cordoned; a node that never joined is not drained; a new image archive restarts nothing", async () => {
  const cordoned = node({ unschedulable: true });
  const a = fakeNode(cordoned, ["/etc/docker/daemon.json"]);
  assert.match(await a.run(runtime), /drained first \(left cordoned: it was cordoned before\)/);
  assert.equal(a.index(/kubeconfig uncordon /), -1);
  assert.equal(cordoned.unschedulable, true);

  const fresh = node({ joined: false });
  const b = fakeNode(fresh, ["/usr/bin/dockerd"]);
  await b.run(runtime);
  assert.equal(b.index(/kubeconfig (drain|cordon) /), -1, "a node without pods was drained");
  assert.ok(b.index(/systemctl restart docker$/) >= 0);

  const images = node();
  const c = fakeNode(images, ["/opt/kubernetes/images/pause.tar"]);
  assert.match(await c.run(runtime), /docker running, cgroup driver cgroupfs, 1 image archives loaded/);
  assert.equal(c.index(/systemctl restart docker|kubeconfig drain /), -1);
});
