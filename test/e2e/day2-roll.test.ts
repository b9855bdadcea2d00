// Day 2 on a running 2-master cluster: an in-place upgrade v1.17.12 → v1.17.17 in the
// version-skew order, node changes rolling one node at a time (a broken value stops at the first
// node; a drain that a PodDisruptionBudget blocks stops the roll with the node cordoned), and an
// etcd restore from a snapshot. lab1: etcd + master + node, lab2: etcd + master + node, lab3: etcd + node.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, beforeEach, describe, test } from "node:test";
import { labDown, labUp, sshArgs } from "../../lab/lab";
import { hostAddress } from "../../lab/config";
import type { LabState } from "../../lab/lab";
import { FIXTURES, ROOT, appendClusterSettings, clusterClients, clusterFixtures, waitUntil, writeDiagnostics } from "../helpers/cluster";
import { clusterSkipReason } from "../helpers/e2e";
import { tempDir } from "../helpers/fixtures";
import { describeNodePolls, readNodePolls, startNodePoller } from "../helpers/node-poller";
import { plain, run } from "../helpers/proc";

const OLD = "v1.17.12";
const NEW = "v1.17.17";
const NODES = ["lab1", "lab2", "lab3"];

const skip = clusterSkipReason();

/** Resource creations in the order Terraform reported them: [id, "start" | "done"]. */
function creations(out: string): [string, "start" | "done"][] {
  return [...out.matchAll(/terraform_data\.(\w+): (Creating\.\.\.|Creation complete)/g)].map((m) => [m[1]!, m[2] === "Creating..." ? "start" : "done"]);
}

/**
 * The nodes whose docker/kubelet/kube-proxy resources were replaced, in roll order, after checking
 * that no node started before the one before it had finished (all of its node resources done).
 */
function nodeRollOrder(out: string): string[] {
  const ev = creations(out);
  const hostOf = (id: string) => /^(?:runtime|kubelet|kube_proxy)_(lab\d)$/.exec(id)?.[1];
  const span = new Map<string, { start: number; end: number }>();
  ev.forEach(([id, kind], i) => {
    const h = hostOf(id);
    if (!h) return;
    const s = span.get(h) ?? { start: i, end: i };
    if (kind === "start") s.start = Math.min(s.start, i);
    else s.end = Math.max(s.end, i);
    span.set(h, s);
  });
  const order = [...span.entries()].sort((a, b) => a[1].start - b[1].start);
  for (let i = 1; i < order.length; i++) {
    assert.ok(order[i]![1].start > order[i - 1]![1].end, `${order[i]![0]} started before ${order[i - 1]![0]} finished`);
  }
  return order.map(([h]) => h);
}

/**
 * The drain timeout this cluster runs with: the PDB case waits it out once. A drain's wait includes
 * each evicted pod's termination, and one CI run saw a spread pod (2 s grace) still terminating
 * after 20 s on the loaded lab, which stopped the roll that should have passed; 45 s leaves room.
 */
const DRAIN_TIMEOUT_S = 45;

describe("day 2: upgrade in place, rolling node changes, etcd restore", { skip }, () => {
  const dir = tempDir("binkube-day2-");
  const bin = path.join(dir, "bin");
  const bin12 = path.join(dir, "bin-1.17.12");
  const file = path.join(dir, "cluster.yaml");
  let lab: LabState;
  /** Address of labN in this suite's lab (its slot's addresses, whichever slot it got). */
  const ip = (n: number) => hostAddress(lab.slot, n);
  let env: NodeJS.ProcessEnv;
  /** cdktf deploy; its plain output is kept as DIR/deploy-NAME.log for the reader of a failure. */
  const deploy = async (name: string) => {
    const r = await run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 1_500_000 });
    const out = plain(r.stdout + r.stderr);
    fs.writeFileSync(path.join(dir, `deploy-${name}.log`), out);
    return { code: r.code, ms: r.ms, out };
  };
  const { kubectl, kubectlOk, etcdctl, pollApi } = clusterClients(dir, bin);
  const ssh = (host: string, command: string) => run("ssh", [...sshArgs(lab, host), command]);
  const failed = (out: string) => out.split("\n").filter((l) => /binkube:|Error/.test(l)).slice(-30).join("\n");
  const edit = (f: (text: string) => string) => {
    const text = fs.readFileSync(file, "utf8");
    const next = f(text);
    assert.notEqual(next, text, "the inventory edit matched nothing");
    fs.writeFileSync(file, next);
  };
  const unitId = async (host: string, unit: string) => (await ssh(host, `systemctl show -p InvocationID --value ${unit}`)).stdout.trim();

  /** Polls nodes and the spread Deployment: most nodes NotReady or cordoned at once, fewest ready replicas. */
  const pollCluster = () => {
    let polling = true;
    const stats = { polls: 0, maxUnavailable: 0, minReady: Infinity, maxCordoned: 0 };
    const loop = (async () => {
      while (polling) {
        const [nodes, deployment] = await Promise.all([kubectl("get", "nodes", "-o", "json"), kubectl("get", "deploy", "spread", "-o", "jsonpath={.status.readyReplicas}")]);
        if (nodes.code === 0) {
          const items = (JSON.parse(nodes.stdout) as { items: { spec: { unschedulable?: boolean }; status: { conditions: { type: string; status: string }[] } }[] }).items;
          const down = items.filter((n) => n.spec.unschedulable || !n.status.conditions.some((c) => c.type === "Ready" && c.status === "True")).length;
          stats.maxUnavailable = Math.max(stats.maxUnavailable, down);
          stats.maxCordoned = Math.max(stats.maxCordoned, items.filter((n) => n.spec.unschedulable).length);
        }
        if (deployment.code === 0) stats.minReady = Math.min(stats.minReady, Number(deployment.stdout || 0));
        stats.polls++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    })();
    return { stop: async () => ((polling = false), await loop, stats) };
  };

  let broken: string | undefined;
  beforeEach(() => {
    if (broken) throw new Error(`not run: ${broken}`);
  });

  before(async () => {
    await clusterFixtures(bin, path.join(dir, "images"));
    // the older release beside the current one: the same runtime, etcd and CNI, its own Kubernetes
    fs.cpSync(bin, bin12, { recursive: true });
    const r = await run("bash", [path.join(FIXTURES, "k8s-binaries.sh"), bin12], { env: { ...process.env, BINKUBE_K8S_VERSION: OLD }, timeoutMs: 1_800_000 });
    assert.equal(r.code, 0, `k8s-binaries.sh ${OLD}: ${r.stderr.slice(-2000)}`);
    lab = await labUp({ dir, hosts: 3, log: () => undefined });
    edit((t) => t.replace(/(  - name: lab2\n    address: \S+\n    roles: )\[etcd, node\]/, "$1[etcd, master, node]").replace("  dir: bin\n", `  dir: bin-1.17.12\nkubernetes:\n  version: ${OLD}\nrolling:\n  drainTimeoutSeconds: ${DRAIN_TIMEOUT_S}\n`));
    appendClusterSettings(dir);
    env = { ...process.env, BINKUBE_CONFIG: file, CHECKPOINT_DISABLE: "1" };
  });

  after(async () => {
    await labDown({ dir, log: () => undefined });
  });

  test(`cdktf deploy brings up ${OLD} on 2 masters; a Deployment spreads over the 3 nodes`, async () => {
    const r = await deploy("old");
    const out = r.out;
    if (r.code !== 0) broken = `the ${OLD} deploy failed (diagnostics: ${await writeDiagnostics(dir, kubectl, Object.fromEntries(NODES.map((h) => [h, sshArgs(lab, h)])))})`;
    assert.equal(r.code, 0, failed(out));
    assert.match(await kubectlOk("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"), new RegExp(`^${OLD} ${OLD} ${OLD}$`));
    const spread = `apiVersion: apps/v1
kind: Deployment
metadata: { name: spread }
spec:
  replicas: 3
  selector: { matchLabels: { app: spread } }
  template:
    metadata: { labels: { app: spread } }
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - { labelSelector: { matchLabels: { app: spread } }, topologyKey: kubernetes.io/hostname }
      # sleep as PID 1 ignores SIGTERM: without a short grace period each eviction waits out 30 s
      terminationGracePeriodSeconds: 2
      containers:
      - { name: c, image: "busybox:1.31", imagePullPolicy: Never, command: ["sleep", "36000"] }
`;
    fs.writeFileSync(path.join(dir, "spread.yaml"), spread);
    await kubectlOk("apply", "-f", path.join(dir, "spread.yaml"));
    await waitUntil("3 spread pods ready", async () => (await kubectl("get", "deploy", "spread", "-o", "jsonpath={.status.readyReplicas}")).stdout === "3");
  });

  test(`upgrade ${OLD} → ${NEW}: control plane first, then nodes one at a time; the API answers throughout; every component reports ${NEW}`, async () => {
    edit((t) => t.replace("  dir: bin-1.17.12\n", "  dir: bin\n").replace(`  version: ${OLD}\n`, `  version: ${NEW}\n`));
    const api = pollApi([ip(1), ip(2)]);
    const cluster = pollCluster();
    // lab3 is no master: its kubelet and kube-proxy reach the API through its node-local proxy
    const poller = startNodePoller(sshArgs(lab, "lab3"));
    const since = Date.now();
    const r = await deploy("upgrade");
    const [polls, seen] = [await api.stop(), await cluster.stop()];
    const node = readNodePolls(await poller.stop((c) => ssh("lab3", c)), since);
    const out = r.out;
    assert.equal(r.code, 0, failed(out));
    console.log(`# upgrade ${OLD} → ${NEW}: ${(r.ms / 1000).toFixed(1)} s; ${polls.describe}; ${describeNodePolls(node, "lab3 → its apiserver proxy")}; spread: min ${seen.minReady}/3 ready; nodes unavailable at once: max ${seen.maxUnavailable} (${seen.polls} polls)`);
    assert.equal(polls.outages, 0, polls.describe);
    assert.ok(node.polls > 100, `only ${node.polls} polls on lab3`);
    assert.equal(node.failures, 0, describeNodePolls(node, "lab3 → its apiserver proxy"));
    for (const m of ["lab1", "lab2"]) assert.match(out, new RegExp(`step apiserver on ${m}: drained on 3 apiserver proxies for its restart`), m);
    assert.ok(seen.minReady >= 2, `the spread Deployment fell to ${seen.minReady} ready pods`);
    assert.ok(seen.maxUnavailable <= 1, `${seen.maxUnavailable} nodes unavailable at once`);
    // the order: every apiserver, then controller-managers and schedulers, then the nodes one by one
    const ev = creations(out);
    const last = (re: RegExp) => Math.max(...ev.flatMap(([id, k], i) => (re.test(id) && k === "done" ? [i] : [])));
    const first = (re: RegExp) => Math.min(...ev.flatMap(([id, k], i) => (re.test(id) && k === "start" ? [i] : [])));
    assert.ok(last(/^apiserver_/) < first(/^(controller_manager|scheduler)_/), "a controller-manager or scheduler restarted before every apiserver was upgraded");
    assert.ok(last(/^(apiserver|controller_manager|scheduler)_/) < first(/^(runtime|kubelet|kube_proxy)_/), "a node restarted before the control plane was upgraded");
    assert.deepEqual([...nodeRollOrder(out)].sort(), NODES);
    // every component reports the new release
    assert.match(await kubectlOk("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"), new RegExp(`^${NEW} ${NEW} ${NEW}$`));
    assert.match(await kubectlOk("get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeProxyVersion}"), new RegExp(`^${NEW} ${NEW} ${NEW}$`));
    for (const a of [ip(1), ip(2)]) assert.equal(JSON.parse(await kubectlOk("--server", `https://${a}:6443`, "get", "--raw", "/version")).gitVersion, NEW, a);
    for (const h of ["lab1", "lab2"]) {
      for (const c of ["kube-controller-manager", "kube-scheduler"]) assert.match((await ssh(h, `/opt/kubernetes/bin/${c} --version`)).stdout, new RegExp(`Kubernetes ${NEW}`), `${c} on ${h}`);
    }
  });

  test("binaries that are not kubernetes.version are refused before any unit restarts", async () => {
    edit((t) => t.replace("  dir: bin\n", "  dir: bin-1.17.12\n"));
    const before = await unitId("lab1", "kube-apiserver");
    const r = await deploy("refused-binaries");
    const out = r.out;
    assert.notEqual(r.code, 0);
    assert.match(out, /step apiserver on lab\d: kube-apiserver \(\S+\/bin-1\.17\.12\/kube-apiserver\) is v1\.17\.12, but kubernetes\.version says v1\.17\.17; nothing was changed/);
    edit((t) => t.replace("  dir: bin-1.17.12\n", "  dir: bin\n"));
    const again = await deploy("refused-binaries-fixed");
    assert.equal(again.code, 0, failed(again.out));
    assert.equal(await unitId("lab1", "kube-apiserver"), before, "the apiserver restarted for the refused binaries");
  });

  test("a kubelet setting rolls one node at a time; a broken value stops at the first node, the others untouched", async () => {
    edit((t) => t.replace("kubelet:\n  extraArgs:\n", 'kubelet:\n  extraArgs:\n    max-pods: "120"\n'));
    const cluster = pollCluster();
    const r = await deploy("kubelet-setting");
    const seen = await cluster.stop();
    const out = r.out;
    assert.equal(r.code, 0, failed(out));
    const order = nodeRollOrder(out);
    assert.deepEqual([...order].sort(), NODES);
    console.log(`# kubelet setting roll: ${(r.ms / 1000).toFixed(1)} s, order ${order.join(" → ")}, nodes unavailable at once: max ${seen.maxUnavailable}`);
    assert.ok(seen.maxUnavailable <= 1, `${seen.maxUnavailable} nodes unavailable at once`);
    assert.equal(await kubectlOk("get", "nodes", "-o", "jsonpath={.items[*].status.capacity.pods}"), "120 120 120");

    const ids = Object.fromEntries(await Promise.all(NODES.map(async (h) => [h, await unitId(h, "kubelet")] as const)));
    edit((t) => t.replace('    max-pods: "120"\n', '    max-pods: "120"\n    node-status-update-frequency: not-a-duration\n'));
    const bad = await deploy("kubelet-broken");
    const badOut = bad.out;
    assert.notEqual(bad.code, 0, "a kubelet that cannot start must fail the deploy");
    const stopped = /step kubelet on (lab\d) failed/.exec(badOut)?.[1];
    assert.ok(stopped, `no failed kubelet step named in:\n${failed(badOut)}`);
    assert.equal(stopped, order[0], "the roll did not stop at its first node");
    for (const h of NODES.filter((n) => n !== stopped)) {
      assert.equal(await unitId(h, "kubelet"), ids[h], `${h}'s kubelet restarted`);
      assert.doesNotMatch((await ssh(h, "cat /opt/kubernetes/cfg/kubelet.conf")).stdout, /not-a-duration/, `${h} got the broken value`);
    }
    edit((t) => t.replace("    node-status-update-frequency: not-a-duration\n", ""));
    const fixed = await deploy("kubelet-fixed");
    assert.equal(fixed.code, 0, failed(fixed.out));
    await waitUntil(`${stopped} Ready again`, async () => (await kubectl("get", "node", stopped, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}')).stdout === "True");
  });

  test("a docker binary change drains each node first; a PodDisruptionBudget that allows nothing stops the roll with the node cordoned", async () => {
    // a new dockerd: the same program with bytes appended (ELF ignores them), so its hash changes
    fs.appendFileSync(path.join(bin, "docker", "dockerd"), Buffer.alloc(4096, 1));
    const pdb = "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: { name: spread }\nspec:\n  minAvailable: 3\n  selector: { matchLabels: { app: spread } }\n";
    fs.writeFileSync(path.join(dir, "pdb.yaml"), pdb);
    await kubectlOk("apply", "-f", path.join(dir, "pdb.yaml"));
    const dockerIds = Object.fromEntries(await Promise.all(NODES.map(async (h) => [h, await unitId(h, "docker")] as const)));
    const blocked = await deploy("docker-blocked");
    const blockedOut = blocked.out;
    assert.notEqual(blocked.code, 0, "a drain the PDB blocks must fail the deploy");
    const stuck = new RegExp(`drain of (lab\\d) did not finish within ${DRAIN_TIMEOUT_S} s`).exec(blockedOut)?.[1];
    assert.ok(stuck, `no blocked drain named in:\n${failed(blockedOut)}`);
    assert.match(blockedOut, new RegExp(`${stuck} stays cordoned and the roll stops here`));
    assert.match(blockedOut, /disruption budget/i);
    const cordoned = (await kubectlOk("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.spec.unschedulable} {end}")).trim().split(" ");
    assert.deepEqual(cordoned.sort(), NODES.map((h) => `${h}=${h === stuck ? "true" : ""}`).sort());
    for (const h of NODES) assert.equal(await unitId(h, "docker"), dockerIds[h], `docker restarted on ${h} though the roll stopped`);

    await kubectlOk("delete", "pdb", "spread");
    const cluster = pollCluster();
    const r = await deploy("docker");
    const seen = await cluster.stop();
    const out = r.out;
    assert.equal(r.code, 0, failed(out));
    const order = nodeRollOrder(out);
    console.log(`# docker binary roll with drains: ${(r.ms / 1000).toFixed(1)} s, order ${order.join(" → ")}, cordoned at once: max ${seen.maxCordoned}, spread: min ${seen.minReady}/3 ready`);
    assert.equal(order[0], stuck, "the re-run did not carry on at the cordoned node");
    assert.deepEqual([...order].sort(), NODES);
    assert.ok(seen.maxCordoned <= 1, `${seen.maxCordoned} nodes cordoned at once`);
    for (const h of NODES) {
      assert.match(out, new RegExp(`✓ step runtime on ${h}: .*drained first and uncordoned when Ready`));
      assert.notEqual(await unitId(h, "docker"), dockerIds[h], `docker did not restart on ${h}`);
    }
    assert.equal((await kubectlOk("get", "nodes", "-o", "jsonpath={.items[*].spec.unschedulable}")).trim(), "", "a node stayed cordoned");
    await waitUntil("3 spread pods ready", async () => (await kubectl("get", "deploy", "spread", "-o", "jsonpath={.status.readyReplicas}")).stdout === "3");
  });

  test("etcd restore: objects deleted after the snapshot come back, later ones go; etcd, the control plane and every node come back", async () => {
    await kubectlOk("create", "configmap", "before-snapshot", "--from-literal=k=v");
    const snapshot = path.join(dir, "snapshot.db");
    const saved = await etcdctl([`--endpoints=https://${ip(1)}:2379`, "snapshot", "save", snapshot], 120_000);
    assert.equal(saved.code, 0, saved.stderr);
    await kubectlOk("delete", "configmap", "before-snapshot");
    await kubectlOk("create", "configmap", "after-snapshot", "--from-literal=k=v");
    const binkube = (extra: string[]) => run(process.execPath, [path.join(ROOT, "bin", "binkube.cjs"), "etcd", "restore", "--snapshot", snapshot, "--config", file, ...extra], { env, timeoutMs: 900_000 });
    // without --yes: the plan, and nothing done
    const dry = await binkube([]);
    assert.equal(dry.code, 1, dry.stderr);
    assert.match(dry.stderr, /stop kube-apiserver, kube-controller-manager, kube-scheduler on lab1, lab2, then etcd on every member/);
    assert.match(dry.stderr, /nothing done\. Re-run with --yes/);
    await kubectlOk("get", "configmap", "after-snapshot");
    const r = await binkube(["--yes"]);
    assert.equal(r.code, 0, r.stderr.slice(-3000));
    console.log(`# etcd restore: ${(r.ms / 1000).toFixed(1)} s (${r.stderr.trim().split("\n").pop()})`);
    assert.match(r.stderr, /etcd restored from snapshot\.db on 3 members/);
    await kubectlOk("get", "configmap", "before-snapshot");
    assert.notEqual((await kubectl("get", "configmap", "after-snapshot")).code, 0, "an object created after the snapshot survived the restore");
    const members = await etcdctl([`--endpoints=https://${ip(1)}:2379`, "member", "list"]);
    assert.equal(members.stdout.trim().split("\n").length, 3, members.stdout);
    await waitUntil("every node Ready after the restore", async () => (await kubectl("get", "nodes", "-o", 'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}')).stdout === "True True True", 240_000);
    for (const h of NODES) assert.match((await ssh(h, "ls -d /var/lib/etcd/default.etcd.before-restore-*")).stdout, /before-restore-\d{8}T\d{6}Z/, `${h} kept no copy of the failed cluster's data`);
    // the next deploy finds nothing to change
    const again = (await deploy("after-restore")).out;
    assert.match(again, /No changes|0 added, 0 changed, 0 destroyed/);
  });
});
