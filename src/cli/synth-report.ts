// What synthesis tells the operator: inventory warnings, PKI created or reissued (with why),
// binaries not yet available, certificates close to expiry.
import { Cluster, openCluster } from "../cluster";
import { formatIssues } from "../inventory/load";
import { EXPIRY_WARNING_DAYS, checkRows } from "../pki/check";
import { EnsureOptions } from "../pki/ensure";

import type { Log } from "../log";

export async function synthCluster(configFile: string, say: Log, pkiOpts?: EnsureOptions): Promise<Cluster> {
  const cluster = await openCluster(configFile, { create: true, pki: pkiOpts });
  reportCluster(cluster, say);
  return cluster;
}

export function reportCluster(cluster: Cluster, say: Log): void {
  const { inv } = cluster;
  if (cluster.warnings.length > 0) say(formatIssues(inv.file, cluster.warnings, "warning"));
  for (const c of cluster.pkiChanges) say(`pki: ${c.action} ${c.name} (${c.reason}${c.deferred ? "; issued by the first step that ships it" : ""})`);
  const missing = cluster.binaries.missing();
  if (missing.length > 0) {
    say(`warning: ${missing.length} binaries are not available yet (${missing.slice(0, 6).join(", ")}${missing.length > 6 ? ", …" : ""}); deploy will stop before touching a host until binaries.dir or binaries.urls provides them`);
  }
  for (const row of checkRows(inv, cluster.pki)) {
    if (row.daysLeft < EXPIRY_WARNING_DAYS) say(`warning: certificate ${row.name} expires in ${row.daysLeft} days (${row.notAfter}): run \`binkube certs renew ${row.name}\` then deploy`);
  }
  const hosts = new Set(cluster.plan.instances.map((i) => i.host.name)).size;
  say(`plan: ${cluster.plan.instances.length} step instances on ${hosts} hosts (${inv.engine})`);
}
