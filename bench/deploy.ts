/**
 * npm run bench:deploy — deploy speed, side by side in one run on fresh lab hosts:
 *
 * - etcd: the guide's etcd procedure done by hand as a plain script (bench/by-hand-etcd.sh)
 *   against binkube's `cdktf deploy` up to etcd-health (Terraform's -target pulls in prepare and
 *   etcd) on the same hosts, every host an etcd member; binkube twice, with one process per step
 *   (BINKUBE_STEP_SERVER=0) and with the step server. Each binkube run includes synth and PKI
 *   creation, as the script includes its openssl. Before each binkube run, etcd is wiped from the
 *   hosts and binkube's PKI, state and stack directory are removed.
 * - full: the whole cluster's first deploy (Kubernetes fixtures needed), then on the smallest
 *   size the no-op redeploy against a bare `terraform plan` of the same stack and against a no-op
 *   `cdktf deploy` of a one-resource stack (cdktf's own floor), counting the step runs (SSH sessions).
 *
 * - add-node: after each full deploy, one more host joins as a plain node.
 *
 * The operator's link (issue 26, bench/operator-link.ts): every scenario runs over the lab bridge
 * shaped to --rate Mbit/s in the operator → hosts direction (default 200) and unshaped, each on a
 * fresh lab, and reports the bytes the operator sent (the bridge's transmit counter) beside wall
 * time and CPU-s. --links shaped or --links unshaped runs one of the two.
 *
 * Every binkube deploy prints where its time went per step instance (steps.log: process start,
 * plan load, SSH connect, sync, remote work, gate wait). Absolute times on this machine are
 * noisy: read the ratios.
 *
 * --transfer off,copy,stage runs each full deploy with every byte from the operator
 * (BINKUBE_PEER_COPY=0), with host-to-host copies of the release binaries as each step needs them
 * (the default), and with those copies staged ahead once a host is prepared (BINKUBE_STAGE=1), side by side.
 *
 *   npm run bench:deploy [-- --etcd 3,6,12] [--full 3,6] [--rate 200] [--links shaped,unshaped] [--transfer off,copy,stage]
 *   (default: both scenarios at these sizes, both links)
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { labDown, labUp } from "../lab/lab";
import { synthesizedStackDir } from "../stacks/stack-home";
import { run, type Res } from "../test/helpers/proc";
import { tempDir } from "../test/helpers/fixtures";
import { appendClusterSettings, clusterFixtures } from "../test/helpers/cluster";
import { asPlainNode } from "./lab-inventory";
import { readStepsLog, stepsLogSize, type StepsLogEntry } from "../src/runner/steps-log";
import { type LinkMode, linkModes, mb, overLink, unshape } from "./operator-link";

const ROOT = path.join(__dirname, "..");

/**
 * CPU seconds the whole machine has used so far (every process, the lab hosts' too: they share
 * this kernel). A run's delta over the cores is the least wall time it could take here.
 */
function machineCpuSeconds(): number {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) / 100; // USER_HZ
}
const CORES = os.cpus().length;

/** Runs p, returning its result with the machine's CPU seconds used meanwhile. */
async function withCpu<T>(p: () => Promise<T>): Promise<T & { cpu: number }> {
  const c0 = machineCpuSeconds();
  const r = await p();
  return { ...r, cpu: machineCpuSeconds() - c0 };
}
const cpuNote = (r: { ms: number; cpu: number }) => `${(r.ms / 1000).toFixed(1)} s, ${r.cpu.toFixed(1)} CPU-s (${((100 * r.cpu) / (CORES * (r.ms / 1000))).toFixed(0)}% of ${CORES} cores)`;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function must(what: string, p: Promise<Res>): Promise<Res> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  return r;
}

const deployEnv = (inv: string, extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, BINKUBE_CONFIG: inv, CHECKPOINT_DISABLE: "1", ...extra });
const cdktfDeployWith = (inv: string, extra: NodeJS.ProcessEnv = {}) => run("npx", ["cdktf", "deploy", "--auto-approve"], { env: deployEnv(inv, extra), cwd: ROOT, timeoutMs: 1_800_000 });

/** Step runs recorded in DIR/.binkube/steps.log after byte offset `from`. */
const stepRuns = (dir: string, from: number): StepsLogEntry[] => readStepsLog(dir, from).filter((e) => e.outcome === "ok");

/**
 * The per-instance table: where each step run's time went (run-step.ts phaseTimes), and the
 * deploy's time outside every step (cdktf, synth and PKI before the first; Terraform after the last).
 */
function phaseTable(runs: StepsLogEntry[], deploy?: { start: number; ms: number }): string {
  const cols = ["start", "plan", "connect", "upload", "work", "gate"];
  const rows = runs.map((e) => [`${e.step} ${e.host}`, e.secs.toFixed(1), ...cols.map((c) => e.fields[c]?.toFixed(2) ?? "-")]);
  const head = ["instance", "total", ...cols];
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => "  " + r.map((c, i) => (i === 0 ? c.padEnd(width[i]!) : c.padStart(width[i]!))).join("  ");
  const sums = cols.map((_, i) => rows.reduce((s, r) => s + Number(r[i + 2] === "-" ? 0 : r[i + 2]), 0).toFixed(1));
  const out = [line(head), ...rows.map(line), line(["sum (s)", rows.reduce((s, r) => s + Number(r[1]), 0).toFixed(1), ...sums])];
  // issue 26: how much of the steps' time is the operator's link (upload) against activation (remote work + gates)
  const [upload, work, gate] = ["upload", "work", "gate"].map((c) => Number(sums[cols.indexOf(c)]));
  const stepTime = rows.reduce((s, r) => s + Number(r[1]), 0);
  if (stepTime > 0) out.push(`  upload (the operator's link) ${upload!.toFixed(1)} s = ${((100 * upload!) / stepTime).toFixed(0)}% of step time; activation (work + gate) ${(work! + gate!).toFixed(1)} s = ${((100 * (work! + gate!)) / stepTime).toFixed(0)}%`);
  if (deploy && runs.length > 0) {
    const ends = runs.map((e) => e.at);
    // a run's total counts from runStep's start; its process began `start=` seconds earlier
    const starts = runs.map((e) => e.at - (e.secs + (e.fields.start ?? 0)) * 1000);
    const before = (Math.min(...starts) - deploy.start) / 1000;
    const after = (deploy.start + deploy.ms - Math.max(...ends)) / 1000;
    out.push(`  before the first step (cdktf, synth, PKI, terraform init/plan): ${before.toFixed(1)} s; after the last: ${after.toFixed(1)} s; steps: ${(deploy.ms / 1000 - before - after).toFixed(1)} s`);
  }
  return out.join("\n");
}

/**
 * Each host's payload from binkube's steps (steps.log): the bytes the operator sent it plus those
 * it copied from other hosts (peer=), so "one host of each role" stays the payload whichever link
 * carried it.
 */
function bytesPerHost(runs: StepsLogEntry[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const e of runs) out[e.host] = (out[e.host] ?? 0) + e.bytes + (e.fields.peer ?? 0);
  return out;
}

/** Copies between hosts that failed and went over the operator's link instead. */
const fallbacks = (runs: StepsLogEntry[]) => runs.reduce((n, e) => n + (e.fields.fallbacks ?? 0), 0);

/**
 * How release binaries reach the hosts: every byte from the operator (no relay); host-to-host
 * copies, each step uploading or copying when its turn comes (the default); copies plus staging
 * ahead of the steps once a host is prepared (BINKUBE_STAGE=1).
 */
const TRANSFER_MODES = {
  off: { env: { BINKUBE_PEER_COPY: "0" }, label: ", relay off" },
  copy: { env: {}, label: "" },
  stage: { env: { BINKUBE_STAGE: "1" }, label: ", staged" },
} as const;
type TransferMode = keyof typeof TRANSFER_MODES;

/** How binkube runs its steps: one process per step instance, or the step server (the default). */
const STEP_MODES = { process: { BINKUBE_STEP_SERVER: "0" }, server: {} } as const;
type StepMode = keyof typeof STEP_MODES;

/** Back to before any deploy on the lab's hosts: etcd gone, its files and data dir too. */
async function wipeEtcd(lab: { hosts: { address: string }[]; privateKey: string; knownHosts: string }): Promise<void> {
  await Promise.all(
    lab.hosts.map((h) =>
      must(`wipe ${h.address}`, run("ssh", ["-i", lab.privateKey, "-o", `UserKnownHostsFile=${lab.knownHosts}`, "-o", "BatchMode=yes", `root@${h.address}`, "systemctl stop etcd; systemctl disable --quiet etcd; rm -rf /opt/etcd /var/lib/etcd /usr/lib/systemd/system/etcd.service; systemctl daemon-reload"])),
    ),
  );
}

/** Back to before binkube's first deploy on this side: no PKI, no state, no stack directory. */
function forgetDeploy(dir: string, inv: string): void {
  // the stack is synthesized into .binkube/cdktf.out beside the inventory (stacks/stack-home.ts)
  for (const d of ["pki", ".binkube"]) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
}

interface EtcdRow {
  n: number;
  link: string;
  hand: number;
  handBytes: number;
  binkube: Partial<Record<StepMode, number>>;
  binkubeBytes: number;
  floor: number;
}

async function etcdLevel(n: number, link: LinkMode): Promise<EtcdRow> {
  const dir = tempDir(`binkube-bench-deploy-${n}-`);
  try {
    await must("fixtures", run("bash", [path.join(ROOT, "test", "fixtures", "debian-binaries.sh"), path.join(dir, "bin")], { timeoutMs: 900_000 }));
    const lab = await labUp({ dir, hosts: n, log: () => undefined });
    // every host an etcd member, as the hand procedure makes them
    const inv = path.join(dir, "cluster.yaml");
    fs.writeFileSync(inv, fs.readFileSync(inv, "utf8").replace(/roles: \[node\]/g, "roles: [etcd, node]"));
    const members = lab.hosts.map((h) => `${h.name}=${h.address}`);
    const hand = await overLink(link, () => withCpu(() => must("by-hand etcd", run("bash", [path.join(ROOT, "bench", "by-hand-etcd.sh"), path.join(dir, "bin"), lab.privateKey, lab.knownHosts, ...members], { timeoutMs: 600_000 }))));
    console.log(`etcd-level by hand, ${n} hosts, ${link.name}: ${cpuNote(hand.result)}, operator sent ${mb(hand.bytes)}`);
    const binkube: Partial<Record<StepMode, number>> = {};
    let binkubeBytes = 0;
    // Each mode's run is a first deploy: etcd wiped from the hosts, no PKI, no state. Over the
    // shaped link only the step server (the default) runs: the comparison of modes is CPU, not link.
    for (const mode of (link.rateMbit ? ["server"] : Object.keys(STEP_MODES)) as StepMode[]) {
      await wipeEtcd(lab);
      forgetDeploy(dir, inv);
      const start = Date.now();
      const bk = await overLink(link, () => withCpu(() => must(`binkube deploy (${mode})`, cdktfDeployWith(inv, { TF_CLI_ARGS_apply: "-target=terraform_data.etcd-health", ...STEP_MODES[mode] }))));
      if (!/✓ step etcd-health on lab1: (\d+)\/\1 members healthy/.test(bk.result.stdout + bk.result.stderr)) throw new Error("binkube's deploy did not pass etcd-health");
      console.log(`etcd-level first deploy, ${n} hosts, ${link.name}, binkube (step ${mode}) ${cpuNote(bk.result)}, operator sent ${mb(bk.bytes)}:\n${phaseTable(stepRuns(dir, 0), { start, ms: bk.result.ms })}`);
      binkube[mode] = bk.result.ms / 1000;
      if (mode === "server") binkubeBytes = bk.bytes;
    }
    // cdktf's own first deploy of one resource (init included), in the same conditions: what any
    // cdktf-driven deploy pays before its first step could start
    const floorStack = await cdktfFloor();
    floorStack.done();
    console.log(`cdktf floor: first deploy of a one-resource stack ${floorStack.first.toFixed(1)} s`);
    return { n, link: link.name, hand: hand.result.ms / 1000, handBytes: hand.bytes, binkube, binkubeBytes, floor: floorStack.first };
  } finally {
    await labDown({ dir, log: () => undefined });
  }
}

/**
 * A one-resource cdktf stack in plain JavaScript: what any `cdktf deploy` costs with nothing to
 * do. Returns its no-op deploy (after one real one) and a cleanup.
 */
async function cdktfFloor(): Promise<{ first: number; noop: () => Promise<number>; done: () => void }> {
  const dir = tempDir("binkube-bench-floor-");
  fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
  fs.writeFileSync(path.join(dir, "cdktf.json"), JSON.stringify({ language: "typescript", app: "node main.js", projectId: "floor", sendCrashReports: "false", terraformProviders: [], terraformModules: [], context: {} }));
  fs.writeFileSync(
    path.join(dir, "main.js"),
    [
      `const { App, TerraformStack, DataResource, LocalBackend } = require("cdktf");`,
      `const app = new App({ skipValidation: true });`,
      `const s = new TerraformStack(app, "floor");`,
      `new LocalBackend(s, { path: ${JSON.stringify(path.join(dir, "floor.tfstate"))} });`,
      `new DataResource(s, "one", { triggersReplace: { a: "1" }, provisioners: [{ type: "local-exec", command: "true" }] });`,
      `app.synth();`,
    ].join("\n"),
  );
  const deploy = () => must("floor deploy", run("npx", ["cdktf", "deploy", "--auto-approve"], { cwd: dir, env: { ...process.env, CHECKPOINT_DISABLE: "1" }, timeoutMs: 300_000 }));
  const first = (await deploy()).ms / 1000;
  return { first, noop: async () => (await deploy()).ms / 1000, done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

interface FullRow {
  n: number;
  /** the link's name, and ", relay off" when every byte came from the operator */
  link: string;
  first: number;
  cpu: number;
  bytes: number;
  /** The largest master's plus the largest other host's bytes from binkube's steps: one host of each role. */
  oneOfEachRole: number;
  add: number;
  addBytes: number;
  noop?: string;
}

async function fullCluster(n: number, noop: boolean, link: LinkMode, mode: TransferMode): Promise<FullRow> {
  const dir = tempDir(`binkube-bench-full-${n}-`);
  const cdktfDeploy = (inv: string) => cdktfDeployWith(inv, TRANSFER_MODES[mode].env);
  const label = `${link.name}${TRANSFER_MODES[mode].label}`;
  try {
    await clusterFixtures(path.join(dir, "bin"), path.join(dir, "images"));
    await labUp({ dir, hosts: n, log: () => undefined });
    appendClusterSettings(dir);
    const inv = path.join(dir, "cluster.yaml");
    const start = Date.now();
    const firstRun = await overLink(link, () => withCpu(() => must(`full deploy (${n} hosts)`, cdktfDeploy(inv))));
    const first = firstRun.result;
    const runs = stepRuns(dir, 0);
    const perHost = bytesPerHost(runs);
    const masters = new Set(runs.filter((e) => e.step === "apiserver").map((e) => e.host));
    const largest = (hosts: string[]) => Math.max(0, ...hosts.map((h) => perHost[h]!));
    const oneOfEachRole = largest([...masters]) + largest(Object.keys(perHost).filter((h) => !masters.has(h)));
    console.log(
      `full first deploy, ${n} hosts, ${label}: ${cpuNote(first)}, operator sent ${mb(firstRun.bytes)} ` +
        `(payload per host: ${Object.entries(perHost).map(([h, b]) => `${h} ${mb(b)}`).join(", ")}; ${(firstRun.bytes / oneOfEachRole).toFixed(2)}x one host of each role; ${fallbacks(runs)} copies between hosts fell back to the operator):\n${phaseTable(runs, { start, ms: first.ms })}`,
    );
    let noopLine: string | undefined;
    if (noop) {
      const from = stepsLogSize(dir);
      const floorStack = await cdktfFloor();
      // interleaved, so both see the same machine load
      const redeploys: number[] = [];
      const floors: number[] = [];
      try {
        for (let i = 0; i < 5; i++) {
          redeploys.push((await must("no-op redeploy", cdktfDeploy(inv))).ms / 1000);
          floors.push(await floorStack.noop());
        }
      } finally {
        floorStack.done();
      }
      const sessions = stepRuns(dir, from).length;
      const stackDir = synthesizedStackDir(dir)!;
      const plans: number[] = [];
      for (let i = 0; i < 3; i++) plans.push((await must("terraform plan", run("terraform", ["plan", "-input=false", "-detailed-exitcode"], { cwd: stackDir, env: deployEnv(inv), timeoutMs: 300_000 }))).ms / 1000);
      const floor = median(floors);
      const r = median(redeploys);
      noopLine =
        `no-op redeploy, ${n} hosts: median ${r.toFixed(1)} s of 5, ${sessions} step runs (SSH sessions); bare terraform plan ${median(plans).toFixed(2)} s (${(r / median(plans)).toFixed(1)}x); ` +
          `cdktf floor (one-resource no-op deploy, interleaved) median ${floor.toFixed(1)} s of 5 (${(r / floor).toFixed(2)}x)`;
      console.log(noopLine);
    }
    // one more host joins as a plain node
    await labUp({ dir, hosts: n + 1, log: () => undefined });
    asPlainNode(inv, `lab${n + 1}`);
    const fromAdd = stepsLogSize(dir);
    const addStart = Date.now();
    const added = await overLink(link, () => must(`add lab${n + 1}`, cdktfDeploy(inv)));
    console.log(`add one node to ${n} hosts, ${label}: ${(added.result.ms / 1000).toFixed(1)} s, operator sent ${mb(added.bytes)}, ${fallbacks(stepRuns(dir, fromAdd))} fallbacks:\n${phaseTable(stepRuns(dir, fromAdd), { start: addStart, ms: added.result.ms })}`);
    return { n, link: label, first: first.ms / 1000, cpu: first.cpu, bytes: firstRun.bytes, oneOfEachRole, add: added.result.ms / 1000, addBytes: added.bytes, ...(noopLine ? { noop: noopLine } : {}) };
  } finally {
    await labDown({ dir, log: () => undefined });
  }
}

function sizes(argv: string[], flag: string, dflt: number[]): number[] | undefined {
  const i = argv.indexOf(flag);
  if (i < 0) return argv.some((a) => a.startsWith("--")) ? undefined : dflt;
  return (argv[i + 1] ?? "").split(",").map(Number).filter((x) => x > 0);
}

function option(argv: string[], flag: string, dflt: string): string {
  const i = argv.indexOf(flag);
  return i < 0 ? dflt : (argv[i + 1] ?? dflt);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const scenarios = argv.filter((a) => a === "--etcd" || a === "--full");
  const pick = (flag: string, dflt: number[]) => (scenarios.length === 0 ? dflt : sizes(argv, flag, dflt));
  const etcd = pick("--etcd", [3, 6, 12]);
  const full = pick("--full", [3, 6]);
  const rate = Number(option(argv, "--rate", "200"));
  if (!(rate > 0)) throw new Error(`--rate must be Mbit/s > 0, not ${option(argv, "--rate", "")}`);
  const links = linkModes(rate, option(argv, "--links", "shaped,unshaped").split(","));
  // --transfer off,copy,stage: the full deploy in each of these ways, side by side
  const transfers = option(argv, "--transfer", "copy").split(",").map((r) => {
    if (!(r in TRANSFER_MODES)) throw new Error(`--transfer takes off, copy or stage (or several: off,copy,stage), not ${r}`);
    return r as TransferMode;
  });
  // a benchmark stopped by ^C must not leave the bridge shaped
  process.on("SIGINT", () => void unshape().finally(() => process.exit(130)));
  const summary: string[] = [];
  const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
  if (etcd) {
    const rows: EtcdRow[] = [];
    for (const link of links) for (const n of etcd) rows.push(await etcdLevel(n, link));
    for (const r of rows)
      summary.push(
        `etcd-level first deploy, ${r.n} hosts, ${r.link}: by hand ${r.hand.toFixed(1)} s (${mb(r.handBytes)} sent), binkube ${r.binkube.server!.toFixed(1)} s (${mb(r.binkubeBytes)} sent), ratio ${ratio(r.binkube.server!, r.hand)}` +
          (r.binkube.process ? ` (one process per step: ${r.binkube.process.toFixed(1)} s, ${ratio(r.binkube.process, r.hand)})` : "") +
          `; cdktf's first deploy of one resource ${r.floor.toFixed(1)} s (${ratio(r.floor, r.hand)} of by hand)`,
      );
    for (const link of links) {
      const of = rows.filter((r) => r.link === link.name);
      if (of.length > 1) summary.push(`etcd-level, ${link.name}, ${of.at(-1)!.n} hosts / ${of[0]!.n} hosts: binkube ${ratio(of.at(-1)!.binkube.server!, of[0]!.binkube.server!)}; by hand ${ratio(of.at(-1)!.hand, of[0]!.hand)}`);
    }
  }
  if (full) {
    const rows: FullRow[] = [];
    for (const link of links) for (const t of transfers) for (const [i, n] of full.entries()) rows.push(await fullCluster(n, i === 0 && !link.rateMbit, link, t));
    for (const r of rows)
      summary.push(
        `full first deploy, ${r.n} hosts, ${r.link}: ${r.first.toFixed(1)} s, ${r.cpu.toFixed(0)} CPU-s, operator sent ${mb(r.bytes)} (${ratio(r.bytes, r.oneOfEachRole)} one host of each role); ` +
          `add one node: ${r.add.toFixed(1)} s, operator sent ${mb(r.addBytes)}`,
        ...(r.noop ? [r.noop] : []),
      );
    for (const name of new Set(rows.map((r) => r.link))) {
      const of = rows.filter((r) => r.link === name);
      if (of.length > 1) summary.push(`full deploy, ${name}, ${of.at(-1)!.n} hosts / ${of[0]!.n} hosts: ${ratio(of.at(-1)!.first, of[0]!.first)} wall, ${ratio(of.at(-1)!.bytes, of[0]!.bytes)} operator bytes`);
    }
    for (const link of links)
      for (const n of full) {
        const off = rows.find((r) => r.n === n && r.link === `${link.name}${TRANSFER_MODES.off.label}`);
        for (const t of ["copy", "stage"] as const) {
          const r = rows.find((x) => x.n === n && x.link === `${link.name}${TRANSFER_MODES[t].label}`);
          if (off && r) summary.push(`${t} / relay off, ${n} hosts, ${link.name}: full deploy ${ratio(r.first, off.first)} wall, ${ratio(r.bytes, off.bytes)} operator bytes; add a node ${ratio(r.add, off.add)} wall`);
        }
      }
    if (links.length > 1)
      for (const n of full) {
        const [a, b] = links.map((l) => rows.find((r) => r.n === n && r.link === l.name)!);
        summary.push(`full deploy, ${n} hosts, ${a!.link} / ${b!.link}: ${ratio(a!.first, b!.first)}`);
      }
  }
  console.log(["", "== summary", ...summary].join("\n"));
}

main().catch(async (e: Error) => {
  await unshape().catch(() => undefined);
  console.error(e.message);
  process.exit(1);
});
