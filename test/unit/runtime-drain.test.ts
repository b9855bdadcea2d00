// The runtime step's drain decisions, against a scripted host that keeps the pending-restart
// marker (the day-2 e2e runs the same code on real docker, kubelet and kubectl drain).
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { stringify } from "yaml";
import { parseInventory } from "../../src/inventory/load";
import type { ExecOptions, ExecResult, SyncResult } from "../../src/remote";
import { runtime } from "../../src/steps/runtime";
import type { RunContext } from "../../src/steps/types";
import { baseInventory, tempDir } from "../helpers/fixtures";

interface NodeState {
  marker: string;
  joined: boolean;
  unschedulable: boolean;
  drainFails: boolean;
  /** probe lines `F <mtime> <path>` of files newer than dockerd (started 2026-12-04 22:00:00 UTC) */
  stale?: string;
}

/** A node (and the control plane's kubectl) answering the runtime step's commands; refuses unscripted ones. */
function fakeNode(state: NodeState, changed: string[]) {
  const inv = parseInventory(stringify(baseInventory()), path.join(tempDir("binkube-drain-"), "cluster.yaml")).inventory;
  const log: string[] = [];
  const exec = async (command: string, opts: ExecOptions = {}): Promise<ExecResult> => {
    const ok = (stdout = "") => ({ code: 0, stdout, stderr: "" });
    let r: ExecResult;
    if (/^cat .*docker\.restart-pending/.test(command)) r = ok(state.marker);
    else if (/^mkdir -p -m 0700 \/var\/lib\/binkube && echo /.test(command)) {
      state.marker = /echo '?([a-z -]+)'? >/.exec(command)![1]!;
      r = ok();
    } else if (/^rm -f .*docker\.restart-pending/.test(command)) {
      state.marker = "";
      r = ok();
    } else if (/kubelet\.kubeconfig && echo joined/.test(command)) r = ok(state.joined ? "joined" : "");
    else if (/get node \S+ -o jsonpath=\{\.spec\.unschedulable\}/.test(command)) r = ok(state.unschedulable ? "true" : "");
    else if (/ cordon /.test(command)) {
      state.unschedulable = true;
      r = ok();
    } else if (/ uncordon /.test(command)) {
      state.unschedulable = false;
      r = ok();
    } else if (/ drain /.test(command)) r = state.drainFails ? { code: 1, stdout: 'error when evicting pods/"web-1" -n "default" (will retry after 5s): Cannot evict pod as it would violate the pod\'s disruption budget.\nerror: unable to drain node "k8s-master", aborting command...\n', stderr: "" } : ok();
    else if (/Ready"\)\]\.status\}/.test(command)) r = ok("True");
    else if (/^printf 'U %s A %s\\n' docker /.test(command)) r = ok(`U docker A active\nU docker E enabled\nU docker T ${state.stale ? "Fri 2026-12-04 22:00:00 UTC" : ""}\n${state.stale ?? ""}`);
    else if (/^systemctl daemon-reload && systemctl enable --quiet docker && systemctl (re)?start docker$/.test(command)) r = ok();
    else if (/^docker info/.test(command)) r = ok("cgroupfs\n");
    else if (/docker load/.test(command)) r = ok("loaded\n");
    else throw new Error(`unscripted command: ${command}`);
    log.push(command);
    if (r.code !== 0 && !opts.allowFail) throw new Error(`command failed with exit code ${r.code}: ${command}`);
    return r;
  };
  const remote = { exec, fetchFile: async () => ({ bytes: 0, sha256: "" }) };
  const files = [{ path: "/opt/kubernetes/images/pause.tar", mode: 0o644, binary: "/x/pause.tar" }];
  const rc: RunContext = {
    inv,
    host: inv.hosts[0]!,
    files,
    firstBringUp: false,
    remote,
    log: () => {},
    sh: exec,
    sync: async (): Promise<SyncResult> => ({ changed, unchanged: [], bytesSent: 0 }),
    controlPlane: async () => remote,
    onHost: async () => remote,
  };
  const did = (re: RegExp) => log.findIndex((c) => re.test(c));
  return { rc, log, did };
}

const node = (over: Partial<NodeState> = {}): NodeState => ({ marker: "", joined: true, unschedulable: false, drainFails: false, ...over });

test("an earlier run stopped after the new dockerd landed and before its marker: dockerd older than its binary still drains, restarts and uncordons", async () => {
  const st = node({ stale: `F ${Date.UTC(2026, 11, 4, 22, 1, 0) / 1000} /usr/bin/dockerd\n` });
  const n = fakeNode(st, []);
  n.rc.files.push({ path: "/usr/bin/dockerd", mode: 0o755, binary: "docker/dockerd" });
  assert.match(await runtime.run(n.rc), /0 files changed, docker restarted \(it was older than its files: \/usr\/bin\/dockerd changed at 22:01:00 UTC.*\), drained first and uncordoned when Ready/);
  assert.ok(n.did(/kubeconfig drain /) >= 0 && n.did(/kubeconfig drain /) < n.did(/systemctl restart docker$/), n.log.join(" | "));
  assert.equal(st.unschedulable, false);
});

test("a new docker binary on a node that runs pods: the intent is written, then cordon, drain, restart, uncordon", async () => {
  const st = node();
  const n = fakeNode(st, ["/usr/bin/dockerd"]);
  assert.match(await runtime.run(n.rc), /docker restarted, drained first and uncordoned when Ready/);
  const order = [/echo 'restart drain cordoned-by-binkube'/, /kubeconfig cordon /, /kubeconfig drain /, /systemctl restart docker$/, /kubeconfig uncordon /, /^rm -f /].map(n.did);
  assert.ok(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `order: ${n.log.join(" | ")}`);
  assert.equal(st.marker, "");
  assert.equal(st.unschedulable, false);
});

test("a blocked drain stops before the restart, names the budget, keeps the node cordoned; the re-run drains, restarts and uncordons", async () => {
  const st = node({ drainFails: true });
  const first = fakeNode(st, ["/usr/bin/dockerd"]);
  await assert.rejects(runtime.run(first.rc), /drain of k8s-master did not finish within 300 s, so the docker restart did not happen; k8s-master stays cordoned and the roll stops here\. kubectl drain said:\n    error when evicting a pod \(will retry after 5s\): Cannot evict pod as it would violate the pod's disruption budget\.\n    error: unable to drain node/);
  assert.equal(first.did(/systemctl restart docker/), -1, "docker restarted although the drain failed");
  assert.equal(st.unschedulable, true);
  assert.equal(st.marker, "restart drain cordoned-by-binkube");
  // the budget is fixed; nothing changed on disk since (the binary landed the first time)
  st.drainFails = false;
  const again = fakeNode(st, []);
  assert.match(await runtime.run(again.rc), /docker restarted, drained first and uncordoned when Ready/);
  assert.ok(again.did(/kubeconfig drain /) < again.did(/systemctl restart docker$/));
  assert.equal(st.unschedulable, false);
  assert.equal(st.marker, "");
});

test("a node an operator cordoned stays cordoned; a node that never joined is not drained; a new image archive restarts nothing", async () => {
  const cordoned = node({ unschedulable: true });
  const a = fakeNode(cordoned, ["/etc/docker/daemon.json"]);
  assert.match(await runtime.run(a.rc), /drained first \(left cordoned: it was cordoned before\)/);
  assert.equal(a.did(/kubeconfig uncordon /), -1);
  assert.equal(cordoned.unschedulable, true);

  const fresh = node({ joined: false });
  const b = fakeNode(fresh, ["/usr/bin/dockerd"]);
  await runtime.run(b.rc);
  assert.equal(b.did(/kubeconfig (drain|cordon) /), -1, "a node without pods was drained");
  assert.ok(b.did(/systemctl restart docker$/) >= 0);

  const images = node();
  const c = fakeNode(images, ["/opt/kubernetes/images/pause.tar"]);
  assert.match(await runtime.run(c.rc), /docker running, cgroup driver cgroupfs, 1 image archives loaded/);
  assert.equal(c.did(/systemctl restart docker|kubeconfig drain /), -1);
});
