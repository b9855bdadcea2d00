// binkube command line: render, certs, step, lab. Every failure prints what failed and the fix,
// and exits non-zero.
import * as path from "node:path";
import { InventoryError, loadInventory } from "../inventory/load";
import { rotateEncryptionKey } from "../pki/encryption";
import { openCluster } from "../cluster";
import { checkRows, formatCertTable, userCertRows } from "../pki/check";
import { formatServed, remoteRows } from "../pki/remote-check";
import { writeTree } from "./render-tree";
import { reportCluster, synthCluster } from "./synth-report";
import { logger } from "../log";
import { BinkubeError } from "../errors";
import { parseArgs } from "./args";
import { configFrom, stepCommand } from "./step";
import { serveSteps } from "./step-server";
import { runStep } from "../runner/run-step";
import { describeRestore, restorePlan, runRestore } from "../etcd-restore";
import { checkCommand, repairCommand } from "./repair";
import { backupNow, fetchSnapshot, listBackups, parseSnapshotRef } from "../etcd-backups";
import { formatClusters, pruneRegistry, readRegistry } from "../deploy/clusters";
import { kubeconfigCommand } from "./kubeconfig";
import { teardownCommand } from "../teardown";

const USAGE = `usage: binkube <command> [options]

  render [--config FILE] --out DIR     write every file each host would receive to DIR/<host>/…
  certs check [--remote] [--config FILE]
                                       list every certificate: subject, SANs, issuer, expiry, status;
                                       first brings pki/ up to the inventory as synth does (creates,
                                       reissues) and issues pending leaves at once; --remote: compare
                                       what each endpoint serves with pki/
  certs renew NAME… | --all [--config FILE]
                                       reissue leaf certificates (then: npx cdktf deploy)
  encryption rotate [--config FILE]    one phase of an encryption-at-rest key rotation (3 phases,
                                       each followed by npx cdktf deploy; Secrets stay readable)
  step STEP --host NAME [--config FILE] [--verbose]
                                       run one bring-up step on one host (called by cdktf deploy)
  remove --host NAME [--config FILE]   drain / remove from etcd a host that left the inventory:
                                       what cdktf deploy runs as \`step remove\`, for scripts
  teardown --host NAME [--config FILE]
                                       stop, disable and remove everything binkube deployed on a
                                       host (called by cdktf destroy); etcd data is moved aside,
                                       BINKUBE_TEARDOWN_DATA=delete deletes it with the snapshots,
                                       /var/lib/docker, /var/lib/kubelet and the pods' logs
  reset --host NAME [--yes] [--config FILE]
                                       the same teardown for one host outside Terraform; without
                                       --yes it only says what it would do
  etcd backup [--host NAME] [--config FILE]
                                       take an etcd snapshot now on a member (default: the first)
                                       and copy it home to .binkube/etcd-snapshots/<host>/
  etcd backups [--config FILE]         every snapshot on every member and beside the inventory,
                                       with age, size and the --snapshot to restore it
  etcd restore --snapshot FILE|MEMBER:PATH [--yes] [--config FILE]
                                       rebuild etcd on every member from FILE (e.g. one of
                                       .binkube/etcd-snapshots/<host>/), then restart the control
                                       plane; without --yes it only says what it would do
  check [--config FILE]                compare every host with what binkube would ship: files (sha256,
                                       mode, owner) and units (enabled, active, started after their
                                       files); exit 1 on any drift. Read-only, one SSH session per host
  repair [--config FILE]               re-run exactly the (step, host) instances check finds drifted,
                                       through cdktf deploy (Terraform -replace), in bring-up order
  clusters [--prune]                   the clusters deployed from this machine: inventory, hosts,
                                       state backend, last deploy, and which one is deploying now;
                                       --prune forgets those whose inventory is gone
  kubeconfig create NAME [--role view|edit|admin|CLUSTERROLE] [--namespace NS] [--group G]
                    [--days N] [--config FILE]
                                       a client certificate for User NAME (group G) from the cluster
                                       CA, bound to ClusterRole ROLE (default view) in NS, or cluster-
                                       wide without --namespace; writes kubeconfigs/NAME.kubeconfig
                                       (0600). --days: default 30, at most 365
  kubeconfig list [--config FILE]      who has what, until when, and whether the binding is in the cluster
  kubeconfig revoke NAME [--config FILE]
                                       delete NAME's binding and kubeconfig. The certificate itself
                                       cannot be revoked in v1.17: it authenticates until it expires,
                                       but authorizes nothing
  lab up [--hosts N] | down | status   local test hosts (systemd-nspawn)

The inventory is --config, else $BINKUBE_CONFIG, else ./cluster.yaml.`;

async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const [cmd, sub, ...rest] = args.positional;
  if (!cmd || args.flags.has("help")) {
    process.stdout.write(USAGE + "\n");
    return cmd ? 0 : 2;
  }
  switch (cmd) {
    case "render": {
      const out = args.flags.get("out");
      if (typeof out !== "string") throw new UsageError("render needs --out DIR");
      const cluster = await synthCluster(configFrom(args), say);
      const s = writeTree(cluster.plan, cluster.binaries, path.resolve(out));
      say(`render: wrote ${s.files} files for ${s.hosts} hosts to ${path.resolve(out)} (${s.binariesLinked} binaries linked${s.binariesMissing.length ? `, ${s.binariesMissing.length} not available locally` : ""})`);
      return 0;
    }
    case "encryption": {
      if (sub !== "rotate") throw new UsageError(`encryption: unknown subcommand "${sub ?? ""}" (encryption rotate)`);
      const { inventory } = loadInventory(configFrom(args));
      say(`encryption: ${rotateEncryptionKey(inventory.pkiDir)}`);
      return 0;
    }
    case "certs": {
      if (sub === "check") {
        const cluster = await openCluster(configFrom(args), { create: true });
        reportChanges(cluster.pkiChanges);
        const rows = [...checkRows(cluster.inv, cluster.pki), ...userCertRows(cluster.inv.pkiDir)];
        process.stdout.write(formatCertTable(rows) + "\n");
        if (rows.some((r) => r.name.startsWith("user/") && r.status !== "ok")) say("a user/NAME certificate is renewed by `binkube kubeconfig create NAME` with its role (see `binkube kubeconfig list`), or ended by `binkube kubeconfig revoke NAME`");
        let bad = rows.some((r) => r.status !== "ok");
        if (args.flags.get("remote") === true) {
          const served = await remoteRows(cluster.inv, cluster.pki);
          process.stdout.write("\n" + formatServed(served) + "\n");
          bad ||= served.some((r) => r.status !== "current");
        }
        return bad ? 1 : 0;
      }
      if (sub === "renew") {
        const all = args.flags.get("all") === true;
        if (!all && rest.length === 0) throw new UsageError("certs renew needs certificate names or --all (see `binkube certs check` for names)");
        const cluster = await openCluster(configFrom(args), { create: true, pki: { renew: all ? "all" : rest } });
        reportChanges(cluster.pkiChanges);
        say(`renewed ${cluster.pkiChanges.filter((c) => c.reason === "renewal requested").length} certificates; run \`npx cdktf deploy\` to roll them out`);
        return 0;
      }
      throw new UsageError("certs needs check or renew");
    }
    case "etcd": {
      const { inventory } = loadInventory(configFrom(args));
      if (sub === "backup") {
        const host = args.flags.get("host");
        say(await backupNow(inventory, typeof host === "string" ? host : undefined, say));
        return 0;
      }
      if (sub === "backups") {
        process.stdout.write((await listBackups(inventory)) + "\n");
        return 0;
      }
      if (sub !== "restore") throw new UsageError(`etcd: unknown subcommand "${sub ?? ""}" (etcd backup | backups | restore --snapshot FILE)`);
      let snapshot = args.flags.get("snapshot");
      if (typeof snapshot !== "string") throw new UsageError("etcd restore needs --snapshot FILE (or MEMBER:/var/lib/etcd-snapshots/NAME.db)");
      const onMember = parseSnapshotRef(inventory, snapshot);
      if (onMember) {
        snapshot = await fetchSnapshot(inventory, onMember, say);
        say(`etcd restore: copied ${onMember.host.name}:${onMember.remotePath} to ${snapshot}`);
      }
      const plan = restorePlan(inventory, snapshot);
      for (const line of describeRestore(plan)) say(line);
      if (args.flags.get("yes") !== true) {
        say("etcd restore: nothing done. Re-run with --yes to restore (the cluster's state goes back to the snapshot)");
        return 1;
      }
      say(await runRestore(inventory, plan, say));
      return 0;
    }
    case "synth-report": {
      reportCluster(await openCluster(configFrom(args), { create: true }), say);
      return 0;
    }
    case "step":
      return stepCommand(sub, args, configFrom(args));
    case "step-server": {
      // started by bin/step-client.cjs, never by hand: runs `binkube step` requests in one process
      const socket = args.flags.get("socket");
      if (typeof socket !== "string") throw new UsageError("step-server needs --socket PATH");
      const lock = args.flags.get("spawn-lock");
      await serveSteps(socket, { spawnLock: typeof lock === "string" ? lock : undefined });
      return 0;
    }
    case "remove": {
      // What `step remove` does (the plan's remove instances run that); kept for operators' scripts.
      const host = args.flags.get("host");
      if (typeof host !== "string") throw new UsageError("remove needs --host NAME");
      await runStep(configFrom(args), "remove", host, { verbose: args.flags.get("verbose") === true, allowMissingBinaries: false });
      return 0;
    }
    case "teardown":
    case "reset": {
      const host = args.flags.get("host");
      if (typeof host !== "string") throw new UsageError(`${cmd} needs --host NAME`);
      return teardownCommand(configFrom(args), host, say, cmd === "reset" ? { reset: { yes: args.flags.get("yes") === true } } : {});
    }
    case "clusters":
      if (args.flags.get("prune") === true) for (const f of pruneRegistry()) say(`clusters: forgot ${f} (the inventory is gone)`);
      process.stdout.write(formatClusters(readRegistry()) + "\n");
      return 0;
    case "check":
      return (await checkCommand(configFrom(args))).code;
    case "repair":
      return repairCommand(configFrom(args), say);
    case "kubeconfig": {
      if (sub !== "create" && sub !== "list" && sub !== "revoke") throw new UsageError(`kubeconfig: unknown subcommand "${sub ?? ""}" (create, list, revoke)`);
      if (sub !== "list" && rest.length !== 1) throw new UsageError(`kubeconfig ${sub} needs one NAME`);
      return kubeconfigCommand(sub, rest, args, configFrom(args), say);
    }
    case "lab":
      // The lab (test hosts) is loaded only for its own commands: deploys never load it.
      return (require("../../lab/cli") as typeof import("../../lab/cli")).labCommand(argv.slice(1));
    default:
      throw new UsageError(`unknown command "${cmd}"`);
  }
}

function reportChanges(changes: { name: string; action: string; reason: string }[]): void {
  for (const c of changes) say(`pki: ${c.action} ${c.name} (${c.reason})`);
}

const say = logger(process.stderr);

export class UsageError extends BinkubeError {}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    if (e instanceof UsageError) {
      say(e.message);
      process.stderr.write(`\n${USAGE}\n`);
    }
    else if (e instanceof InventoryError) process.stderr.write(`${e.message}\n`);
    else say(e.message);
    process.exit(e instanceof UsageError ? 2 : 1);
  },
);
