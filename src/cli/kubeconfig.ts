// `binkube kubeconfig create | list | revoke` from the command line: the inventory, the cluster CA,
// and kubectl (from the binaries, run here) with admin.kubeconfig for the cluster's API.
import * as fs from "node:fs";
import * as path from "node:path";
import { loadInventory } from "../inventory/load";
import { Inventory } from "../inventory/types";
import { loadPair } from "../pki/disk";
import { apiserverURL } from "../pki/kubeconfig";
import { openBinaries } from "../binaries/source";
import { fetchBinaries } from "../binaries/fetch";
import { canRunLocally } from "../binaries/release";
import { adminKubeconfigPath } from "../cluster";
import { BinkubeError } from "../errors";
import type { Log } from "../log";
import type { ParsedArgs } from "./args";
import { AccessApi, kubectlAccessApi } from "../access/api";
import { createKubeconfig, formatUserTable, listKubeconfigs, revokeKubeconfig } from "../access/kubeconfigs";

/** kubectl from the inventory's binaries when it runs on this machine, else the one on PATH. */
async function localKubectl(inv: Inventory, say: Log): Promise<string> {
  const binaries = openBinaries(inv);
  await fetchBinaries({ inv, binaries }, ["kubectl"], say);
  const info = binaries.get("kubectl");
  if (info.present && info.localPath && fs.existsSync(info.localPath) && canRunLocally()) return info.localPath;
  for (const dir of (process.env.PATH ?? "").split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, "kubectl");
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      /* not here */
    }
  }
  throw new BinkubeError("no kubectl that runs on this machine", { where: "kubeconfig", fix: "put kubectl in binaries (binaries.dir or binaries.urls; a linux-amd64 machine runs it) or a kubectl v1.17 on PATH" });
}

async function clusterApi(inv: Inventory, say: Log): Promise<AccessApi> {
  const admin = adminKubeconfigPath(inv);
  if (!fs.existsSync(admin)) throw new BinkubeError(`${admin} is missing: binkube talks to the cluster with it`, { where: "kubeconfig", fix: "deploy the cluster first (npx cdktf deploy), which writes it" });
  return kubectlAccessApi(await localKubectl(inv, say), admin, apiserverURL(inv));
}

function flag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  if (v === true) throw new BinkubeError(`--${name} needs a value`, { where: "kubeconfig" });
  return v;
}

export async function kubeconfigCommand(sub: string | undefined, rest: string[], args: ParsedArgs, configFile: string, say: Log): Promise<number> {
  const { inventory: inv } = loadInventory(configFile);
  switch (sub) {
    case "create": {
      const name = rest[0];
      if (!name || rest.length > 1) throw new BinkubeError("kubeconfig create needs one NAME", { where: "kubeconfig" });
      const daysText = flag(args, "days");
      if (daysText !== undefined && !/^\d+$/.test(daysText)) throw new BinkubeError(`--days "${daysText}" is not a whole number of days`, { where: "kubeconfig", fix: "e.g. --days 30" });
      const days = daysText === undefined ? undefined : Number(daysText);
      const ca = loadPair(inv.pkiDir, "ca");
      if (!ca) throw new BinkubeError(`the cluster CA (${inv.pkiDir}/ca.crt, ca.key) is missing`, { where: "kubeconfig", fix: "deploy the cluster first (npx cdktf deploy)" });
      const created = await createKubeconfig({ inv, api: await clusterApi(inv, say), ca }, { name, group: flag(args, "group"), role: flag(args, "role"), namespace: flag(args, "namespace"), days });
      for (const l of created.lines) say(l);
      say(`use it: kubectl --kubeconfig ${created.file} get pods${created.binding.namespace ? ` --namespace ${created.binding.namespace}` : ""}`);
      return 0;
    }
    case "list": {
      let api: AccessApi;
      try {
        api = await clusterApi(inv, say);
      } catch (e) {
        // no admin.kubeconfig or no kubectl: the ledger is still worth showing
        api = { server: apiserverURL(inv), bindings: () => Promise.reject(e), exists: () => Promise.reject(e), apply: () => Promise.reject(e), remove: () => Promise.reject(e) };
      }
      const { rows, unreachable } = await listKubeconfigs({ inv, api });
      if (unreachable) say(`the cluster did not answer, so BINDING is unknown; showing the ledger only (${unreachable})`);
      process.stdout.write(rows.length === 0 ? "no kubeconfigs issued (binkube kubeconfig create NAME --role view)\n" : formatUserTable(rows) + "\n");
      return 0;
    }
    case "revoke": {
      const name = rest[0];
      if (!name || rest.length > 1) throw new BinkubeError("kubeconfig revoke needs one NAME", { where: "kubeconfig" });
      for (const l of await revokeKubeconfig({ inv, api: await clusterApi(inv, say) }, name)) say(l);
      return 0;
    }
    default:
      throw new BinkubeError(`unknown subcommand "${sub ?? ""}" (create, list, revoke)`, { where: "kubeconfig" });
  }
}
