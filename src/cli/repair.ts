// `binkube check` and `binkube repair`. Repair goes through Terraform (cdktf deploy with -replace
// of the drifted instances' resources), so the state stays true and the replaced instances run in
// the plan's order, each behind its own gate, rolling where the step rolls.
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Cluster, openCluster } from "../cluster";
import { HostReport, checkCluster, driftedIds, formatReport } from "../check";
import { BinkubeError } from "../errors";
import { Log } from "../log";
import { PACKAGE_ROOT } from "../paths";

async function openForCheck(configFile: string): Promise<Cluster> {
  try {
    return await openCluster(configFile, { create: false });
  } catch (e) {
    throw new BinkubeError(`check: cannot render what the hosts should have: ${(e as Error).message.split("\n")[0]}. Fix: run \`npx cdktf deploy\` first (a certificate still to be issued, or a changed inventory, is deployed, not repaired)`);
  }
}

/** Runs the check and prints its table on stdout; code 1 on drift or an unchecked host. */
export async function checkCommand(configFile: string, out: NodeJS.WritableStream = process.stdout): Promise<{ code: number; cluster: Cluster; reports: HostReport[] }> {
  const t0 = Date.now();
  const cluster = await openForCheck(configFile);
  const reports = await checkCluster(cluster);
  const drifted = reports.reduce((n, r) => n + r.drifts.length, 0);
  const unchecked = reports.filter((r) => r.error).length;
  out.write(`${formatReport(reports)}\n`);
  const ids = driftedIds(cluster, reports);
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (drifted === 0 && unchecked === 0) out.write(`check: ${reports.length} hosts match the plan [${secs} s]\n`);
  else out.write(`check: ${drifted} drifted (${ids.length} step instances: ${ids.join(" ") || "none"})${unchecked ? `, ${unchecked} hosts not checked` : ""} [${secs} s]. Fix: \`npx binkube repair\`${unchecked ? " once every host answers" : ""}\n`);
  return { code: drifted === 0 && unchecked === 0 ? 0 : 1, cluster, reports };
}

/** The Terraform address of an instance's resource. */
const address = (cluster: Cluster, id: string) => `${cluster.inv.engine === "null_resource" ? "null_resource" : "terraform_data"}.${id}`;

export async function repairCommand(configFile: string, say: Log): Promise<number> {
  const first = await checkCommand(configFile);
  if (first.code === 0) {
    say("repair: nothing to repair");
    return 0;
  }
  const down = first.reports.filter((r) => r.error).map((r) => r.host);
  if (down.length > 0) throw new BinkubeError(`repair: ${down.join(", ")} could not be checked, so what it needs is unknown; nothing was changed. Fix: bring ${down.length > 1 ? "them" : "it"} back (or remove ${down.length > 1 ? "them" : "it"} from the inventory), then re-run`);
  const ids = driftedIds(first.cluster, first.reports);
  say(`repair: re-running ${ids.length} step instances through cdktf deploy (-replace): ${ids.join(", ")}`);
  const code = await cdktfDeploy(first.cluster.inv.file, ids.map((id) => `-replace=${address(first.cluster, id)}`));
  if (code !== 0) throw new BinkubeError(`repair: cdktf deploy failed (exit ${code}); its output above names the step and host. Fix that, then re-run \`npx binkube repair\``);
  const after = await checkCommand(configFile);
  if (after.code !== 0) throw new BinkubeError("repair: the hosts still differ from the plan after the repair (table above)");
  say(`repair: done, ${ids.length} step instances re-run; the hosts match the plan`);
  return 0;
}

/** `cdktf deploy --auto-approve` for this inventory, with extra `terraform apply` options (cdktf applies without a saved plan). */
function cdktfDeploy(configFile: string, applyArgs: string[]): Promise<number> {
  const cli = path.join(PACKAGE_ROOT, "node_modules", "cdktf-cli", "bundle", "bin", "cdktf");
  const argv = fs.existsSync(cli) ? [process.execPath, cli] : ["npx", "cdktf"];
  const env = { ...process.env, BINKUBE_CONFIG: configFile, TF_CLI_ARGS_apply: [process.env.TF_CLI_ARGS_apply ?? "", ...applyArgs].join(" ").trim() };
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, [...argv.slice(1), "deploy", "--auto-approve"], { cwd: PACKAGE_ROOT, env, stdio: ["ignore", "inherit", "inherit"] });
    child.on("error", reject);
    child.on("exit", (c) => resolve(c ?? 1));
  });
}
