// The conformance runner's reading of e2e.test: its progress lines, its junit, the failure classes.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { SMOKE_FOCUS, classify, parseJunit, parseProgress, progressLine, setTopology, summarize } from "../helpers/conformance";
import { tempDir } from "../helpers/fixtures";

// The shape ginkgo v1's junit reporter writes (one passed, one failed, one skipped spec).
const JUNIT = `<?xml version="1.0" encoding="UTF-8"?>
  <testsuite name="Kubernetes e2e suite" tests="3" failures="1" errors="0" time="95.2">
      <testcase name="[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should mutate configmap [Conformance]" classname="Kubernetes e2e suite" time="31.5"></testcase>
      <testcase name="[sig-network] DNS should provide DNS for services  [Conformance]" classname="Kubernetes e2e suite" time="63.7">
          <failure type="Failure">/workspace/test/e2e/network/dns_common.go:463&#xA;Unexpected error:&#xA;    &lt;*errors.errorString | 0xc000&gt;: {&#34;timed out waiting for the condition&#34;}&#xA;</failure>
          <system-out>lots of log</system-out>
      </testcase>
      <testcase name="[sig-storage] Secrets should be consumable [Conformance]" classname="Kubernetes e2e suite" time="0">
          <skipped></skipped>
      </testcase>
  </testsuite>`;

describe("conformance report", () => {
  test("junit: passed, failed (message unescaped) and skipped specs", () => {
    const cases = parseJunit(JUNIT);
    assert.deepEqual(
      cases.map((c) => [c.status, c.seconds]),
      [["passed", 31.5], ["failed", 63.7], ["skipped", 0]],
    );
    assert.match(cases[1]!.failure!, /^\/workspace\/test\/e2e\/network\/dns_common.go:463\nUnexpected error:\n {4}<\*errors.errorString \| 0xc000>: \{"timed out waiting for the condition"\}$/);
  });

  test("summary: counts, each failure with its class and first error line (not its file:line)", () => {
    const s = summarize(parseJunit(JUNIT), { focus: "x", wallMs: 95_000, topology: "ha" });
    assert.deepEqual([s.passed, s.failed, s.skipped], [1, 1, 1]);
    assert.match(s.text, /\| 1 \| 1 \| 1 \|/);
    assert.match(s.text, /\| \[sig-network\] DNS should provide DNS for services {2}\[Conformance\] \| product defect \| Unexpected error: \|/);
  });

  test("a missing image is told apart from a product defect", () => {
    assert.equal(classify({ name: "x", seconds: 1, status: "failed", failure: 'pod "a" ... reason: ErrImagePull' }), "missing image");
    assert.equal(classify({ name: "x", seconds: 1, status: "failed", failure: "context deadline exceeded" }), "product defect");
  });

  test("progress lines: parsed from e2e.test's reporter, shown with an estimate", () => {
    const p = parseProgress('•{"msg":"PASSED [sig-network] Proxy version v1 should proxy through a service and a pod  [Conformance]","total":40,"completed":10,"skipped":100,"failed":1}')!;
    assert.equal(p.completed, 10);
    assert.equal(progressLine(p, 600_000), "test 10/40 (1 failed), 10m00s elapsed, about 30m00s left: PASSED [sig-network] Proxy version v1 should proxy through a service and a pod ");
    assert.equal(parseProgress("SSSSSS"), undefined);
    assert.equal(parseProgress('{"msg":"not json'), undefined);
  });

  test("the smoke focus selects at least 30 of the 280 conformance tests, every one of them [Conformance]", () => {
    const names = fs.readFileSync(path.join(__dirname, "conformance-v1.17.17.txt"), "utf8").trim().split("\n");
    assert.equal(names.length, 280);
    const re = new RegExp(SMOKE_FOCUS);
    const picked = names.filter((n) => re.test(n));
    assert.ok(picked.length >= 30, `${picked.length} picked`);
    for (const area of ["AdmissionWebhook", "CustomResourceConversionWebhook", "Aggregator", "DNS", "Proxy", "NodePort", "websockets", "Kubectl logs"]) assert.ok(picked.some((n) => n.includes(area)), area);
  });

  test("topology ha makes lab1 a master that is not a node, and refuses an inventory it does not recognise", () => {
    const dir = tempDir("binkube-topology-");
    const f = path.join(dir, "cluster.yaml");
    fs.writeFileSync(f, "hosts:\n  - name: lab1\n    address: 10.250.213.11\n    roles: [etcd, master, node]\n  - name: lab2\n    address: 10.250.213.12\n    roles: [etcd, node]\n");
    setTopology(f, "ha");
    assert.match(fs.readFileSync(f, "utf8"), /name: lab1\n {4}address: 10.250.213.11\n {4}roles: \[etcd, master\]\n {2}- name: lab2\n {4}address: 10.250.213.12\n {4}roles: \[etcd, node\]/);
    assert.throws(() => setTopology(f, "ha"), /lab1 is not \[etcd, master, node\]/);
  });
});
