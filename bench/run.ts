// npm run bench: PKI creation and synthesis at several inventory sizes, measured side by side
// in one run. Absolute times on shared machines are noisy: read the ratios.
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { App } from "cdktf";
import forge from "node-forge";
import { openCluster } from "../src/cluster";
import { ensurePki } from "../src/pki/ensure";
import { loadInventory } from "../src/inventory/load";
import { generateKeyPair } from "../src/pki/x509";
import { ClusterStack } from "../stacks/cluster-stack";
import { tempDir, writeFakeBinaries, writeInventory } from "../test/helpers/fixtures";

function inventory(hosts: number): Record<string, unknown> {
  const list = Array.from({ length: hosts }, (_, i) => ({
    name: `h${i + 1}`,
    address: `10.1.${Math.floor((i + 1) / 250)}.${((i + 1) % 250) + 1}`,
    roles: i < 3 ? ["etcd", "master", "node"] : ["node"],
  }));
  return { cluster: { name: "bench" }, hosts: list.length >= 3 ? list : list.map((h) => ({ ...h, roles: ["etcd", "master", "node"] })), binaries: { dir: "bin" } };
}

async function time<T>(fn: () => Promise<T> | T): Promise<[number, T]> {
  const t0 = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e6, v];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function benchKeygen(): Promise<void> {
  const native: number[] = [];
  for (let i = 0; i < 5; i++) native.push((await time(() => generateKeyPair()))[0]);
  // One pure-JavaScript key for the ratio (the path binkube refuses to take).
  const [pure] = await time(() => forge.pki.rsa.generateKeyPair({ bits: 2048, prng: forge.random.createInstance() } as forge.pki.rsa.GenerateKeyPairOptions));
  console.log(`keygen RSA-2048: native (forge → node crypto) median ${median(native).toFixed(0)} ms; pure-JS forge ${pure.toFixed(0)} ms; ratio ${(pure / median(native)).toFixed(1)}x`);
}

async function benchPki(hosts: number): Promise<void> {
  const dir = tempDir("binkube-bench-");
  const inv = loadInventory(writeInventory(dir, inventory(hosts))).inventory;
  const [ms, { changes }] = await time(() => ensurePki(inv));
  const [again] = await time(() => ensurePki(inv));
  console.log(`pki ${hosts} hosts: create ${changes.length} items ${ms.toFixed(0)} ms; reload+check ${again.toFixed(0)} ms`);
  fs.rmSync(dir, { recursive: true, force: true });
}

async function benchSynth(hosts: number): Promise<number> {
  const dir = tempDir("binkube-bench-");
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, inventory(hosts));
  await openCluster(file, { create: true }); // PKI exists before the measured run
  const out = path.join(dir, "cdktf.out");
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [ms] = await time(async () => {
      const cluster = await openCluster(file, { create: true, pki: { defer: true } }); // as the cdktf app (main.ts)
      const app = new App({ outdir: out, skipValidation: true });
      new ClusterStack(app, "binkube", cluster, { binkube: ["/usr/bin/node", "binkube.cjs"] });
      app.synth();
    });
    runs.push(ms);
  }
  const size = fs.statSync(path.join(out, "stacks", "binkube", "cdk.tf.json")).size;
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`synth ${hosts} hosts (existing PKI): median ${median(runs).toFixed(0)} ms of 3; cdk.tf.json ${(size / 1024).toFixed(0)} KiB; heap ${(process.memoryUsage().heapUsed / 2 ** 20).toFixed(0)} MiB`);
  return median(runs);
}

/**
 * The cdktf app as `cdktf synth` / `cdktf deploy` start it (`node bin/synth.cjs`): process start,
 * module loading, inventory, PKI check, plan and cdk.tf.json, with the PKI already there.
 */
async function benchSynthApp(hosts: number): Promise<number> {
  const dir = tempDir("binkube-bench-");
  writeFakeBinaries(path.join(dir, "bin"));
  const file = writeInventory(dir, inventory(hosts));
  await openCluster(file, { create: true });
  const runs: number[] = [];
  for (let i = 0; i < 3; i++) {
    const [ms] = await time(() => {
      const r = spawnSync(process.execPath, [path.join(__dirname, "..", "bin", "synth.cjs")], { env: { ...process.env, BINKUBE_CONFIG: file, CDKTF_OUTDIR: path.join(dir, "out") }, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`synth app (${hosts} hosts) failed: ${r.stderr}`);
    });
    runs.push(ms);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const compiled = (require("../bin/entry.cjs") as { distIsFresh(): boolean }).distIsFresh();
  console.log(`cdktf app process (node bin/synth.cjs, ${compiled ? "compiled dist/" : "TypeScript through tsx"}) ${hosts} hosts, existing PKI: median ${median(runs).toFixed(0)} ms of 3`);
  return median(runs);
}

async function main(): Promise<void> {
  const only = process.argv[2];
  if (!only || only === "pki") {
    await benchKeygen();
    await benchPki(2);
    await benchPki(50);
  }
  if (!only || only === "synth") {
    const t10 = await benchSynth(10);
    const t100 = await benchSynth(100);
    const t500 = await benchSynth(500);
    const app3 = await benchSynthApp(3);
    const app500 = await benchSynthApp(500);
    console.log(`cdktf app: 3 hosts ${app3 < 1000 ? "within" : "OVER"} the 1 s target, 500 hosts ${app500 < 5000 ? "within" : "OVER"} the 5 s target`);
    console.log(`synth scaling: 100/10 hosts ${(t100 / t10).toFixed(1)}x, 500/100 hosts ${(t500 / t100).toFixed(1)}x; 100 hosts ${t100 < 5000 ? "within" : "OVER"} the 5 s target`);
  }
  if (!only || only === "upload") {
    const upload = path.join(__dirname, "upload.ts");
    if (fs.existsSync(upload)) {
      const { benchUpload } = (await import("./upload")) as { benchUpload: () => Promise<{ ours: number; scp: number; ratio: number }> };
      const r = await benchUpload();
      console.log(`upload 100 MB: binkube ${r.ours.toFixed(0)} MB/s, scp ${r.scp.toFixed(0)} MB/s, ratio ${r.ratio.toFixed(2)}`);
    }
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
