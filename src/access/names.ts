// What a scoped credential may be called, which role it may get and for how long. A user's name
// becomes its certificate's CN (the User the apiserver sees), the binding's name and label, and
// a file name, so it is a DNS label; names Kubernetes or binkube use for their own identities are
// refused, since a certificate with such a CN would be that identity.
import { Inventory } from "../inventory/types";
import { CAS, leafSpecs } from "../pki/catalog";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** A label value's grammar (a group is shown in `list` and kept beside the binding). */
const GROUP = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
/** An RBAC object name as binkube accepts one for a ClusterRole (colons for aggregated roles). */
const ROLE = /^[a-z0-9]([-a-z0-9.:]*[a-z0-9])?$/;

/** The ClusterRoles every v1.17 cluster has for people (user-facing roles, kubernetes.io RBAC docs). */
export const USER_FACING_ROLES = ["view", "edit", "admin", "cluster-admin"] as const;

export const DEFAULT_DAYS = 30;
/** A client certificate cannot be revoked in v1.17: a longer life is a longer window after revoke. */
export const MAX_DAYS = 365;

/** Identities binkube itself issues on the cluster CA, or hands out with tokens. */
function ownIdentities(inv: Inventory): Set<string> {
  const names = new Set(["admin", "kubelet-bootstrap", "kubernetes", ...CAS.map((c) => c.cn)]);
  for (const spec of leafSpecs(inv)) if (spec.ca === "ca") names.add(spec.subject.cn);
  return names;
}

/** Why NAME cannot name a scoped credential, or undefined. */
export function userNameProblem(name: string, inv: Inventory): string | undefined {
  if (name === "") return "is empty";
  if (name.startsWith("system:")) return "starts with system:, the prefix of Kubernetes' own identities (system:node:<host>, system:kube-scheduler, …)";
  if (name.length > 63 || !DNS_LABEL.test(name)) return "is not a DNS label (lowercase letters, digits and '-', at most 63, starting and ending with a letter or digit): it becomes the certificate's CN, the binding's name and a file name";
  if (name.startsWith("kube-")) return "starts with kube-, the prefix of the control plane's identities (kube-apiserver, kube-proxy, …)";
  if (ownIdentities(inv).has(name)) return "is an identity binkube issues for the cluster itself (admin is admin.kubeconfig, cluster-admin through system:masters)";
  return undefined;
}

/** Why G cannot be the certificate's group (its O), or undefined. */
export function groupProblem(group: string): string | undefined {
  if (group.startsWith("system:")) return "starts with system:, Kubernetes' own groups (system:masters is cluster-admin past every RBAC rule, system:nodes the kubelets)";
  if (group.length > 63 || !GROUP.test(group)) return "must be letters, digits, '-', '_' and '.', at most 63, starting and ending with a letter or digit";
  return undefined;
}

export function roleProblem(role: string): string | undefined {
  if (role.startsWith("system:")) return "is a system: ClusterRole, made for Kubernetes' components; give a person view, edit, admin or a ClusterRole of your own";
  if (role.length > 253 || !ROLE.test(role)) return "is not a ClusterRole name (lowercase letters, digits, '-', '.', ':')";
  return undefined;
}

export function namespaceProblem(ns: string): string | undefined {
  return ns.length > 63 || !DNS_LABEL.test(ns) ? "is not a namespace name (a DNS label: lowercase letters, digits and '-', at most 63)" : undefined;
}

/**
 * The lifetime asked for, as whole days: at least 1, at most MAX_DAYS, and never past the CA
 * (`caDaysLeft`), which could not vouch for it afterwards. Why not, as a string.
 */
export function daysProblem(days: number, caDaysLeft: number): string | undefined {
  if (!Number.isInteger(days) || days < 1) return "must be a whole number of days, at least 1";
  if (days > MAX_DAYS) return `is more than ${MAX_DAYS}: a client certificate cannot be revoked in Kubernetes v1.17, so binkube keeps them short; issue a new one before it expires`;
  if (days > caDaysLeft) return `is past the cluster CA's own expiry (${caDaysLeft} days left): the certificate could not outlive it`;
  return undefined;
}
