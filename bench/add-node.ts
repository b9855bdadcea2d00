// Day-2 benchmark on lab hosts (root): wall time to add one node to a 2-host and to a 5-host
// cluster (target: within 1.2x of each other), in one run, same fixtures. Needs the cached
// Kubernetes fixtures; run with `npx tsx bench/add-node.ts`.
import * as fs from "node:fs";
import * as path from "node:path";
import { labDown, labUp } from "../lab/lab";
import { asPlainNode } from "./lab-inventory";
import { labSkipReason } from "../test/helpers/e2e";
import { tempDir } from "../test/helpers/fixtures";
import { run } from "../test/helpers/proc";

const ROOT = path.join(__dirname, "..");

async function cluster(hosts: number): Promise<{ first: number; add: number }> {
  const dir = tempDir(`binkube-bench-${hosts}-`);
  for (const [script, out] of [["debian-binaries.sh", "bin"], ["k8s-binaries.sh", "bin"], ["flannel-cni.sh", "bin"], ["images.sh", "images"], ["metrics-server.sh", "images"]]) {
    const r = await run("bash", [path.join(ROOT, "test", "fixtures", script!), path.join(dir, out!)], { timeoutMs: 1_800_000 });
    if (r.code !== 0) throw new Error(`${script}: ${r.stderr.slice(-500)}`);
  }
  const extras = "images:\n  preload: [images/pause.tar, images/busybox.tar, images/coredns.tar, images/flannel.tar, images/metrics-server.tar]\nkubeProxy:\n  conntrackMaxPerCore: 0\n";
  const env = { ...process.env, BINKUBE_CONFIG: path.join(dir, "cluster.yaml"), CHECKPOINT_DISABLE: "1" };
  const deploy = async () => {
    const r = await run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 1_800_000 });
    if (r.code !== 0) {
      fs.writeFileSync(path.join(dir, "deploy-failed.log"), r.stdout + r.stderr);
      throw new Error(`deploy failed (log: ${dir}/deploy-failed.log): ${(r.stdout + r.stderr).slice(-1500)}`);
    }
    return r.ms;
  };
  try {
    await labUp({ dir, hosts, log: () => undefined });
    fs.appendFileSync(path.join(dir, "cluster.yaml"), extras);
    const first = await deploy();
    await labUp({ dir, hosts: hosts + 1, log: () => undefined });
    // the lab gives lab3 the etcd role too; the benchmark adds a plain node in both cases
    asPlainNode(path.join(dir, "cluster.yaml"), `lab${hosts + 1}`); // lab up kept the extras
    const add = await deploy();
    return { first, add };
  } finally {
    await labDown({ dir, log: () => undefined });
  }
  // (the failed deploy's log stays in dir)
}

async function main(): Promise<void> {
  const skip = labSkipReason();
  if (skip) {
    console.log(`SKIP add-node benchmark: ${skip}`);
    return;
  }
  const small = await cluster(2);
  const large = await cluster(5);
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  console.log(`add one node: 2-host cluster ${s(small.add)} (first deploy ${s(small.first)}); 5-host cluster ${s(large.add)} (first deploy ${s(large.first)}); ratio ${(large.add / small.add).toFixed(2)}x (target <= 1.2x)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
