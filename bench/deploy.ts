/**
 * npm run bench:deploy — the etcd-level first deploy, side by side on the same fresh lab hosts:
 * the guide's procedure done by hand as a plain script (bench/by-hand-etcd.sh) against binkube's
 * `cdktf deploy` up to etcd-health (Terraform's -target pulls in prepare and etcd), every host an
 * etcd member, at 3, 6 and 12 hosts. Each binkube run includes synth and PKI creation, as the
 * script includes its openssl. Between the two, etcd is wiped from the hosts. Absolute times on
 * this machine are noisy: read the ratios.
 *
 *   npm run bench:deploy [-- 3 6 12]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { labDown, labUp } from "../lab/lab";
import { run } from "../test/helpers/proc";
import { tempDir } from "../test/helpers/fixtures";

const ROOT = path.join(__dirname, "..");

async function must(what: string, p: Promise<{ code: number; stderr: string; stdout: string; ms: number }>) {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (${r.code}):\n${(r.stdout + r.stderr).slice(-3000)}`);
  return r;
}

async function size(n: number): Promise<{ n: number; hand: number; binkube: number }> {
  const dir = tempDir(`binkube-bench-deploy-${n}-`);
  try {
    await must("fixtures", run("bash", [path.join(ROOT, "test", "fixtures", "debian-binaries.sh"), path.join(dir, "bin")], { timeoutMs: 900_000 }));
    const lab = await labUp({ dir, hosts: n, log: () => undefined });
    // every host an etcd member, as the hand procedure makes them
    const inv = path.join(dir, "cluster.yaml");
    fs.writeFileSync(inv, fs.readFileSync(inv, "utf8").replace(/roles: \[node\]/g, "roles: [etcd, node]"));
    const members = lab.hosts.map((h) => `${h.name}=${h.address}`);
    const hand = await must("by-hand etcd", run("bash", [path.join(ROOT, "bench", "by-hand-etcd.sh"), path.join(dir, "bin"), lab.privateKey, lab.knownHosts, ...members], { timeoutMs: 600_000 }));
    // wipe what the script installed, so binkube's is a first deploy too
    await Promise.all(
      lab.hosts.map((h) =>
        must(`wipe ${h.name}`, run("ssh", ["-i", lab.privateKey, "-o", `UserKnownHostsFile=${lab.knownHosts}`, "-o", "BatchMode=yes", `root@${h.address}`, "systemctl stop etcd; systemctl disable --quiet etcd; rm -rf /opt/etcd /var/lib/etcd /usr/lib/systemd/system/etcd.service; systemctl daemon-reload"])),
      ),
    );
    const env = { ...process.env, BINKUBE_CONFIG: inv, CHECKPOINT_DISABLE: "1", TF_CLI_ARGS_apply: "-target=terraform_data.etcd-health" };
    const bk = await must("binkube deploy", run("npx", ["cdktf", "deploy", "--auto-approve"], { env, cwd: ROOT, timeoutMs: 900_000 }));
    if (!/✓ step etcd-health on lab1: (\d+)\/\1 members healthy/.test(bk.stdout + bk.stderr)) throw new Error("binkube's deploy did not pass etcd-health");
    return { n, hand: hand.ms / 1000, binkube: bk.ms / 1000 };
  } finally {
    await labDown({ dir, log: () => undefined });
  }
}

async function main(): Promise<void> {
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
  const rows: { n: number; hand: number; binkube: number }[] = [];
  for (const n of sizes.length ? sizes : [3, 6, 12]) {
    const r = await size(n);
    rows.push(r);
    console.log(`etcd-level first deploy, ${r.n} hosts: by hand ${r.hand.toFixed(1)} s, binkube ${r.binkube.toFixed(1)} s, ratio ${(r.binkube / r.hand).toFixed(2)}x`);
  }
  if (rows.length > 1) console.log(`binkube ${rows.at(-1)!.n} hosts / ${rows[0]!.n} hosts: ${(rows.at(-1)!.binkube / rows[0]!.binkube).toFixed(2)}x; by hand: ${(rows.at(-1)!.hand / rows[0]!.hand).toFixed(2)}x`);
}

main().catch((e: Error) => {
  console.error(e.message);
  process.exit(1);
});
