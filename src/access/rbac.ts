// The RBAC binding that gives a scoped credential its role: a RoleBinding in one namespace, or a
// ClusterRoleBinding, to a ClusterRole, with the User as its only subject. The certificate's group
// is not bound: a group outlives any one certificate (other people may carry it), and a binding to
// it could not be taken back from this one user. Fields: rbac.authorization.k8s.io/v1 (GA since
// v1.8, served by v1.17).

export const USER_LABEL = "binkube.io/user";
const RBAC_GROUP = "rbac.authorization.k8s.io";

/** What a user is granted: a ClusterRole, in one namespace or cluster-wide. */
export interface Grant {
  user: string;
  role: string;
  namespace?: string;
}

export type BindingKind = "ClusterRoleBinding" | "RoleBinding";

export interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/** A binding as the cluster has it (only the fields binkube reads). */
export interface Binding {
  kind: BindingKind;
  name: string;
  namespace?: string;
  /** The binkube.io/user label, when binkube made it. */
  user?: string;
  roleRef: { kind: string; name: string };
  subjects: Subject[];
}

export const bindingName = (user: string): string => `binkube-user-${user}`;

export function bindingFor(g: Grant): Binding {
  return {
    kind: g.namespace ? "RoleBinding" : "ClusterRoleBinding",
    name: bindingName(g.user),
    ...(g.namespace ? { namespace: g.namespace } : {}),
    user: g.user,
    roleRef: { kind: "ClusterRole", name: g.role },
    subjects: [{ kind: "User", name: g.user }],
  };
}

/** The manifest `kubectl apply` receives for a binkube binding. */
export function bindingManifest(b: Binding): Record<string, unknown> {
  return {
    apiVersion: `${RBAC_GROUP}/v1`,
    kind: b.kind,
    metadata: {
      name: b.name,
      ...(b.namespace ? { namespace: b.namespace } : {}),
      labels: { ...(b.user ? { [USER_LABEL]: b.user } : {}), "app.kubernetes.io/managed-by": "binkube" },
    },
    roleRef: { apiGroup: RBAC_GROUP, kind: b.roleRef.kind, name: b.roleRef.name },
    subjects: b.subjects.map((s) => ({ kind: s.kind, name: s.name, ...(s.kind === "ServiceAccount" ? { namespace: s.namespace } : { apiGroup: RBAC_GROUP }) })),
  };
}

/** The same binding: same object, same role, same subjects (a roleRef cannot be changed in place). */
export function sameBinding(a: Binding, b: Binding): boolean {
  const subjects = (x: Binding) => JSON.stringify(x.subjects.map((s) => [s.kind, s.name, s.namespace ?? ""]).sort());
  return a.kind === b.kind && a.name === b.name && (a.namespace ?? "") === (b.namespace ?? "") && a.roleRef.kind === b.roleRef.kind && a.roleRef.name === b.roleRef.name && subjects(a) === subjects(b);
}

/** "clusterrolebinding NAME" or "rolebinding NAME in NS", for messages. */
export function describeBinding(b: Pick<Binding, "kind" | "name" | "namespace">): string {
  return b.namespace ? `${b.kind.toLowerCase()} ${b.name} in namespace ${b.namespace}` : `${b.kind.toLowerCase()} ${b.name}`;
}

/** The bindings among `all` that name SUBJECT. */
export function bindingsNaming(all: Binding[], subject: { kind: "User" | "Group"; name: string }): Binding[] {
  return all.filter((b) => b.subjects.some((s) => s.kind === subject.kind && s.name === subject.name));
}
