// Every step that restarts a unit, against a scripted host on a fake clock (the lab e2e runs the
// same code on real hosts): a run with nothing changed restarts nothing; a changed file restarts
// the unit and its gate is then waited on; a gate that never passes fails the step with a message
// naming the step, the host and the fix. One table of cases, the same three checks for each.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { nodeApiserverURL } from "../../src/pki/kubeconfig";
import { apiserver } from "../../src/steps/apiserver";
import { apiserverProxy } from "../../src/steps/apiserver-proxy";
import { containerd } from "../../src/steps/containerd";
import { controllerManager } from "../../src/steps/controller-manager";
import { etcd } from "../../src/steps/etcd";
import { etcdBackup } from "../../src/steps/etcd-backup";
import { kubeProxy } from "../../src/steps/kube-proxy";
import { kubelet } from "../../src/steps/kubelet";
import { runtime } from "../../src/steps/runtime";
import { scheduler } from "../../src/steps/scheduler";
import type { PlannedFile, StepDef } from "../../src/steps/types";
import { baseInventory, RawInventory } from "../helpers/fixtures";
import { Rule, parsedInventory, scriptedHost } from "../helpers/scripted-host";
import { journal, otherRuntime, probe, restartOf, staysActive, systemctlStart, version } from "../helpers/step-rules";

interface Case {
  step: StepDef;
  unit: string;
  host: string;
  inventory?: RawInventory;
  files?: PlannedFile[];
  /** A file whose change restarts the unit. */
  changes: string;
  /** The step's own answers; `healthy: false`: its gate never passes. Tried before the unit's. */
  rules: (healthy: boolean) => Rule[];
  /** The gate's poll, sent after the restart. */
  gate: RegExp;
  /** The failed gate's cause and fix, after "step NAME on HOST failed: ". */
  failure: RegExp;
}

const K8S_RELEASE = `Kubernetes ${parsedInventory().kubernetesVersion}`;
const ETCD_CONF = "/opt/etcd/cfg/etcd.conf";
/** Two masters: the node-local apiserver proxy is on by default. */
const twoMasters = (): RawInventory => {
  const raw = baseInventory();
  raw.hosts[1]!.roles = ["etcd", "master", "node"];
  return raw;
};
const proxyStats = (status: string, check: string) =>
  ["# pxname,svname,qcur,status,check_status", `kube-apiservers,k8s-master,0,${status},${check}`, `kube-apiservers,k8s-node,0,${status},${check}`, "kube-apiservers,BACKEND,0,UP,"].join("\n");
const component = (step: StepDef, unit: string, port: number, name: string): Case => ({
  step,
  unit,
  host: "k8s-master",
  changes: `/opt/kubernetes/cfg/${unit}.conf`,
  rules: (healthy) => [version(unit, K8S_RELEASE), [new RegExp(`curl -sk --max-time 5 https://127\\.0\\.0\\.1:${port}/healthz$`), { stdout: healthy ? "ok" : "" }]],
  gate: new RegExp(`127\\.0\\.0\\.1:${port}/healthz$`),
  failure: new RegExp(`timed out after 90 s waiting for ${name} healthy on k8s-master .*check journalctl -u ${unit} on k8s-master\\n.*last 15 lines of journalctl -u ${unit} on k8s-master`, "s"),
});

const CASES: Case[] = [
  {
    step: etcd,
    unit: "etcd",
    host: "k8s-master",
    files: [{ path: ETCD_CONF, mode: 0o644, content: "ETCD_NAME=k8s-master\n" }],
    changes: "/opt/etcd/ssl/server.pem",
    rules: (healthy) => [
      [/^cat \/opt\/etcd\/cfg\/etcd\.conf/, { stdout: "ETCD_NAME=k8s-master\n" }],
      [/^chown etcd:etcd /, {}],
      [/snapshot save /, {}],
      [/endpoint status$/, { stdout: "https://127.0.0.1:2379, 8e9e05c52164694d, 3.4.23, 25 kB, false, false, 2, 10, 10, \n" }],
      [/--endpoints=https:\/\/127\.0\.0\.1:2379 --command-timeout=5s endpoint health/, { stdout: healthy ? "https://127.0.0.1:2379 is healthy" : "https://127.0.0.1:2379 is unhealthy: context deadline exceeded" }],
    ],
    gate: /endpoint health/,
    failure: /timed out after 120 s waiting for etcd member k8s-master healthy after restart .*check journalctl -u etcd on k8s-master/,
  },
  {
    step: runtime,
    unit: "docker",
    host: "k8s-node",
    // a new unit file restarts docker without a drain (runtime-drain.test.ts has the drains)
    changes: "/usr/lib/systemd/system/docker.service",
    rules: (healthy) => [
      [/^cat .*docker\.restart-pending/, {}],
      [/^mkdir -p -m 0700 \/var\/lib\/binkube && echo '?restart'? > /, {}],
      [/^rm -f .*docker\.restart-pending/, {}],
      [/^docker info /, healthy ? { stdout: "cgroupfs\n" } : { code: 1, stderr: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock\n" }],
    ],
    gate: /^docker info /,
    failure: /timed out after 60 s waiting for docker on k8s-node to answer \(last state: Cannot connect to the Docker daemon.*\)\. check journalctl -u docker on k8s-node/,
  },
  {
    step: containerd,
    unit: "containerd",
    host: "k8s-node",
    inventory: { ...baseInventory(), runtime: "containerd" },
    changes: "/etc/containerd/config.toml",
    rules: (healthy) => [
      [
        /^crictl version && crictl info$/,
        healthy
          ? { stdout: 'Version:  0.1.0\nRuntimeName:  containerd\nRuntimeVersion:  1.6.20~ds1\nRuntimeApiVersion:  v1\n{"config": {"containerd": {"runtimes": {"runc": {"options": {"SystemdCgroup": false}}}}}}\n' }
          : { code: 1, stderr: 'validate service connection: CRI v1 runtime API is not implemented for endpoint "unix:///run/containerd/containerd.sock": connect: connection refused\n' },
      ],
    ],
    gate: /^crictl version/,
    failure: /timed out after 60 s waiting for containerd's CRI plugin on k8s-node to answer on \/run\/containerd\/containerd\.sock \(last state: .*connection refused\)\. check journalctl -u containerd on k8s-node/,
  },
  {
    step: apiserver,
    unit: "kube-apiserver",
    host: "k8s-master",
    changes: "/opt/kubernetes/cfg/kube-apiserver.conf",
    rules: (healthy) => [
      [/^rm -f \/opt\/kubernetes\/cfg\/token\.csv$/, {}],
      [/^mkdir -p \/opt\/kubernetes\/logs && /, {}],
      version("kube-apiserver", K8S_RELEASE),
      [/ get --raw \/healthz$/, { stdout: healthy ? "ok" : "[-]etcd failed: reason withheld" }],
    ],
    gate: / get --raw \/healthz$/,
    failure: /timed out after 120 s waiting for kube-apiserver \/healthz on k8s-master \(last state: not ok yet\)\. check etcd health and the apiserver flags\n.*journalctl -u kube-apiserver on k8s-master/s,
  },
  component(controllerManager, "kube-controller-manager", 10257, "controller-manager"),
  component(scheduler, "kube-scheduler", 10259, "scheduler"),
  {
    step: kubelet,
    unit: "kubelet",
    host: "k8s-node",
    changes: "/opt/kubernetes/cfg/kubelet-config.yml",
    rules: (healthy) => [
      version("kubelet", K8S_RELEASE),
      [/kubelet\.kubeconfig && echo joined/, { stdout: "joined\n" }],
      [/^cat '?\/opt\/kubernetes\/cfg\/kubelet\.kubeconfig'? /, { stdout: `    server: ${nodeApiserverURL(parsedInventory())}\n` }],
      [/ss -Hltn 'sport = :10250'/, { stdout: "listening\n" }],
      [/ get node '?k8s-node'? -o jsonpath='\{\.status\.conditions/, { stdout: healthy ? "True" : "False" }],
      [/ get node '?k8s-node'? -o json$/, { stdout: JSON.stringify({ metadata: { labels: { "node-role.kubernetes.io/node": "" } }, spec: {} }) }],
    ],
    gate: /jsonpath='\{\.status\.conditions/,
    failure: /timed out after 180 s waiting for node k8s-node to register .* and turn Ready \(last state: registered, not Ready yet\)\. check journalctl -u kubelet on k8s-node and kubectl get csr/,
  },
  {
    step: kubeProxy,
    unit: "kube-proxy",
    host: "k8s-node",
    changes: "/opt/kubernetes/cfg/kube-proxy-config.yml",
    // its gate is the unit's own: active, and no restart by systemd for 3 s
    rules: (healthy) => [version("kube-proxy", K8S_RELEASE), ...(healthy ? [] : [[/^systemctl show -p ActiveState -p NRestarts kube-proxy$/, { stdout: "ActiveState=activating\nNRestarts=4\n" }] as Rule])],
    gate: /^systemctl show -p ActiveState -p NRestarts kube-proxy$/,
    failure: /timed out after 60 s waiting for kube-proxy active on k8s-node \(last state: activating\)\. check the unit with journalctl -u kube-proxy on k8s-node/,
  },
  {
    step: apiserverProxy,
    unit: "apiserver-proxy",
    host: "k8s-node2",
    inventory: twoMasters(),
    // the unit file: a restart (a new haproxy.cfg alone would be a reload)
    changes: "/usr/lib/systemd/system/apiserver-proxy.service",
    rules: (healthy) => [
      [/ldd /, {}],
      version("/opt/apiserver-proxy/bin/haproxy", "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/"),
      [/ -c -q -f /, {}],
      [/show stat/, { stdout: healthy ? proxyStats("UP", "L7OK") : proxyStats("DOWN", "L4CON") }],
    ],
    gate: /show stat/,
    failure: /timed out after 60 s waiting for an apiserver UP behind the proxy on k8s-node2 \(an authenticated \/readyz passed\) \(last state: k8s-master DOWN \(L4CON\), k8s-node DOWN \(L4CON\)\)\. check journalctl -u apiserver-proxy on k8s-node2/,
  },
  {
    step: etcdBackup,
    unit: "etcd-backup.timer",
    host: "k8s-node",
    changes: "/usr/lib/systemd/system/etcd-backup.timer",
    // its gate: the timer is active and has a next run
    rules: (healthy) => [[/^systemctl is-active etcd-backup\.timer; /, { stdout: healthy ? "active\nSat 2026-12-05 02:00:00 UTC\n" : "inactive\n\n" }]],
    gate: /^systemctl is-active etcd-backup\.timer/,
    failure: /etcd-backup\.timer is inactive on k8s-node after start\. Fix: systemctl status etcd-backup\.timer on k8s-node/,
  },
];

function run(c: Case, changed: string[], healthy = true) {
  const rules = [...c.rules(healthy), otherRuntime(), probe(c.unit), systemctlStart(c.unit), staysActive(c.unit), journal(c.unit)];
  return scriptedHost({ rules, changed, host: c.host, inventory: c.inventory, files: c.files });
}

for (const c of CASES) {
  describe(`step ${c.step.name}`, () => {
    test("nothing changed: the running unit is left running, not restarted", async () => {
      const h = run(c, []);
      const summary = await h.run(c.step);
      assert.equal(h.index(restartOf(c.unit)), -1, h.commands.join("\n"));
      assert.ok(h.index(new RegExp(`systemctl start (--no-block )?${c.unit.replace(/\./g, "\\.")}$`)) >= 0, "an idempotent start keeps the unit enabled and started");
      assert.match(summary, new RegExp(`\\b0(/\\d+)? files changed, ${c.unit.replace(/\./g, "\\.")} running`));
    });

    test("a changed file restarts the unit, then the gate is waited on", async () => {
      const h = run(c, [c.changes]);
      const summary = await h.run(c.step);
      const restart = h.index(restartOf(c.unit));
      assert.ok(restart >= 0, `not restarted:\n${h.commands.join("\n")}`);
      assert.ok(h.commands.slice(restart + 1).some((cmd) => c.gate.test(cmd)), `no gate after the restart:\n${h.commands.join("\n")}`);
      assert.deepEqual(h.uploaded, [c.changes]);
      assert.match(summary, new RegExp(`${c.unit.replace(/\./g, "\\.")} restarted`));
    });

    test("a gate that never passes fails the step, naming the step, the host and the fix", async () => {
      const h = run(c, [c.changes], false);
      const t0 = h.clock.now();
      await assert.rejects(h.run(c.step), (e: Error) => {
        assert.match(e.message, new RegExp(`^step ${c.step.name} on ${c.host} failed: `));
        assert.match(e.message, c.failure);
        return true;
      });
      assert.ok(h.index(restartOf(c.unit)) >= 0, "the gate failed before the restart");
      assert.ok(h.clock.now() - t0 < 200_000, "waited past its longest timeout");
    });
  });
}
