// kube-proxy's gate: its first rule sync (read from its loopback metrics) ends the wait at once;
// without it (metrics not answering, no sync yet) the 3 s crash watch still decides, as before.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { kubeProxy } from "../../src/steps/kube-proxy";
import { Rule, scriptedHost } from "../helpers/scripted-host";

const UNIT = "/etc/systemd/system/kube-proxy.service";
const probe: Rule = [/^printf 'U %s A %s\\n' kube-proxy /, { stdout: "U kube-proxy A active\nU kube-proxy E enabled\nU kube-proxy T \n" }];
const VERSION: Rule = [/kube-proxy --version/, { stdout: "Kubernetes v1.17.17\n" }];
const RESTART: Rule = [/^systemctl daemon-reload && systemctl enable --quiet kube-proxy && systemctl restart kube-proxy$/, {}];
const ACTIVE: Rule = [/^systemctl show -p ActiveState -p NRestarts kube-proxy$/, { stdout: "ActiveState=active\nNRestarts=0\n" }];
const metrics = (answer: (n: number) => string): Rule => [/^bash -c .*dev\/tcp\/127\.0\.0\.1\/10249.*kubeproxy_sync_proxy_rules_last_timestamp_seconds/, (_c, n) => ({ stdout: answer(n) })];

async function gate(metricsRule: Rule) {
  const h = scriptedHost({ rules: [probe, VERSION, RESTART, ACTIVE, metricsRule], changed: [UNIT], files: [{ path: UNIT, mode: 0o644, content: "[Unit]\n" }], host: "k8s-node" });
  const t0 = h.clock.now();
  await h.run(kubeProxy);
  return { took: h.clock.now() - t0, polls: h.commands.filter((c) => /^systemctl show -p ActiveState/.test(c)).length, h };
}

describe("kube-proxy step", () => {
  test("the first rule sync ends the gate: 0 before it, the sync's time after it", async () => {
    const { took, polls, h } = await gate(metrics((n) => `kubeproxy_sync_proxy_rules_last_timestamp_seconds ${n < 3 ? "0" : "1.7965723306318684e+09"}\n`));
    assert.ok(h.index(/dev\/tcp\/127\.0\.0\.1\/10249/) > h.index(/systemctl restart kube-proxy$/), "asked after the restart");
    assert.equal(polls, 3, "three polls: two before the sync, the third sees it");
    assert.ok(took < 1000, `ended at the sync, 250 ms a poll (took ${took} ms of clock time)`);
  });

  test("no metrics (not listening, or no sync ever): the 3 s crash watch decides", async () => {
    const { took } = await gate(metrics(() => ""));
    assert.ok(took >= 3000, `watched 3 s (took ${took} ms)`);
  });
});
