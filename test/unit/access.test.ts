// Scoped access (`binkube kubeconfig create | list | revoke`): names, the certificate as openssl
// reads it, the RBAC binding's exact fields, the ledger, file modes, and the create/list/revoke
// logic against a scripted cluster (the AccessApi); the kubectl implementation against a scripted
// kubectl. The live cluster's side is test/e2e/access-checks.ts.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, test } from "node:test";
import { parse } from "yaml";
import { AccessApi, ApiUnavailable, kubectlAccessApi } from "../../src/access/api";
import { createKubeconfig, kubeconfigPath, listKubeconfigs, revokeKubeconfig, formatUserTable } from "../../src/access/kubeconfigs";
import { ledgerPath, readAccessLedger } from "../../src/access/ledger";
import { daysProblem, groupProblem, namespaceProblem, roleProblem, userNameProblem } from "../../src/access/names";
import { Binding, bindingFor, bindingManifest, describeBinding } from "../../src/access/rbac";
import { BinkubeError } from "../../src/errors";
import { loadInventory } from "../../src/inventory/load";
import { Inventory } from "../../src/inventory/types";
import { userCertRows } from "../../src/pki/check";
import { apiserverURL } from "../../src/pki/kubeconfig";
import { Issued, createCA } from "../../src/pki/x509";
import { baseInventory, tempDir, writeInventory } from "../helpers/fixtures";
import "../helpers/test-keys";

const DAY = 86_400_000;
const openssl = (...args: string[]) => execFileSync("openssl", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** The cluster's side, scripted: bindings, ClusterRoles and namespaces in memory, every call logged. */
class ScriptedCluster implements AccessApi {
  readonly server = "https://192.168.0.4:6443";
  bindingsInCluster: Binding[] = [];
  clusterRoles = new Set(["view", "edit", "admin", "cluster-admin"]);
  namespaces = new Set(["default", "team-a", "team-b"]);
  calls: string[] = [];
  down = false;
  private call(what: string): void {
    this.calls.push(what);
    if (this.down) throw new ApiUnavailable("kubectl get … failed: Unable to connect to the server: dial tcp 192.168.0.4:6443: connect: connection refused");
  }
  async bindings(opts: { user?: string | true } = {}): Promise<Binding[]> {
    this.call(`bindings ${String(opts.user ?? "all")}`);
    return structuredClone(this.bindingsInCluster.filter((b) => opts.user === undefined || (opts.user === true ? b.user !== undefined : b.user === opts.user)));
  }
  async exists(kind: "clusterrole" | "namespace", name: string): Promise<boolean> {
    this.call(`exists ${kind} ${name}`);
    return (kind === "clusterrole" ? this.clusterRoles : this.namespaces).has(name);
  }
  async apply(b: Binding): Promise<void> {
    this.call(`apply ${describeBinding(b)} -> ${b.roleRef.name}`);
    const i = this.bindingsInCluster.findIndex((x) => x.kind === b.kind && x.name === b.name && x.namespace === b.namespace);
    if (i < 0) this.bindingsInCluster.push(structuredClone(b));
    else if (this.bindingsInCluster[i]!.roleRef.name !== b.roleRef.name) throw new BinkubeError("cannot change roleRef"); // as the apiserver refuses it
    else this.bindingsInCluster[i] = structuredClone(b);
  }
  async remove(b: Pick<Binding, "kind" | "name" | "namespace">): Promise<void> {
    this.call(`remove ${describeBinding(b)}`);
    this.bindingsInCluster = this.bindingsInCluster.filter((x) => !(x.kind === b.kind && x.name === b.name && (x.namespace ?? "") === (b.namespace ?? "")));
  }
}

let ca: Issued;
let caFile: string;
before(async () => {
  ca = await createCA("kubernetes-ca", 3650);
  caFile = path.join(tempDir(), "ca.crt");
  fs.writeFileSync(caFile, ca.certPem);
});

function setup(): { inv: Inventory; cluster: ScriptedCluster; dir: string } {
  const dir = tempDir();
  const inv = loadInventory(writeInventory(dir, baseInventory())).inventory;
  return { inv, cluster: new ScriptedCluster(), dir };
}

/** The certificate and key a kubeconfig carries, and its server, as kubectl would read them. */
function readKubeconfig(file: string) {
  const kc = parse(fs.readFileSync(file, "utf8")) as {
    clusters: { name: string; cluster: { server: string; "certificate-authority-data": string } }[];
    users: { name: string; user: { "client-certificate-data": string; "client-key-data": string } }[];
    "current-context": string;
  };
  const b64 = (s: string) => Buffer.from(s, "base64").toString();
  return { kc, certPem: b64(kc.users[0]!.user["client-certificate-data"]), keyPem: b64(kc.users[0]!.user["client-key-data"]), caPem: b64(kc.clusters[0]!.cluster["certificate-authority-data"]) };
}

/** Every file under DIR, recursively. */
function allFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? allFiles(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** A kubectl that logs its argv and stdin and answers from a script: the API's wire side. */
function scriptedKubectl(dir: string): string {
  const file = path.join(dir, "kubectl");
  fs.writeFileSync(path.join(dir, "bindings.json"), JSON.stringify({
    apiVersion: "v1",
    kind: "List",
    items: [
      { kind: "ClusterRoleBinding", metadata: { name: "binkube-user-bob", labels: { "binkube.io/user": "bob" } }, roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" }, subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "bob" }] },
      { kind: "RoleBinding", metadata: { name: "x", namespace: "team-a" }, roleRef: { kind: "Role", name: "r" } },
    ],
  }));
  fs.writeFileSync(file, `#!/bin/bash
printf '%s ' "$@" >> ${dir}/calls; echo >> ${dir}/calls
cat >> ${dir}/stdin
case " $* " in
*" get clusterrolebindings,rolebindings "*) cat ${dir}/bindings.json ;;
*" get clusterrole view "*) echo clusterrole.rbac.authorization.k8s.io/view ;;
*" get clusterrole "*) echo 'Error from server (NotFound): clusterroles.rbac.authorization.k8s.io "auditor" not found' >&2; exit 1 ;;
*" get namespace down "*) echo 'The connection to the server 192.168.0.4:6443 was refused - did you specify the right host or port?' >&2; exit 1 ;;
*" get namespace forbidden "*) echo 'Error from server (Forbidden): namespaces "forbidden" is forbidden' >&2; exit 1 ;;
*" apply "*) echo applied ;;
*" delete "*) echo deleted ;;
esac
`, { mode: 0o755 });
  return file;
}

describe("names", () => {
  const inv = loadInventory(writeInventory(tempDir(), { ...baseInventory(), addons: { metricsServer: true } })).inventory;
  test("a user is a DNS label that is not one of Kubernetes' or binkube's own identities", () => {
    for (const ok of ["alice", "ci-deployer", "a", "x".repeat(63), "team1-bob"]) assert.equal(userNameProblem(ok, inv), undefined, ok);
    const refused: [string, RegExp][] = [
      ["", /empty/],
      ["Alice", /DNS label/],
      ["alice@example.com", /DNS label/],
      ["-alice", /DNS label/],
      ["alice-", /DNS label/],
      ["x".repeat(64), /DNS label/],
      ["alice.smith", /DNS label/],
      ["system:node:k8s-master", /system:/],
      ["system:admin", /system:/],
      ["system:kube-scheduler", /system:/],
      ["admin", /binkube issues/],
      ["kubelet-bootstrap", /binkube issues/],
      ["metrics-server", /binkube issues/],
      ["kubernetes-ca", /binkube issues/],
      ["kube-proxy", /kube-/],
      ["kube-apiserver-kubelet-client", /kube-/],
      ["kube-anything", /kube-/],
    ];
    for (const [name, why] of refused) assert.match(userNameProblem(name, inv) ?? "accepted", why, name);
  });

  test("a group never starts with system: (system:masters would bypass RBAC)", () => {
    for (const ok of ["dev", "Dev.Team_1", "ops-oncall"]) assert.equal(groupProblem(ok), undefined, ok);
    for (const bad of ["system:masters", "system:nodes", "system:authenticated"]) assert.match(groupProblem(bad) ?? "accepted", /system:masters is cluster-admin/, bad);
    for (const bad of ["a b", "", "-dev", "x".repeat(64), "dev,ops"]) assert.match(groupProblem(bad) ?? "accepted", /letters, digits/, bad);
  });

  test("roles: ClusterRole names, not system: ones; namespaces: DNS labels", () => {
    for (const ok of ["view", "edit", "admin", "cluster-admin", "my-team:reader", "reader.v2"]) assert.equal(roleProblem(ok), undefined, ok);
    assert.match(roleProblem("system:node") ?? "", /system:/);
    assert.match(roleProblem("View") ?? "", /not a ClusterRole name/);
    assert.match(roleProblem("view edit") ?? "", /not a ClusterRole name/);
    assert.equal(namespaceProblem("team-a"), undefined);
    for (const bad of ["Team", "team_a", "a.b", "", "x".repeat(64)]) assert.ok(namespaceProblem(bad), bad);
  });

  test("lifetime: whole days from 1 to 365, never past the CA", () => {
    assert.equal(daysProblem(30, 3000), undefined);
    assert.equal(daysProblem(365, 3000), undefined);
    assert.match(daysProblem(0, 3000) ?? "", /at least 1/);
    assert.match(daysProblem(1.5, 3000) ?? "", /whole number/);
    assert.match(daysProblem(Number.NaN, 3000) ?? "", /whole number/);
    assert.match(daysProblem(366, 3000) ?? "", /more than 365.*cannot be revoked/);
    assert.match(daysProblem(30, 29) ?? "", /past the cluster CA's own expiry \(29 days left\)/);
  });
});

describe("RBAC bindings", () => {
  test("with a namespace: a RoleBinding in it to the ClusterRole, the User its only subject, labelled", () => {
    assert.deepEqual(bindingManifest(bindingFor({ user: "alice", role: "edit", namespace: "team-a" })), {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "binkube-user-alice", namespace: "team-a", labels: { "binkube.io/user": "alice", "app.kubernetes.io/managed-by": "binkube" } },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edit" },
      subjects: [{ kind: "User", name: "alice", apiGroup: "rbac.authorization.k8s.io" }],
    });
  });

  test("without one: a ClusterRoleBinding (no namespace anywhere)", () => {
    assert.deepEqual(bindingManifest(bindingFor({ user: "bob", role: "view" })), {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: "binkube-user-bob", labels: { "binkube.io/user": "bob", "app.kubernetes.io/managed-by": "binkube" } },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "view" },
      subjects: [{ kind: "User", name: "bob", apiGroup: "rbac.authorization.k8s.io" }],
    });
  });
});

describe("kubeconfig create", () => {
  test("the certificate: CN=user, O=group, client auth only, from the cluster CA, 30 days (openssl)", async () => {
    const { inv, cluster, dir } = setup();
    const now = new Date();
    const created = await createKubeconfig({ inv, api: cluster, ca, now }, { name: "alice", group: "dev", namespace: "team-a" });
    const { kc, certPem, keyPem, caPem } = readKubeconfig(created.file);
    const crt = path.join(dir, "alice.crt");
    const key = path.join(dir, "alice.key");
    fs.writeFileSync(crt, certPem);
    fs.writeFileSync(key, keyPem, { mode: 0o600 });
    const out = openssl("x509", "-in", crt, "-noout", "-subject", "-enddate", "-nameopt", "RFC2253");
    assert.match(out, /^subject=CN=alice,O=dev$/m);
    const notAfter = Date.parse(/^notAfter=(.*)$/m.exec(out)![1]!);
    assert.ok(Math.abs(notAfter - (now.getTime() + 30 * DAY)) < 2000, `notAfter ${new Date(notAfter).toISOString()}`);
    assert.match(openssl("verify", "-x509_strict", "-CAfile", caFile, crt), /: OK/);
    const other = await createCA("another-ca", 10);
    const otherFile = path.join(dir, "other.crt");
    fs.writeFileSync(otherFile, other.certPem);
    assert.throws(() => openssl("verify", "-CAfile", otherFile, crt), /error|fail/i, "only the cluster CA vouches for it");
    const eku = openssl("x509", "-in", crt, "-noout", "-ext", "extendedKeyUsage");
    assert.match(eku, /TLS Web Client Authentication/);
    assert.doesNotMatch(eku, /Server/);
    assert.match(openssl("x509", "-in", crt, "-noout", "-ext", "basicConstraints"), /CA:FALSE/);
    assert.equal(openssl("x509", "-in", crt, "-noout", "-modulus"), openssl("rsa", "-in", key, "-noout", "-modulus"), "the key in the kubeconfig is the certificate's");
    assert.match(openssl("x509", "-in", crt, "-noout", "-serial"), new RegExp(`serial=${created.cert.serial}`, "i"));
    // the same server, CA and cluster name admin.kubeconfig uses
    assert.equal(kc.clusters[0]!.cluster.server, apiserverURL(inv));
    assert.equal(kc.clusters[0]!.cluster.server, "https://192.168.0.4:6443");
    assert.equal(caPem, ca.certPem);
    assert.equal(kc["current-context"], "alice@test");
  });

  test("--days sets the lifetime; no group means no O; a lifetime past the CA is refused", async () => {
    const { inv, cluster, dir } = setup();
    const now = new Date();
    const created = await createKubeconfig({ inv, api: cluster, ca, now }, { name: "bob", days: 7 });
    const crt = path.join(dir, "bob.crt");
    fs.writeFileSync(crt, readKubeconfig(created.file).certPem);
    const out = openssl("x509", "-in", crt, "-noout", "-subject", "-enddate", "-nameopt", "RFC2253");
    assert.match(out, /^subject=CN=bob$/m);
    assert.ok(Math.abs(Date.parse(/^notAfter=(.*)$/m.exec(out)![1]!) - (now.getTime() + 7 * DAY)) < 2000);
    const shortCa = await createCA("kubernetes-ca", 20);
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca: shortCa }, { name: "carol" }), /--days 30 is past the cluster CA's own expiry \(19 days left\).*Fix: use --days 19 or less/);
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "carol", days: 400 }), /--days 400 is more than 365.*Fix: use --days 365 or less/);
    assert.equal(readAccessLedger(inv.pkiDir).users.carol, undefined, "nothing recorded for a refused request");
  });

  test("files: kubeconfig 0600 in a 0700 directory; the key is nowhere else and never in the output", async () => {
    const { inv, cluster, dir } = setup();
    fs.mkdirSync(path.join(dir, "kubeconfigs"), { mode: 0o755 });
    fs.chmodSync(path.join(dir, "kubeconfigs"), 0o755);
    const created = await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", role: "edit", namespace: "team-a" });
    assert.equal(created.file, path.join(dir, "kubeconfigs", "alice.kubeconfig"));
    assert.equal(fs.statSync(created.file).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.join(dir, "kubeconfigs")).mode & 0o777, 0o700, "a directory that existed wider is narrowed");
    const { keyPem } = readKubeconfig(created.file);
    const keyBody = keyPem.split("\n")[1]!;
    for (const f of allFiles(dir).filter((f) => f !== created.file)) {
      const text = fs.readFileSync(f, "utf8");
      assert.ok(!text.includes("PRIVATE KEY") && !text.includes(keyBody), `${f} holds no key`);
    }
    const said = created.lines.join("\n");
    assert.ok(!said.includes("PRIVATE") && !said.includes(keyBody));
    assert.match(said, /wrote .*alice\.kubeconfig \(0600\): User alice, edit namespace team-a, certificate serial [0-9a-f]+/);
  });

  test("the ledger records name, group, role, namespace, serial and expiry", async () => {
    const { inv, cluster } = setup();
    const now = new Date("2030-01-01T00:00:00Z");
    const created = await createKubeconfig({ inv, api: cluster, ca, now }, { name: "alice", group: "dev", role: "edit", namespace: "team-a", days: 10 });
    assert.deepEqual(readAccessLedger(inv.pkiDir), {
      version: 1,
      users: {
        alice: {
          name: "alice",
          role: "edit",
          namespace: "team-a",
          group: "dev",
          createdAt: "2030-01-01T00:00:00.000Z",
          certificates: [{ serial: created.cert.serial, group: "dev", role: "edit", namespace: "team-a", notBefore: "2029-12-31T23:55:00.000Z", notAfter: "2030-01-11T00:00:00.000Z", issuedAt: "2030-01-01T00:00:00.000Z" }],
        },
      },
    });
    assert.equal(path.dirname(ledgerPath(inv.pkiDir)), inv.pkiDir);
  });

  test("binds the User in the cluster; a refused request issues nothing and changes nothing", async () => {
    const { inv, cluster, dir } = setup();
    await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", namespace: "team-a", role: "edit" });
    assert.deepEqual(cluster.bindingsInCluster, [bindingFor({ user: "alice", role: "edit", namespace: "team-a" })]);
    assert.deepEqual(cluster.calls, ["exists clusterrole edit", "exists namespace team-a", "bindings alice", "apply rolebinding binkube-user-alice in namespace team-a -> edit"]);

    const before = fs.readFileSync(ledgerPath(inv.pkiDir), "utf8");
    cluster.calls = [];
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "bob", role: "auditor" }), /ClusterRole "auditor" does not exist in the cluster \(https:\/\/192\.168\.0\.4:6443\).*Fix: /);
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "bob", namespace: "nope" }), /namespace "nope" does not exist.*kubectl create namespace nope/);
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "admin" }), /user name "admin" is an identity binkube issues/);
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "bob", group: "system:masters" }), /group "system:masters" starts with system:/);
    assert.ok(!cluster.calls.some((c) => c.startsWith("apply")), "nothing applied");
    assert.equal(fs.readFileSync(ledgerPath(inv.pkiDir), "utf8"), before, "the ledger is unchanged");
    assert.deepEqual(fs.readdirSync(path.join(dir, "kubeconfigs")), ["alice.kubeconfig"]);

    cluster.down = true;
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca }, { name: "bob" }), ApiUnavailable);
    assert.equal(fs.readFileSync(ledgerPath(inv.pkiDir), "utf8"), before);
  });

  test("again for a live user: a new certificate; a changed role replaces the binding (a roleRef is immutable)", async () => {
    const { inv, cluster } = setup();
    await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", role: "view" });
    cluster.calls = [];
    const again = await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", role: "edit", namespace: "team-b" });
    assert.deepEqual(cluster.bindingsInCluster, [bindingFor({ user: "alice", role: "edit", namespace: "team-b" })]);
    assert.ok(cluster.calls.indexOf("remove clusterrolebinding binkube-user-alice") < cluster.calls.indexOf("apply rolebinding binkube-user-alice in namespace team-b -> edit"));
    assert.match(again.lines.join("\n"), /changed alice: view \(cluster-wide\) → edit \(namespace team-b\)/);
    assert.match(again.lines.join("\n"), /1 earlier certificate\(s\) of alice still authenticate/);
    const u = readAccessLedger(inv.pkiDir).users.alice!;
    assert.equal(u.certificates.length, 2);
    assert.deepEqual([u.role, u.namespace], ["edit", "team-b"]);
    assert.notEqual(u.certificates[0]!.serial, u.certificates[1]!.serial);
    // the same grant again only renews: the binding is kept, not deleted
    cluster.calls = [];
    await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", role: "edit", namespace: "team-b" });
    assert.ok(!cluster.calls.some((c) => c.startsWith("remove")), cluster.calls.join(", "));
  });

  test("a revoked name is refused while its certificate authenticates, and free once it expired", async () => {
    const { inv, cluster } = setup();
    const t0 = new Date();
    await createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "alice", days: 5 });
    await revokeKubeconfig({ inv, api: cluster, now: t0 }, "alice");
    await assert.rejects(createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "alice" }), /alice was revoked on .* still authenticates as User alice until .*would authorize the revoked certificate again.*Fix: choose another name \(e\.g\. alice-2\)/);
    assert.deepEqual(cluster.bindingsInCluster, []);
    const later = new Date(t0.getTime() + 6 * DAY);
    await createKubeconfig({ inv, api: cluster, ca, now: later }, { name: "alice" });
    const u = readAccessLedger(inv.pkiDir).users.alice!;
    assert.equal(u.revokedAt, undefined);
    assert.equal(u.certificates.length, 2, "the history is kept");
  });
});

describe("kubeconfig list", () => {
  test("who has what, until when, and whether the binding is in the cluster", async () => {
    const { inv, cluster } = setup();
    const now = new Date();
    await createKubeconfig({ inv, api: cluster, ca, now }, { name: "alice", group: "dev", role: "edit", namespace: "team-a" });
    await createKubeconfig({ inv, api: cluster, ca, now }, { name: "bob", days: 3 });
    await createKubeconfig({ inv, api: cluster, ca, now }, { name: "carol" });
    await revokeKubeconfig({ inv, api: cluster, now }, "carol");
    cluster.bindingsInCluster = cluster.bindingsInCluster.filter((b) => b.user !== "bob"); // deleted behind binkube's back
    cluster.bindingsInCluster.push(bindingFor({ user: "dave", role: "admin", namespace: "team-b" })); // ledger restored from an older backup
    const { rows, unreachable } = await listKubeconfigs({ inv, api: cluster, now });
    assert.equal(unreachable, undefined);
    assert.deepEqual(
      rows.map((r) => [r.user, r.group, r.role, r.scope, r.daysLeft, r.status, r.binding]),
      [
        ["alice", "dev", "edit", "namespace team-a", 30, "active", "present"],
        ["bob", "-", "view", "cluster-wide", 3, "active", "MISSING (run kubeconfig create again)"],
        ["carol", "-", "view", "cluster-wide", 30, `revoked ${now.toISOString().slice(0, 10)} (authenticates until expiry)`, "absent"],
        ["dave", "-", "admin", "namespace team-b", Number.NaN, "not in the ledger", "present, not in the ledger: rolebinding binkube-user-dave in namespace team-b → admin"],
      ],
    );
    const table = formatUserTable(rows);
    assert.match(table.split("\n")[0]!, /^USER\s+GROUP\s+ROLE\s+SCOPE\s+EXPIRES\s+DAYS LEFT\s+STATUS\s+BINDING$/);
    assert.match(table, new RegExp(`alice\\s+dev\\s+edit\\s+namespace team-a\\s+${rows[0]!.expires}\\s+30\\s+active\\s+present`));
  });

  test("a binding whose role was changed by hand differs; an expired user says so", async () => {
    const { inv, cluster } = setup();
    const t0 = new Date();
    await createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "alice", role: "view" });
    cluster.bindingsInCluster[0]!.roleRef.name = "cluster-admin";
    const { rows } = await listKubeconfigs({ inv, api: cluster, now: new Date(t0.getTime() + 31 * DAY) });
    assert.equal(rows[0]!.status, "expired");
    assert.equal(rows[0]!.binding, "differs: clusterrolebinding binkube-user-alice → cluster-admin");
  });

  test("an unreachable cluster: the ledger, with the binding unknown and the reason", async () => {
    const { inv, cluster } = setup();
    await createKubeconfig({ inv, api: cluster, ca }, { name: "alice" });
    cluster.down = true;
    const { rows, unreachable } = await listKubeconfigs({ inv, api: cluster });
    assert.match(unreachable ?? "", /Unable to connect to the server/);
    assert.deepEqual(rows.map((r) => [r.user, r.status, r.binding]), [["alice", "active", "unknown (cluster unreachable)"]]);
  });
});

describe("kubeconfig revoke", () => {
  test("deletes the binding and the kubeconfig, marks the ledger, and says the certificate still authenticates", async () => {
    const { inv, cluster } = setup();
    const now = new Date();
    const created = await createKubeconfig({ inv, api: cluster, ca, now }, { name: "alice", role: "edit", namespace: "team-a" });
    await createKubeconfig({ inv, api: cluster, ca, now }, { name: "bob" });
    const lines = (await revokeKubeconfig({ inv, api: cluster, now }, "alice")).join("\n");
    assert.deepEqual(cluster.bindingsInCluster, [bindingFor({ user: "bob", role: "view" })], "only alice's binding went");
    assert.equal(fs.existsSync(created.file), false);
    assert.ok(fs.existsSync(kubeconfigPath(inv, "bob")));
    assert.equal(readAccessLedger(inv.pkiDir).users.alice!.revokedAt, now.toISOString());
    assert.equal(readAccessLedger(inv.pkiDir).users.bob!.revokedAt, undefined);
    assert.match(lines, /deleted rolebinding binkube-user-alice in namespace team-a \(User alice → ClusterRole edit\)/);
    assert.match(lines, new RegExp(`cannot be revoked: Kubernetes v1\\.17's apiserver checks no CRL or OCSP, so it still authenticates as User alice until ${created.cert.notAfter.replace(/\./g, "\\.")}`));
    assert.match(lines, /authorizes nothing/);
    assert.doesNotMatch(lines, /warning/, "no group, no other binding: nothing to warn about");
    // a second revoke finds nothing to delete and keeps the first date
    const again = (await revokeKubeconfig({ inv, api: cluster, now: new Date(now.getTime() + DAY) }, "alice")).join("\n");
    assert.match(again, /no binding of alice was left/);
    assert.equal(readAccessLedger(inv.pkiDir).users.alice!.revokedAt, now.toISOString());
  });

  test("warns about the group the certificate carries and about bindings of the User binkube did not make", async () => {
    const { inv, cluster } = setup();
    await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", group: "dev", role: "view" });
    await createKubeconfig({ inv, api: cluster, ca }, { name: "erin", group: "ops", role: "view" });
    cluster.bindingsInCluster.push(
      { kind: "RoleBinding", name: "dev-edit", namespace: "team-a", roleRef: { kind: "ClusterRole", name: "edit" }, subjects: [{ kind: "Group", name: "dev" }] },
      { kind: "ClusterRoleBinding", name: "alice-by-hand", roleRef: { kind: "ClusterRole", name: "admin" }, subjects: [{ kind: "User", name: "alice" }] },
    );
    const lines = (await revokeKubeconfig({ inv, api: cluster }, "alice")).join("\n");
    assert.match(lines, /warning: the certificate carries group dev \(O=dev\), and rolebinding dev-edit in namespace team-a → edit name Group dev: they still authorize it until/);
    assert.match(lines, /warning: clusterrolebinding alice-by-hand \(not made by binkube\) also names User alice \(→ ClusterRole admin\)/);
    assert.ok(cluster.bindingsInCluster.some((b) => b.name === "dev-edit") && cluster.bindingsInCluster.some((b) => b.name === "alice-by-hand"), "binkube deletes only its own bindings");
    const erin = (await revokeKubeconfig({ inv, api: cluster }, "erin")).join("\n");
    assert.match(erin, /warning: the certificate carries group ops \(O=ops\): no binding names Group ops now, but one made until .* would authorize it too/);
  });

  test("refuses, changing nothing, when the cluster does not answer; unknown names are refused", async () => {
    const { inv, cluster } = setup();
    const created = await createKubeconfig({ inv, api: cluster, ca }, { name: "alice" });
    cluster.down = true;
    await assert.rejects(revokeKubeconfig({ inv, api: cluster }, "alice"), /cannot revoke alice: the cluster's API does not answer.*nothing was changed/);
    assert.ok(fs.existsSync(created.file));
    assert.equal(readAccessLedger(inv.pkiDir).users.alice!.revokedAt, undefined);
    assert.equal(cluster.bindingsInCluster.length, 1);
    cluster.down = false;
    await assert.rejects(revokeKubeconfig({ inv, api: cluster }, "zoe"), /no kubeconfig named "zoe"/);
    await assert.rejects(revokeKubeconfig({ inv, api: cluster }, "admin"), /identity binkube issues/);
  });
});

describe("certs check", () => {
  test("user certificates: ok, expiring in the last quarter of their life, expired; revoked ones are gone", async () => {
    const { inv, cluster } = setup();
    const t0 = new Date();
    await createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "alice", group: "dev", days: 30 });
    await createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "bob", days: 365 });
    await createKubeconfig({ inv, api: cluster, ca, now: t0 }, { name: "carol" });
    await revokeKubeconfig({ inv, api: cluster, now: t0 }, "carol");
    const at = (days: number) => Object.fromEntries(userCertRows(inv.pkiDir, new Date(t0.getTime() + days * DAY)).map((r) => [r.name, r.status]));
    assert.deepEqual(at(0), { "user/alice": "ok", "user/bob": "ok" });
    assert.deepEqual(at(23), { "user/alice": "expiring (< 8 d)", "user/bob": "ok" });
    assert.deepEqual(at(31), { "user/alice": "expired", "user/bob": "ok" });
    assert.deepEqual(at(340), { "user/alice": "expired", "user/bob": "expiring (< 30 d)" });
    const alice = userCertRows(inv.pkiDir, t0).find((r) => r.name === "user/alice")!;
    assert.deepEqual([alice.subject, alice.issuer, alice.daysLeft], ["CN=alice,O=dev", "kubernetes-ca", 30]);
  });
});

describe("kubectl as the AccessApi", () => {
  test("the exact kubectl commands, the manifest on stdin, and errors sorted into unreachable and other", async () => {
    const dir = tempDir();
    const api = kubectlAccessApi(scriptedKubectl(dir), "/inv/admin.kubeconfig", "https://192.168.0.4:6443");
    const all = await api.bindings({ user: true });
    assert.deepEqual(all, [
      { kind: "ClusterRoleBinding", name: "binkube-user-bob", user: "bob", roleRef: { kind: "ClusterRole", name: "view" }, subjects: [{ kind: "User", name: "bob" }] },
      { kind: "RoleBinding", name: "x", namespace: "team-a", roleRef: { kind: "Role", name: "r" }, subjects: [] },
    ]);
    await api.bindings({ user: "bob" });
    await api.bindings();
    assert.equal(await api.exists("clusterrole", "view"), true);
    assert.equal(await api.exists("clusterrole", "auditor"), false);
    await assert.rejects(api.exists("namespace", "down"), (e: Error) => e instanceof ApiUnavailable && /the cluster's API \(https:\/\/192\.168\.0\.4:6443\).*was refused.*Fix: check that the cluster answers/.test(e.message));
    await assert.rejects(api.exists("namespace", "forbidden"), (e: Error) => !(e instanceof ApiUnavailable) && /Forbidden/.test(e.message));
    await api.apply(bindingFor({ user: "alice", role: "edit", namespace: "team-a" }));
    await api.remove(bindingFor({ user: "alice", role: "edit", namespace: "team-a" }));
    await api.remove(bindingFor({ user: "bob", role: "view" }));
    const pre = "--kubeconfig /inv/admin.kubeconfig --request-timeout=20s";
    assert.deepEqual(fs.readFileSync(path.join(dir, "calls"), "utf8").trim().split("\n").map((l) => l.trim()), [
      `${pre} get clusterrolebindings,rolebindings --all-namespaces --selector binkube.io/user --output json`,
      `${pre} get clusterrolebindings,rolebindings --all-namespaces --selector binkube.io/user=bob --output json`,
      `${pre} get clusterrolebindings,rolebindings --all-namespaces --output json`,
      `${pre} get clusterrole view --output name`,
      `${pre} get clusterrole auditor --output name`,
      `${pre} get namespace down --output name`,
      `${pre} get namespace forbidden --output name`,
      `${pre} apply --filename -`,
      `${pre} delete rolebinding binkube-user-alice --namespace team-a --ignore-not-found`,
      `${pre} delete clusterrolebinding binkube-user-bob --ignore-not-found`,
    ]);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(dir, "stdin"), "utf8")), bindingManifest(bindingFor({ user: "alice", role: "edit", namespace: "team-a" })));
  });
});

test("the CLI: list shows the ledger when the cluster cannot be asked; a bad subcommand is a usage error", async () => {
  const { inv, cluster, dir } = setup();
  await createKubeconfig({ inv, api: cluster, ca }, { name: "alice", role: "edit", namespace: "team-a" });
  const bin = path.join(__dirname, "..", "..", "bin", "binkube.cjs");
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, "kubeconfig", ...args, "--config", inv.file], { encoding: "utf8", env: { ...process.env, BINKUBE_FROM_SOURCE: "1" } });
  const list = cli("list");
  assert.equal(list.status, 0, list.stderr);
  assert.match(list.stdout, /alice\s+-\s+edit\s+namespace team-a\s+\S+\s+29\s+active\s+unknown \(cluster unreachable\)/);
  assert.match(list.stderr, /the cluster did not answer.*admin\.kubeconfig is missing/);
  const bad = cli("rotate");
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /kubeconfig: unknown subcommand "rotate" \(create, list, revoke\)/);
  assert.match(bad.stderr, /kubeconfig create NAME \[--role view\|edit\|admin\|CLUSTERROLE\]/, "the usage names the command");
  const noName = cli("revoke");
  assert.equal(noName.status, 2);
  assert.ok(fs.existsSync(path.join(dir, "kubeconfigs", "alice.kubeconfig")));
});

test("the CLI: create finds the CA, admin.kubeconfig and a kubectl (PATH when binaries have none) and tells what it did", async () => {
  const { inv, dir } = setup();
  const fake = tempDir();
  scriptedKubectl(fake);
  fs.mkdirSync(inv.pkiDir, { recursive: true, mode: 0o700 });
  fs.writeFileSync(path.join(inv.pkiDir, "ca.crt"), ca.certPem);
  fs.writeFileSync(path.join(inv.pkiDir, "ca.key"), ca.keyPem, { mode: 0o600 });
  const bin = path.join(__dirname, "..", "..", "bin", "binkube.cjs");
  const cli = (...args: string[]) => spawnSync(process.execPath, [bin, "kubeconfig", ...args, "--config", inv.file], { encoding: "utf8", env: { ...process.env, BINKUBE_FROM_SOURCE: "1", PATH: `${fake}${path.delimiter}${process.env.PATH}` } });
  const noAdmin = cli("create", "alice", "--role", "view");
  assert.equal(noAdmin.status, 1);
  assert.match(noAdmin.stderr, /admin\.kubeconfig is missing.*Fix: deploy the cluster first/);
  fs.writeFileSync(path.join(dir, "admin.kubeconfig"), "apiVersion: v1\nkind: Config\n", { mode: 0o600 });
  const r = cli("create", "alice", "--role", "view", "--days", "3");
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /applied clusterrolebinding binkube-user-alice: User alice → ClusterRole view/);
  assert.match(r.stderr, /wrote .*kubeconfigs\/alice\.kubeconfig \(0600\).*\(3 days\)/);
  assert.doesNotMatch(r.stdout + r.stderr, /PRIVATE KEY|client-key-data/);
  assert.equal(fs.statSync(path.join(dir, "kubeconfigs", "alice.kubeconfig")).mode & 0o777, 0o600);
  const calls = fs.readFileSync(path.join(fake, "calls"), "utf8");
  assert.match(calls, new RegExp(`--kubeconfig ${path.join(dir, "admin.kubeconfig").replace(/[.]/g, "\\.")} --request-timeout=20s apply --filename -`));
  const badDays = cli("create", "bob", "--days", "two");
  assert.equal(badDays.status, 1);
  assert.match(badDays.stderr, /kubeconfig: --days "two" is not a whole number of days\. Fix: e\.g\. --days 30/);
});
