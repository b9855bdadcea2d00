// An existing cluster deployed by the previous version of binkube (before the CIS-hardened
// defaults) is upgraded by `cdktf deploy` with this one: rolling, with no moment without a serving
// apiserver on its 2 masters, existing Secrets readable (and now encrypted at rest), nodes Ready.
// lab1: etcd + master + node, lab2: etcd + master + node, lab3: etcd + node.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";
import { labDown, labUp, sshArgs } from "../../lab/lab";
import { hostAddress } from "../../lab/config";
import type { LabState } from "../../lab/lab";
import { CACHE, ROOT, appendClusterSettings, clusterClients, clusterFixtures, waitUntil } from "../helpers/cluster";
import { labSkipReason } from "../helpers/e2e";
import { tempDir } from "../helpers/fixtures";
import { plain, run } from "../helpers/proc";

/** The last version with the earlier defaults (static token file, no PSP, no encryption, etcd as root). */
const PREVIOUS = "474740d";

function why(): string | undefined {
  const lab = labSkipReason();
  if (lab) return lab;
  if (!fs.existsSync(path.join(CACHE, "k8s-v1.17.17", "bin", "kubelet"))) return `Kubernetes v1.17.17 binaries are not cached in ${CACHE} (build them with test/fixtures/k8s-binaries.sh)`;
  try {
    execFileSync("git", ["-C", ROOT, "cat-file", "-e", `${PREVIOUS}^{commit}`], { stdio: "ignore" });
  } catch {
    return `the previous version ${PREVIOUS} is not in this clone's history`;
  }
  return undefined;
}

const skip = process.env.BINKUBE_E2E_CLUSTER === "0" ? "BINKUBE_E2E_CLUSTER=0" : why();

describe("upgrading a cluster of the previous version to the hardened defaults", { skip }, () => {
  const dir = tempDir("binkube-upgrade-");
  const bin = path.join(dir, "bin");
  const old = path.join(dir, "binkube-previous");
  let lab: LabState;
  /** Address of labN in this suite's lab (its slot's addresses, whichever slot it got). */
  const ip = (n: number) => hostAddress(lab.slot, n);
  let env: NodeJS.ProcessEnv;
  const deploy = (cwd: string) => run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd, timeoutMs: 1_500_000 });
  const { kubectlOk, etcdctl, pollApi } = clusterClients(dir, bin);
  const ssh = (host: string, command: string) => run("ssh", [...sshArgs(lab, host), command]);
  const failed = (out: string) => out.split("\n").filter((l) => /binkube:|Error/.test(l)).slice(-30).join("\n");

  before(async () => {
    await clusterFixtures(bin, path.join(dir, "images"));
    // The previous version, as an operator had it: its own checkout, the same npm packages.
    execFileSync("git", ["-C", ROOT, "worktree", "add", "--detach", old, PREVIOUS], { stdio: "pipe" });
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(old, "node_modules"));
    lab = await labUp({ dir, hosts: 3, log: () => undefined });
    const file = path.join(dir, "cluster.yaml");
    const text = fs.readFileSync(file, "utf8");
    const promoted = text.replace(/(  - name: lab2\n    address: \S+\n    roles: )\[etcd, node\]/, "$1[etcd, master, node]");
    assert.notEqual(promoted, text, "lab2's roles line not found in cluster.yaml");
    fs.writeFileSync(file, promoted);
    appendClusterSettings(dir);
    env = { ...process.env, BINKUBE_CONFIG: file, CHECKPOINT_DISABLE: "1" };
  });

  after(async () => {
    await labDown({ dir, log: () => undefined });
    try {
      execFileSync("git", ["-C", ROOT, "worktree", "remove", "--force", old], { stdio: "pipe" });
    } catch {
      /* already gone */
    }
  });

  test("the previous version deploys the 2-master cluster (static bootstrap token, etcd as root)", async () => {
    const r = await deploy(old);
    const out = plain(r.stdout + r.stderr);
    fs.writeFileSync(path.join(dir, "deploy-previous.log"), out);
    assert.equal(r.code, 0, failed(out));
    assert.equal((await ssh("lab1", "test -f /opt/kubernetes/cfg/token.csv && ps -o user= -C etcd")).stdout.trim(), "root", "not the previous layout");
    await kubectlOk("create", "secret", "generic", "before-upgrade", "--from-literal=k=written-by-the-previous-version");
    const raw = await etcdctl([`--endpoints=https://${ip(1)}:2379`, "get", "/registry/secrets/default/before-upgrade", "--print-value-only"]);
    assert.ok(raw.stdout.includes("written-by-the-previous-version"), "the previous version stored Secrets in plain text");
  });

  test("cdktf deploy upgrades it: no API outage, existing Secrets readable and now encrypted, nodes Ready, hardened settings in place", async () => {
    const api = pollApi([ip(1), ip(2)]);
    const r = await deploy(ROOT);
    const polls = await api.stop();
    const out = plain(r.stdout + r.stderr);
    fs.writeFileSync(path.join(dir, "deploy-upgrade.log"), out);
    assert.equal(r.code, 0, failed(out));
    console.log(`# upgrade to the hardened defaults: ${(r.ms / 1000).toFixed(1)} s; ${polls.describe}`);
    assert.equal(polls.outages, 0, polls.describe);
    assert.ok(polls.polls > 20, `only ${polls.polls} polls`);
    // apiservers rolled one at a time: both restarted, never together (the poller above)
    assert.match(out, /✓ step apiserver on lab1: .*kube-apiserver restarted/);
    assert.match(out, /✓ step apiserver on lab2: .*kube-apiserver restarted/);
    assert.match(out, /✓ step bootstrap on lab1: .*Secrets rewritten with key-/);
    const back = await kubectlOk("get", "secret", "before-upgrade", "-o", "jsonpath={.data.k}");
    assert.equal(Buffer.from(back, "base64").toString(), "written-by-the-previous-version");
    const raw = await etcdctl([`--endpoints=https://${ip(1)}:2379`, "get", "/registry/secrets/default/before-upgrade", "--print-value-only"]);
    assert.ok(raw.stdout.startsWith("k8s:enc:aescbc:v1:"), "the existing Secret was not rewritten encrypted");
    const ready = await kubectlOk("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status} {end}");
    assert.deepEqual(ready.split(" ").filter(Boolean).sort(), ["lab1=True", "lab2=True", "lab3=True"]);
    for (const host of ["lab1", "lab2"]) {
      assert.equal((await ssh(host, "test -e /opt/kubernetes/cfg/token.csv && echo present || echo gone")).stdout.trim(), "gone", `${host}: the static token file lingers`);
    }
    for (const host of ["lab1", "lab2", "lab3"]) {
      assert.equal((await ssh(host, "ps -o user= -C etcd")).stdout.trim(), "etcd", `${host}: etcd does not run as its own user`);
      assert.equal((await ssh(host, "stat -c %a:%U /var/lib/etcd/default.etcd")).stdout.trim(), "700:etcd");
    }
    // the apiserver now verifies the kubelets' serving certificates: logs through it still work
    await waitUntil("kubectl logs through a verified kubelet", async () => {
      const pod = await kubectlOk("-n", "kube-system", "get", "pods", "-l", "app=flannel", "-o", "jsonpath={.items[0].metadata.name}");
      return (await clusterClients(dir, bin).kubectl("-n", "kube-system", "logs", pod, "--tail=1")).code === 0;
    }, 120_000);
    // a second deploy changes nothing
    const again = plain((await deploy(ROOT)).stdout);
    assert.match(again, /No changes|0 added, 0 changed, 0 destroyed/);
  });
});
