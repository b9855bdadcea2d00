// The conformance tests that catch binary-install defects (test/helpers/conformance.ts SMOKE_FOCUS),
// run by the real v1.17.17 e2e.test against a binkube cluster whose master is not a node (lab1:
// etcd + master; lab2/lab3: etcd + node): the layout where an apiserver without kube-proxy and the
// pod network loses webhooks, CRD conversion and aggregated APIs.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { labDown, labUp, sshArgs } from "../../lab/lab";
import type { LabState } from "../../lab/lab";
import { plain, run } from "../helpers/proc";
import { tempDir } from "../helpers/fixtures";
import { labSkipReason } from "../helpers/e2e";
import { ROOT, appendClusterSettings, clusterClients, clusterFixtures, writeDiagnostics } from "../helpers/cluster";
import { SMOKE_FOCUS, conformanceFixtures, parseJunit, progressLine, runConformance, setTopology, summarize } from "../helpers/conformance";

const skip = process.env.BINKUBE_E2E_CLUSTER === "0" ? "BINKUBE_E2E_CLUSTER=0" : labSkipReason();

describe("conformance smoke subset on a cluster whose master is not a node", { skip }, () => {
  const dir = tempDir("binkube-conformance-");
  const bin = path.join(dir, "bin");
  const images = path.join(dir, "images");
  const { kubectlOk } = clusterClients(dir, bin);
  let lab: LabState;
  let deployed = false;

  before(async () => {
    await clusterFixtures(bin, images);
    await conformanceFixtures(bin, images);
    lab = await labUp({ dir, hosts: 3, log: () => undefined });
    setTopology(path.join(dir, "cluster.yaml"), "ha");
    appendClusterSettings(dir);
  });

  after(async () => {
    await labDown({ dir, log: () => undefined });
  });

  test("cdktf deploy: lab1 runs kubelet and kube-proxy, tainted, without the node role", async () => {
    const env = { ...process.env, BINKUBE_CONFIG: path.join(dir, "cluster.yaml"), CHECKPOINT_DISABLE: "1" };
    const r = await run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 1_500_000 });
    fs.writeFileSync(path.join(dir, "deploy.log"), plain(r.stdout + r.stderr));
    if (r.code !== 0) await writeDiagnostics(dir, (...a) => run(path.join(bin, "kubectl"), ["--kubeconfig", path.join(dir, "admin.kubeconfig"), ...a]), Object.fromEntries(lab.hosts.map((h) => [h.name, sshArgs(lab, h.name)])));
    assert.equal(r.code, 0, `deploy failed: ${dir}/deploy.log`);
    deployed = true;
    const taints = await kubectlOk("get", "node", "lab1", "-o", "jsonpath={.spec.taints[*].key}:{.spec.taints[*].effect}");
    assert.equal(taints, "node-role.kubernetes.io/master:NoSchedule");
    console.log(`# deploy (lab1 etcd + master only): ${(r.ms / 1000).toFixed(1)} s`);
  });

  test("e2e.test v1.17.17: every smoke conformance test passes (webhooks, CRD conversion, aggregator, DNS, proxy, Services, exec/logs)", async () => {
    assert.ok(deployed, "no cluster: the deploy above failed");
    const e2e = await runConformance({
      bin,
      kubeconfig: path.join(dir, "admin.kubeconfig"),
      reportDir: path.join(dir, "report"),
      focus: SMOKE_FOCUS,
      timeoutMs: 2_400_000,
      onProgress: (p, ms) => p.completed > 0 && console.log(`# ${progressLine(p, ms)}`),
    });
    assert.ok(fs.existsSync(e2e.junit), `e2e.test exited ${e2e.code} without junit: ${e2e.log}`);
    const s = summarize(parseJunit(fs.readFileSync(e2e.junit, "utf8")), { focus: SMOKE_FOCUS, wallMs: e2e.ms, topology: "ha" });
    fs.writeFileSync(path.join(dir, "report", "summary.md"), s.text);
    console.log(`# conformance smoke: ${s.passed} passed, ${s.failed} failed in ${(e2e.ms / 1000).toFixed(0)} s`);
    assert.equal(s.failed, 0, s.text);
    assert.ok(s.passed >= 30, `only ${s.passed} ran:\n${s.text}`);
    assert.equal(e2e.code, 0, `e2e.test exited ${e2e.code}: ${e2e.log}`);
  });

  test("kubectl top nodes: metrics-server's aggregated API answers for every node, the master that is not a node included", async () => {
    assert.ok(deployed, "no cluster: the deploy above failed");
    const out = await kubectlOk("top", "nodes", "--no-headers");
    const rows = out.split("\n").map((l) => l.trim().split(/\s+/));
    assert.deepEqual(rows.map((r) => r[0]).sort(), ["lab1", "lab2", "lab3"], out);
    for (const r of rows) assert.match(`${r[1]} ${r[3]}`, /^\d+m \d+Mi$/, out);
  });
});
