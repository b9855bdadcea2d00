// Scoped access on a live cluster, for a suite that has one (not a *.test.ts file: the runner does
// not pick it up; call accessChecks from a test after the cluster is deployed):
//
//   await accessChecks({ config: path.join(dir, "cluster.yaml"), kubectl: path.join(bin, "kubectl"), dir });
//
// `dir` is the inventory's directory (admin.kubeconfig, kubeconfigs/). Self-contained: it makes
// two namespaces and two users with names of their own (a revoked name cannot be reused while its
// certificate is valid), and removes them again, whatever happened.
import assert from "node:assert/strict";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { ROOT, waitUntil } from "../helpers/cluster";
import { Res, run } from "../helpers/proc";

export async function accessChecks(opts: { config: string; kubectl: string; dir: string }): Promise<void> {
  const id = crypto.randomBytes(3).toString("hex");
  const nsA = `access-a-${id}`;
  const nsB = `access-b-${id}`;
  const viewer = `e2e-viewer-${id}`;
  const editor = `e2e-editor-${id}`;
  const kubectlAs = (kubeconfig: string) => (...args: string[]) => run(opts.kubectl, ["--kubeconfig", kubeconfig, ...args], { timeoutMs: 60_000 });
  const admin = kubectlAs(path.join(opts.dir, "admin.kubeconfig"));
  const binkube = (...args: string[]) => run(process.execPath, [path.join(ROOT, "bin", "binkube.cjs"), ...args, "--config", opts.config], { timeoutMs: 180_000 });
  const ok = (r: Res, what: string): Res => {
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    return r;
  };
  const refused = (r: Res, what: string): void => {
    assert.notEqual(r.code, 0, `${what} should be refused: ${r.stdout}`);
    assert.match(r.stderr, /\(Forbidden\)/, `${what}: refused by RBAC (Forbidden), not by anything else`);
  };
  /** `kubectl auth can-i` through a user's kubeconfig: "yes" exits 0, "no" exits 1. */
  const canI = async (kc: string, ...args: string[]): Promise<boolean> => {
    const r = await kubectlAs(kc)("auth", "can-i", ...args);
    assert.ok(r.code === 0 || r.code === 1, `auth can-i ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim() === "yes";
  };
  const kubeconfigOf = (user: string) => path.join(opts.dir, "kubeconfigs", `${user}.kubeconfig`);
  const revoked = new Set<string>();
  const copyDir = fs.mkdtempSync(path.join(os.tmpdir(), "binkube-access-"));
  try {
    for (const ns of [nsA, nsB]) ok(await admin("create", "namespace", ns), `create namespace ${ns}`);
    ok(await admin("--namespace", nsA, "create", "secret", "generic", "e2e-secret", "--from-literal=k=v"), "create a Secret to be refused");

    // a view user, cluster-wide
    ok(await binkube("kubeconfig", "create", viewer, "--role", "view", "--days", "2"), `kubeconfig create ${viewer}`);
    const viewerKc = kubeconfigOf(viewer);
    assert.equal(fs.statSync(viewerKc).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(viewerKc)).mode & 0o777, 0o700);
    // revoke deletes the file; a copy made before stands for one handed out
    const viewerCopy = path.join(copyDir, "viewer.kubeconfig");
    fs.copyFileSync(viewerKc, viewerCopy);
    await waitUntil(`${viewer} can list pods (the binding reached the authorizer)`, () => canI(viewerKc, "list", "pods", "--namespace", nsA), 60_000);
    assert.equal(await canI(viewerKc, "list", "pods", "--namespace", nsB), true, "view is cluster-wide");
    assert.equal(await canI(viewerKc, "get", "secrets", "--namespace", nsA), false, "view reads no Secret");
    assert.equal(await canI(viewerKc, "create", "pods", "--namespace", nsA), false, "view creates no pod");
    assert.equal(await canI(viewerKc, "create", "pods", "--subresource=exec", "--namespace", nsA), false, "view has no pods/exec");
    ok(await kubectlAs(viewerKc)("get", "pods", "--namespace", nsA), `${viewer}: get pods`);
    refused(await kubectlAs(viewerKc)("get", "secret", "e2e-secret", "--namespace", nsA), `${viewer}: get secret`);

    // an edit user in namespace A only
    ok(await binkube("kubeconfig", "create", editor, "--role", "edit", "--namespace", nsA, "--days", "2"), `kubeconfig create ${editor}`);
    const editorKc = kubeconfigOf(editor);
    await waitUntil(`${editor} can create configmaps in ${nsA}`, () => canI(editorKc, "create", "configmaps", "--namespace", nsA), 60_000);
    ok(await kubectlAs(editorKc)("--namespace", nsA, "create", "configmap", "e2e-cm", "--from-literal=a=b"), `${editor}: create configmap in ${nsA}`);
    refused(await kubectlAs(editorKc)("--namespace", nsB, "create", "configmap", "e2e-cm", "--from-literal=a=b"), `${editor}: create configmap in ${nsB}`);

    const list = ok(await binkube("kubeconfig", "list"), "kubeconfig list").stdout;
    assert.match(list, new RegExp(`${viewer}\\s+-\\s+view\\s+cluster-wide\\s+\\S+\\s+1\\s+active\\s+present`), list);
    assert.match(list, new RegExp(`${editor}\\s+-\\s+edit\\s+namespace ${nsA}\\s+\\S+\\s+1\\s+active\\s+present`), list);
    const certs = (await binkube("certs", "check")).stdout;
    assert.match(certs, new RegExp(`user/${viewer}\\s+CN=${viewer}\\s`), certs);

    // revoke: the binding goes, the certificate still authenticates (Forbidden, not Unauthorized)
    const rv = ok(await binkube("kubeconfig", "revoke", viewer), `kubeconfig revoke ${viewer}`);
    revoked.add(viewer);
    assert.match(rv.stderr, /cannot be revoked: Kubernetes v1\.17's apiserver checks no CRL or OCSP/);
    assert.equal(fs.existsSync(viewerKc), false, "revoke deletes the kubeconfig");
    let last: Res | undefined;
    await waitUntil(
      `${viewer}'s list pods refused after revoke`,
      async () => {
        last = await kubectlAs(viewerCopy)("get", "pods", "--namespace", nsA);
        return last.code !== 0;
      },
      60_000,
    );
    refused(last!, `${viewer} after revoke: get pods`);
    assert.match(last!.stderr, new RegExp(`User "${viewer}" cannot list resource "pods"`), "it still authenticates as the user, and authorizes nothing");
    assert.match(ok(await binkube("kubeconfig", "list"), "kubeconfig list").stdout, new RegExp(`${viewer}\\s.*revoked \\S+ \\(authenticates until expiry\\)\\s+absent`));
  } finally {
    // clean up whatever was made; a cleanup problem is printed, never masking a failed check
    const problems: string[] = [];
    for (const user of [viewer, editor].filter((u) => !revoked.has(u))) {
      const r = await binkube("kubeconfig", "revoke", user);
      if (r.code !== 0 && !/no kubeconfig named/.test(r.stderr)) problems.push(`revoke ${user}: ${r.stderr.trim()}`);
    }
    for (const ns of [nsA, nsB]) {
      const r = await admin("delete", "namespace", ns, "--ignore-not-found", "--wait=false");
      if (r.code !== 0) problems.push(`delete namespace ${ns}: ${r.stderr.trim()}`);
    }
    fs.rmSync(copyDir, { recursive: true, force: true });
    if (problems.length > 0) process.stderr.write(`access-checks cleanup: ${problems.join("; ")}\n`);
  }
}
