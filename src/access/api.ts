// The cluster side of scoped access, behind one small interface: read bindings, check that a
// ClusterRole or namespace exists, apply and delete a binding. The implementation runs kubectl on
// this machine with admin.kubeconfig (the operator's credential; steps use the first master's
// copy over SSH instead, steps/actions.ts), so no SSH connection is needed.
import { spawn } from "node:child_process";
import { BinkubeError } from "../errors";
import { Binding, BindingKind, bindingManifest, USER_LABEL } from "./rbac";

export interface AccessApi {
  /** The apiserver it talks to, for messages. */
  readonly server: string;
  /**
   * ClusterRoleBindings and RoleBindings of every namespace: with `user`, only those binkube made
   * for that user (its label); with `user: true`, every one binkube made; else all of them.
   */
  bindings(opts?: { user?: string | true }): Promise<Binding[]>;
  exists(kind: "clusterrole" | "namespace", name: string): Promise<boolean>;
  apply(b: Binding): Promise<void>;
  remove(b: Pick<Binding, "kind" | "name" | "namespace">): Promise<void>;
}

/** The cluster did not answer (down, unreachable, refused the admin credential). */
export class ApiUnavailable extends BinkubeError {}

export interface Res {
  code: number;
  stdout: string;
  stderr: string;
}

/** One process, bounded in time, argv only (no shell), stdin optional. */
export function runProcess(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => c.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
    c.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    c.on("close", (code, signal) => {
      clearTimeout(t);
      resolve({ code: code ?? -1, stdout, stderr: signal ? `${stderr}killed by ${signal} (timed out)` : stderr });
    });
    c.stdin.on("error", () => undefined); // a kubectl that exits early must not crash us with EPIPE
    c.stdin.end(opts.stdin ?? "");
  });
}

interface RawBinding {
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  roleRef?: { kind?: string; name?: string };
  subjects?: { kind?: string; name?: string; namespace?: string }[] | null;
}

/** Bindings from `kubectl get … -o json` (a List). */
export function parseBindings(json: string): Binding[] {
  const list = JSON.parse(json) as { items?: RawBinding[] };
  return (list.items ?? [])
    .filter((i): i is RawBinding & { kind: BindingKind } => i.kind === "ClusterRoleBinding" || i.kind === "RoleBinding")
    .map((i) => ({
      kind: i.kind,
      name: i.metadata?.name ?? "",
      ...(i.metadata?.namespace ? { namespace: i.metadata.namespace } : {}),
      ...(i.metadata?.labels?.[USER_LABEL] ? { user: i.metadata.labels[USER_LABEL] } : {}),
      roleRef: { kind: i.roleRef?.kind ?? "", name: i.roleRef?.name ?? "" },
      subjects: (i.subjects ?? []).map((s) => ({ kind: s.kind ?? "", name: s.name ?? "", ...(s.namespace ? { namespace: s.namespace } : {}) })),
    }));
}

/** What kubectl says when it never got an answer from the apiserver. */
const UNREACHABLE = /Unable to connect to the server|The connection to the server .* was refused|connection refused|no route to host|i\/o timeout|context deadline exceeded|Client\.Timeout|TLS handshake|x509:|Unauthorized|timed out/i;

/** The AccessApi through KUBECTL with KUBECONFIG (admin.kubeconfig) against SERVER. */
export function kubectlAccessApi(kubectl: string, kubeconfig: string, server: string, run = runProcess): AccessApi {
  const fix = `check that the cluster answers: ${kubectl} --kubeconfig ${kubeconfig} get nodes`;
  const call = async (args: string[], stdin?: string): Promise<Res> => {
    try {
      return await run(kubectl, ["--kubeconfig", kubeconfig, "--request-timeout=20s", ...args], { stdin, timeoutMs: 60_000 });
    } catch (e) {
      throw new BinkubeError(`cannot run ${kubectl}: ${(e as Error).message}`, { where: "kubectl", fix: "binaries must provide kubectl for this machine (or put kubectl on PATH)" });
    }
  };
  const failed = (args: string[], r: Res): BinkubeError => {
    const said = (r.stderr.trim() || r.stdout.trim()).split("\n").slice(-3).join(" / ");
    const Err = UNREACHABLE.test(said) ? ApiUnavailable : BinkubeError;
    return new Err(`kubectl ${args.join(" ")} failed: ${said}`, { where: `the cluster's API (${server})`, fix });
  };
  const ok = async (args: string[], stdin?: string): Promise<string> => {
    const r = await call(args, stdin);
    if (r.code !== 0) throw failed(args, r);
    return r.stdout;
  };
  const scope = (b: Pick<Binding, "namespace">) => (b.namespace ? ["--namespace", b.namespace] : []);
  return {
    server,
    async bindings(opts = {}) {
      const selector = opts.user === undefined ? [] : ["--selector", opts.user === true ? USER_LABEL : `${USER_LABEL}=${opts.user}`];
      return parseBindings(await ok(["get", "clusterrolebindings,rolebindings", "--all-namespaces", ...selector, "--output", "json"]));
    },
    async exists(kind, name) {
      const args = ["get", kind, name, "--output", "name"];
      const r = await call(args);
      if (r.code === 0) return true;
      if (/\(NotFound\)/.test(r.stderr)) return false;
      throw failed(args, r);
    },
    async apply(b) {
      await ok(["apply", "--filename", "-"], JSON.stringify(bindingManifest(b)));
    },
    async remove(b) {
      await ok(["delete", b.kind.toLowerCase(), b.name, ...scope(b), "--ignore-not-found"]);
    },
  };
}
