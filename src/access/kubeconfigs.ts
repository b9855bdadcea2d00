// `binkube kubeconfig create | list | revoke`: scoped credentials beside admin.kubeconfig. A client
// certificate from the cluster CA (CN = the user, O = its group) in a kubeconfig of its own, and
// one RBAC binding of the User to a ClusterRole, in a namespace or cluster-wide. The certificate
// cannot be revoked (v1.17's apiserver reads no CRL and speaks no OCSP): revoke deletes the binding,
// so the certificate still authenticates until it expires but authorizes nothing. Hence short
// lives, and a revoked name is not reused while one of its certificates is valid.
import * as fs from "node:fs";
import * as path from "node:path";
import { BinkubeError } from "../errors";
import { Inventory } from "../inventory/types";
import { apiserverURL, kubeconfig } from "../pki/kubeconfig";
import { Issued, certFacts, issueLeaf } from "../pki/x509";
import { formatTable } from "../util/table";
import { writeFileAtomic } from "../util/fs";
import { AccessApi, ApiUnavailable } from "./api";
import { IssuedCert, UserRecord, latestCertificate, liveCertificates, readAccessLedger, updateAccessLedger, validUntil } from "./ledger";
import { DEFAULT_DAYS, MAX_DAYS, daysProblem, groupProblem, namespaceProblem, roleProblem, userNameProblem } from "./names";
import { Binding, bindingFor, bindingsNaming, describeBinding, sameBinding } from "./rbac";

const DAY = 86_400_000;

export interface AccessContext {
  inv: Inventory;
  api: AccessApi;
  now?: Date;
}

export interface CreateRequest {
  name: string;
  group?: string;
  /** A ClusterRole: view (default), edit, admin or one of the cluster's own. */
  role?: string;
  /** A RoleBinding in this namespace; without it, a ClusterRoleBinding. */
  namespace?: string;
  days?: number;
}

export const kubeconfigDir = (inv: Pick<Inventory, "baseDir">): string => path.join(inv.baseDir, "kubeconfigs");
export const kubeconfigPath = (inv: Pick<Inventory, "baseDir">, name: string): string => path.join(kubeconfigDir(inv), `${name}.kubeconfig`);

const day = (d: Date | string) => new Date(d).toISOString().slice(0, 10);
const scopeOf = (ns: string | undefined) => (ns ? `namespace ${ns}` : "cluster-wide");

function refuse(what: string, fix: string): BinkubeError {
  return new BinkubeError(what, { where: "kubeconfig", fix });
}

/** Validates a request against the inventory, the ledger and the CA; the first problem throws. */
function checkRequest(inv: Inventory, ca: Issued, req: Required<Pick<CreateRequest, "name" | "role" | "days">> & CreateRequest, prior: UserRecord | undefined, now: Date): void {
  const nameProblem = userNameProblem(req.name, inv);
  if (nameProblem) throw refuse(`user name "${req.name}" ${nameProblem}`, "choose another name, e.g. alice or ci-deployer");
  const gp = req.group === undefined ? undefined : groupProblem(req.group);
  if (gp) throw refuse(`group "${req.group}" ${gp}`, "choose another group, or none (the user alone is bound)");
  const rp = roleProblem(req.role);
  if (rp) throw refuse(`role "${req.role}" ${rp}`, "use --role view, edit, admin or a ClusterRole of the cluster's own");
  const np = req.namespace === undefined ? undefined : namespaceProblem(req.namespace);
  if (np) throw refuse(`namespace "${req.namespace}" ${np}`, "name an existing namespace, or leave --namespace out for a cluster-wide binding");
  const caDaysLeft = Math.floor((certFacts(ca.cert).notAfter.getTime() - now.getTime()) / DAY);
  const dp = daysProblem(req.days, caDaysLeft);
  if (dp) throw refuse(`--days ${req.days} ${dp}`, caDaysLeft >= 1 ? `use --days ${Math.min(MAX_DAYS, caDaysLeft)} or less` : "the cluster CA itself expires within a day: every credential of the cluster needs a new CA");
  if (prior?.revokedAt && liveCertificates(prior, now).length > 0) {
    throw refuse(
      `${req.name} was revoked on ${day(prior.revokedAt)}, and its certificate still authenticates as User ${req.name} until ${day(validUntil(prior))}: a new binding for that user would authorize the revoked certificate again`,
      `choose another name (e.g. ${req.name}-2), or wait until ${day(validUntil(prior))}`,
    );
  }
}

export interface Created {
  file: string;
  cert: IssuedCert;
  binding: Binding;
  lines: string[];
}

/**
 * Issues NAME's certificate, binds its role and writes its kubeconfig. Order: everything that can
 * be refused is checked first (names, ledger, the ClusterRole and namespace in the cluster); then
 * the key and certificate are made in memory, the binding applied, the ledger written and last the
 * kubeconfig, so no credential exists on disk that the ledger lacks.
 */
export async function createKubeconfig(ctx: AccessContext & { ca: Issued }, input: CreateRequest): Promise<Created> {
  const { inv, api } = ctx;
  const now = ctx.now ?? new Date();
  const req = { ...input, role: input.role ?? "view", days: input.days ?? DEFAULT_DAYS };
  const prior = readAccessLedger(inv.pkiDir).users[req.name];
  checkRequest(inv, ctx.ca, req, prior, now);

  if (!(await api.exists("clusterrole", req.role))) throw refuse(`ClusterRole "${req.role}" does not exist in the cluster (${api.server})`, "list them with kubectl get clusterroles; use view, edit, admin or create your ClusterRole first");
  if (req.namespace !== undefined && !(await api.exists("namespace", req.namespace))) throw refuse(`namespace "${req.namespace}" does not exist in the cluster (${api.server})`, `create it first (kubectl create namespace ${req.namespace}), then run this again`);
  const current = await api.bindings({ user: req.name });

  const issued = await issueLeaf(ctx.ca, { subject: { cn: req.name, o: req.group === undefined ? [] : [req.group] }, usages: ["client"], days: req.days }, now);
  const facts = certFacts(issued.cert);
  const binding = bindingFor({ user: req.name, role: req.role, namespace: req.namespace });
  const lines: string[] = [];
  // One binding per user: a changed role or namespace replaces it (a roleRef cannot be changed in place).
  for (const stale of current.filter((b) => !sameBinding(b, binding))) {
    await api.remove(stale);
    lines.push(`deleted ${describeBinding(stale)} (role ${stale.roleRef.name}): replaced`);
  }
  await api.apply(binding);
  lines.push(`${current.some((b) => sameBinding(b, binding)) ? "kept" : "applied"} ${describeBinding(binding)}: User ${req.name} → ClusterRole ${req.role}`);

  const cert: IssuedCert = {
    serial: facts.serial,
    ...(req.group !== undefined ? { group: req.group } : {}),
    role: req.role,
    ...(req.namespace !== undefined ? { namespace: req.namespace } : {}),
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    issuedAt: now.toISOString(),
  };
  updateAccessLedger(inv.pkiDir, (l) => {
    const before = l.users[req.name];
    const kept = before && !before.revokedAt ? before : undefined;
    l.users[req.name] = {
      name: req.name,
      role: req.role,
      ...(req.namespace !== undefined ? { namespace: req.namespace } : {}),
      ...(req.group !== undefined ? { group: req.group } : {}),
      createdAt: kept?.createdAt ?? now.toISOString(),
      certificates: [...(before?.certificates ?? []), cert],
    };
  });
  if (prior && !prior.revokedAt) {
    const older = liveCertificates(prior, now);
    if (prior.role !== req.role || prior.namespace !== req.namespace) lines.push(`changed ${req.name}: ${prior.role} (${scopeOf(prior.namespace)}) → ${req.role} (${scopeOf(req.namespace)}); its earlier certificates have the new grant too (same user)`);
    if (older.length > 0) lines.push(`${older.length} earlier certificate(s) of ${req.name} still authenticate until ${day(validUntil(prior))}${older.some((c) => c.group !== req.group) ? `, with group(s) ${[...new Set(older.map((c) => c.group ?? "none"))].join(", ")}` : ""}`);
  }

  const dir = kubeconfigDir(inv);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  fs.chmodSync(dir, 0o700);
  const file = kubeconfigPath(inv, req.name);
  writeFileAtomic(file, kubeconfig(inv.clusterName, apiserverURL(inv), ctx.ca.certPem, req.name, { certPem: issued.certPem, keyPem: issued.keyPem }), 0o600);
  lines.push(`wrote ${file} (0600): User ${req.name}${req.group !== undefined ? `, group ${req.group}` : ""}, ${req.role} ${scopeOf(req.namespace)}, certificate serial ${cert.serial}, valid until ${cert.notAfter} (${req.days} days)`);
  if (req.role === "cluster-admin" && !req.namespace) lines.push(`warning: cluster-admin cluster-wide is full control of the cluster, as admin.kubeconfig; revoke deletes its binding, but nothing else can stop the certificate before ${day(cert.notAfter)}`);
  return { file, cert, binding, lines };
}

export interface UserRow {
  user: string;
  group: string;
  role: string;
  scope: string;
  expires: string;
  daysLeft: number;
  status: string;
  binding: string;
}

/** What the cluster has for a user, against what the ledger says it should have. */
function bindingState(u: UserRecord | undefined, live: Binding[], user: string): string {
  const mine = live.filter((b) => b.user === user);
  if (!u) return mine.length === 0 ? "absent" : `present, not in the ledger: ${mine.map((b) => `${describeBinding(b)} → ${b.roleRef.name}`).join("; ")}`;
  const want = bindingFor({ user, role: u.role, namespace: u.namespace });
  if (mine.length === 0) return u.revokedAt ? "absent" : "MISSING (run kubeconfig create again)";
  if (u.revokedAt) return `PRESENT after revoke (run kubeconfig revoke ${user} again)`;
  if (mine.length === 1 && sameBinding(mine[0]!, want)) return "present";
  return `differs: ${mine.map((b) => `${describeBinding(b)} → ${b.roleRef.name}`).join("; ")}`;
}

/** Who has what: the ledger, and when the cluster answers, whether each binding is there. */
export async function listKubeconfigs(ctx: AccessContext): Promise<{ rows: UserRow[]; unreachable?: string }> {
  const now = ctx.now ?? new Date();
  const ledger = readAccessLedger(ctx.inv.pkiDir);
  let live: Binding[] | undefined;
  let unreachable: string | undefined;
  try {
    live = await ctx.api.bindings({ user: true });
  } catch (e) {
    if (!(e instanceof BinkubeError)) throw e;
    unreachable = e.message;
  }
  const rows: UserRow[] = Object.values(ledger.users)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((u) => {
      const until = validUntil(u);
      const daysLeft = Math.floor((until.getTime() - now.getTime()) / DAY);
      const status = u.revokedAt ? (daysLeft >= 0 ? `revoked ${day(u.revokedAt)} (authenticates until expiry)` : `revoked ${day(u.revokedAt)}, expired`) : daysLeft < 0 ? "expired" : "active";
      return {
        user: u.name,
        group: [...new Set(liveCertificates(u, now).map((c) => c.group).filter((g): g is string => g !== undefined))].join(",") || latestCertificate(u).group || "-",
        role: u.role,
        scope: scopeOf(u.namespace),
        expires: day(until),
        daysLeft,
        status,
        binding: live ? bindingState(u, live, u.name) : "unknown (cluster unreachable)",
      };
    });
  // A binding labelled by binkube for a user the ledger lacks (a ledger restored from an old backup).
  for (const b of live ?? []) {
    if (!b.user || ledger.users[b.user] || rows.some((r) => r.user === b.user)) continue;
    rows.push({ user: b.user, group: "-", role: b.roleRef.name, scope: scopeOf(b.namespace), expires: "-", daysLeft: Number.NaN, status: "not in the ledger", binding: bindingState(undefined, live!, b.user) });
  }
  return { rows, unreachable };
}

export function formatUserTable(rows: UserRow[]): string {
  const head = ["USER", "GROUP", "ROLE", "SCOPE", "EXPIRES", "DAYS LEFT", "STATUS", "BINDING"];
  return formatTable(head, rows.map((r) => [r.user, r.group, r.role, r.scope, r.expires, Number.isFinite(r.daysLeft) ? String(r.daysLeft) : "-", r.status, r.binding]), 70);
}

/**
 * Deletes NAME's bindings and marks it revoked. Refuses, changing nothing, when the cluster does
 * not answer: the binding is what authorizes, so a revoke that cannot reach it has done nothing.
 */
export async function revokeKubeconfig(ctx: AccessContext, name: string): Promise<string[]> {
  const { inv, api } = ctx;
  const now = ctx.now ?? new Date();
  const problem = userNameProblem(name, inv);
  if (problem) throw refuse(`user name "${name}" ${problem}`, "see binkube kubeconfig list for the names binkube issued");
  const u = readAccessLedger(inv.pkiDir).users[name];
  let all: Binding[];
  try {
    all = await api.bindings();
  } catch (e) {
    if (e instanceof ApiUnavailable) throw refuse(`cannot revoke ${name}: the cluster's API does not answer, and its binding is what authorizes it (${e.message}); nothing was changed`, "bring the apiserver back (or fix admin.kubeconfig) and run kubeconfig revoke again");
    throw e;
  }
  const mine = all.filter((b) => b.user === name);
  if (!u && mine.length === 0) throw refuse(`no kubeconfig named "${name}": it is not in ${path.join(inv.pkiDir, "users.json")} and no binding carries binkube.io/user=${name}`, "see binkube kubeconfig list");
  const lines: string[] = [];
  for (const b of mine) {
    await api.remove(b);
    lines.push(`deleted ${describeBinding(b)} (User ${name} → ClusterRole ${b.roleRef.name})`);
  }
  const left = await api.bindings({ user: name });
  if (left.length > 0) throw refuse(`${left.map(describeBinding).join(", ")} still exist after delete`, `delete them by hand (kubectl delete …), then run kubeconfig revoke ${name} again`);
  if (mine.length === 0) lines.push(`no binding of ${name} was left in the cluster`);

  const until = u ? validUntil(u) : undefined;
  const untilText = until ? `until ${until.toISOString()}` : "until it expires (not in the ledger: expiry unknown)";
  lines.push(
    `${name}'s client certificate cannot be revoked: Kubernetes v1.17's apiserver checks no CRL or OCSP, so it still authenticates as User ${name} ${untilText}.`,
    `With its binding gone it authorizes nothing beyond what every authenticated user may do (API discovery, its own access reviews).`,
  );
  for (const b of bindingsNaming(all, { kind: "User", name }).filter((b) => b.user !== name)) {
    lines.push(`warning: ${describeBinding(b)} (not made by binkube) also names User ${name} (→ ${b.roleRef.kind} ${b.roleRef.name}): it still authorizes the certificate; delete it or take ${name} out of its subjects`);
  }
  const groups = [...new Set((u ? liveCertificates(u, now) : []).map((c) => c.group).filter((g): g is string => g !== undefined))];
  for (const g of groups) {
    const byGroup = bindingsNaming(all, { kind: "Group", name: g });
    lines.push(
      byGroup.length > 0
        ? `warning: the certificate carries group ${g} (O=${g}), and ${byGroup.map((b) => `${describeBinding(b)} → ${b.roleRef.name}`).join("; ")} name Group ${g}: they still authorize it ${untilText}`
        : `warning: the certificate carries group ${g} (O=${g}): no binding names Group ${g} now, but one made ${untilText} would authorize it too`,
    );
  }
  if (u) {
    updateAccessLedger(inv.pkiDir, (l) => {
      const rec = l.users[name];
      if (rec && !rec.revokedAt) rec.revokedAt = now.toISOString();
    });
    lines.push(`marked ${name} revoked in ${path.join(inv.pkiDir, "users.json")}${until && until > now ? `; the name cannot be given out again before ${day(until)}` : ""}`);
  }
  const file = kubeconfigPath(inv, name);
  if (fs.existsSync(file)) {
    fs.rmSync(file);
    lines.push(`deleted ${file} (copies of it made elsewhere still authenticate ${untilText})`);
  }
  return lines;
}
