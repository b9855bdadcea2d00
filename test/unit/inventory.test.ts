import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import { InventoryError, loadInventory, parseInventory } from "../../src/inventory/load";
import { baseInventory, RawInventory, tempDir, writeInventory } from "../helpers/fixtures";

const dir = tempDir();
const keyFile = path.join(dir, "id_test");
fs.writeFileSync(keyFile, "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n", { mode: 0o600 });
fs.writeFileSync(path.join(dir, "not-a-key.pub"), "ssh-ed25519 AAAA user@host\n");

type Mutate = (inv: RawInventory) => unknown;
const cases: { name: string; mutate: Mutate; field: string; message: RegExp }[] = [
  { name: "unknown top-level field (typo)", mutate: (i) => ({ ...i, netwrok: {} }), field: "netwrok", message: /unknown field/ },
  { name: "unknown host field", mutate: (i) => { i.hosts[0]!.adress = "1.2.3.4"; return i; }, field: "hosts[0].adress", message: /unknown field/ },
  { name: "no hosts key", mutate: (i) => { const { hosts: _h, ...rest } = i; return rest; }, field: "hosts", message: /is required/ },
  { name: "empty hosts", mutate: (i) => ({ ...i, hosts: [] }), field: "hosts", message: /is empty/ },
  { name: "hosts not a list", mutate: (i) => ({ ...i, hosts: "k8s-master" }), field: "hosts", message: /must be a list/ },
  { name: "host without name", mutate: (i) => { delete i.hosts[1]!.name; return i; }, field: "hosts[1].name", message: /is required/ },
  { name: "invalid host name", mutate: (i) => { i.hosts[1]!.name = "K8S_Node"; return i; }, field: "hosts[1].name", message: /not a valid node name/ },
  { name: "duplicate host name", mutate: (i) => { i.hosts[1]!.name = "k8s-master"; return i; }, field: "hosts[1].name", message: /duplicate host name/ },
  { name: "missing address", mutate: (i) => { delete i.hosts[0]!.address; return i; }, field: "hosts[0].address", message: /is required/ },
  { name: "malformed address", mutate: (i) => { i.hosts[0]!.address = "192.168.0.256"; return i; }, field: "hosts[0].address", message: /not an IPv4 address/ },
  { name: "duplicate address", mutate: (i) => { i.hosts[1]!.address = "192.168.0.4"; return i; }, field: "hosts[1].address", message: /duplicate address/ },
  { name: "unknown role", mutate: (i) => { i.hosts[1]!.roles = ["etcd", "worker"]; return i; }, field: "hosts[1].roles[1]", message: /unknown role "worker"/ },
  { name: "empty roles", mutate: (i) => { i.hosts[1]!.roles = []; return i; }, field: "hosts[1].roles", message: /is empty/ },
  { name: "no etcd host", mutate: (i) => { i.hosts.forEach((h) => (h.roles = (h.roles as string[]).filter((r) => r !== "etcd"))); i.hosts[1]!.roles = ["node"]; i.hosts[2]!.roles = ["node"]; return i; }, field: "hosts", message: /no host has the etcd role/ },
  { name: "no master", mutate: (i) => { i.hosts[0]!.roles = ["etcd", "node"]; return i; }, field: "hosts", message: /no host has the master role/ },
  { name: "no node", mutate: (i) => { i.hosts[0]!.roles = ["etcd", "master"]; i.hosts[1]!.roles = ["etcd"]; i.hosts[2]!.roles = ["etcd"]; return i; }, field: "hosts", message: /no host has the node role/ },
  { name: "malformed service CIDR", mutate: (i) => ({ ...i, network: { serviceCIDR: "10.0.0.0/33" } }), field: "network.serviceCIDR", message: /not an IPv4 CIDR/ },
  { name: "service CIDR with host bits", mutate: (i) => ({ ...i, network: { serviceCIDR: "10.0.0.1/24", clusterDNS: "10.0.0.2" } }), field: "network.serviceCIDR", message: /clean network address/ },
  { name: "malformed pod CIDR", mutate: (i) => ({ ...i, network: { podCIDR: "10.244.0.0" } }), field: "network.podCIDR", message: /not an IPv4 CIDR/ },
  { name: "service and pod ranges overlap", mutate: (i) => ({ ...i, network: { serviceCIDR: "10.244.0.0/24", clusterDNS: "10.244.0.10", podCIDR: "10.244.0.0/16" } }), field: "network.podCIDR", message: /overlaps the service range/ },
  { name: "host inside the pod range", mutate: (i) => ({ ...i, network: { podCIDR: "192.168.0.0/16" } }), field: "hosts[0].address", message: /inside the pod range/ },
  { name: "host inside the service range", mutate: (i) => ({ ...i, network: { serviceCIDR: "192.168.0.0/24", clusterDNS: "192.168.0.10" } }), field: "hosts[0].address", message: /inside the service range/ },
  { name: "cluster DNS outside the service range", mutate: (i) => ({ ...i, network: { clusterDNS: "10.96.0.10" } }), field: "network.clusterDNS", message: /outside the service range/ },
  { name: "cluster DNS on the kubernetes service IP", mutate: (i) => ({ ...i, network: { clusterDNS: "10.0.0.1" } }), field: "network.clusterDNS", message: /first service address/ },
  { name: "cluster DNS not an address", mutate: (i) => ({ ...i, network: { clusterDNS: "dns" } }), field: "network.clusterDNS", message: /not an IPv4 address/ },
  { name: "bad cluster domain", mutate: (i) => ({ ...i, network: { clusterDomain: "Cluster_Local" } }), field: "network.clusterDomain", message: /not a DNS domain/ },
  { name: "bad node port range", mutate: (i) => ({ ...i, network: { nodePortRange: "32767-30000" } }), field: "network.nodePortRange", message: /not a port range/ },
  { name: "node port range covers the apiserver", mutate: (i) => ({ ...i, network: { nodePortRange: "6000-7000" } }), field: "network.nodePortRange", message: /contains 6443 \(the apiserver\)/ },
  { name: "ssh port out of range", mutate: (i) => ({ ...i, ssh: { port: 70000 } }), field: "ssh.port", message: /whole number from 1 to 65535/ },
  { name: "unreadable key file", mutate: (i) => ({ ...i, ssh: { privateKey: "missing-key" } }), field: "ssh.privateKey", message: /missing or unreadable/ },
  { name: "public key given as private key", mutate: (i) => ({ ...i, ssh: { privateKey: "not-a-key.pub" } }), field: "ssh.privateKey", message: /does not look like a private key/ },
  { name: "missing known_hosts file", mutate: (i) => ({ ...i, ssh: { knownHosts: "nope" } }), field: "ssh.knownHosts", message: /known_hosts file .* missing/ },
  { name: "bad pinned fingerprint", mutate: (i) => ({ ...i, ssh: { hostKeyFingerprints: ["MD5:aa:bb"] } }), field: "ssh.hostKeyFingerprints[0]", message: /not a SHA256 fingerprint/ },
  { name: "no binary source", mutate: (i) => ({ ...i, binaries: {} }), field: "binaries", message: /no binary source/ },
  { name: "URL without checksum", mutate: (i) => ({ ...i, binaries: { urls: [{ url: "https://example.invalid/etcd", name: "etcd" }] } }), field: "binaries.urls[0]", message: /no checksum/ },
  { name: "checksum of the wrong length", mutate: (i) => ({ ...i, binaries: { urls: [{ url: "https://example.invalid/etcd", name: "etcd", sha256: "abc" }] } }), field: "binaries.urls[0].sha256", message: /64 hex digits/ },
  { name: "unsupported runtime", mutate: (i) => ({ ...i, runtime: "dockerd" }), field: "runtime", message: /did you mean "docker"/ },
  { name: "unsupported CNI", mutate: (i) => ({ ...i, cni: "calico" }), field: "cni", message: /not supported/ },
  { name: "masters tainted with no node-only host", mutate: (i) => ({ ...i, kubelet: { taintMasters: true }, hosts: i.hosts.map((h) => ({ ...h, roles: ["etcd", "master", "node"] })) }), field: "kubelet.taintMasters", message: /every node is a master: .*nowhere to run/ },
  { name: "a connection string in the inventory", mutate: (i) => ({ ...i, state: { backend: "pg", connStr: "postgres://u:pw@db/x" } }), field: "state", message: /does not go in the inventory/ },
  { name: "a pg schema that is not a plain name", mutate: (i) => ({ ...i, state: { backend: "pg", schema: "bk; drop" } }), field: "state.schema", message: /not a plain PostgreSQL schema name/ },
  { name: "a schema with the local backend", mutate: (i) => ({ ...i, state: { schema: "x" } }), field: "state.schema", message: /only means something with backend: pg/ },
  { name: "an unknown state backend", mutate: (i) => ({ ...i, state: { backend: "s3" } }), field: "state.backend", message: /local|pg/ },
  { name: "maxUnavailable 0", mutate: (i) => ({ ...i, rolling: { maxUnavailable: 0 } }), field: "rolling.maxUnavailable", message: /a whole number of nodes \(1 or more\) or a percentage/ },
  { name: "unknown engine", mutate: (i) => ({ ...i, engine: "null-resource" }), field: "engine", message: /did you mean "null_resource"/ },
  { name: "non-positive validity", mutate: (i) => ({ ...i, certificates: { validityDays: 0 } }), field: "certificates.validityDays", message: /whole number from 1/ },
  { name: "CA shorter-lived than leaves", mutate: (i) => ({ ...i, certificates: { validityDays: 3000, caValidityDays: 1000 } }), field: "certificates.caValidityDays", message: /expire before/ },
  { name: "bad external endpoint", mutate: (i) => ({ ...i, apiserver: { endpoint: "10.0.0.100:6443" } }), field: "apiserver.endpoint", message: /not https:\/\/HOST:PORT/ },
  { name: "bad extra SAN", mutate: (i) => ({ ...i, apiserver: { extraSANs: ["not a name"] } }), field: "apiserver.extraSANs[0]", message: /neither an IPv4 address nor a DNS name/ },
  { name: "not a v1.17 release", mutate: (i) => ({ ...i, kubernetes: { version: "v1.18.0" } }), field: "kubernetes.version", message: /not a v1.17 release/ },
  { name: "not an etcd 3.4 release", mutate: (i) => ({ ...i, etcd: { version: "v3.5.0" } }), field: "etcd.version", message: /not an etcd v3.4 release/ },
  { name: "section of the wrong type", mutate: (i) => ({ ...i, network: ["10.0.0.0/24"] }), field: "network", message: /must be a mapping/ },
];

describe("inventory validation", () => {
  test(`has at least 25 invalid inventories (${cases.length})`, () => assert.ok(cases.length >= 25));

  for (const c of cases) {
    test(`rejects: ${c.name}`, () => {
      const file = writeInventory(dir, c.mutate(baseInventory()), `case.yaml`);
      assert.throws(
        () => loadInventory(file),
        (e: unknown) => {
          assert.ok(e instanceof InventoryError, `expected InventoryError, got ${String(e)}`);
          const hit = e.issues.find((i) => i.field === c.field && c.message.test(`${i.message} — ${i.fix}`));
          assert.ok(hit, `no issue on ${c.field} matching ${c.message}; got:\n${e.message}`);
          assert.ok(hit.fix.length > 5, "every issue carries a fix");
          return true;
        },
      );
    });
  }

  test("reports every mistake at once, one per field", () => {
    const raw = baseInventory();
    raw.hosts[0]!.address = "bad";
    raw.hosts[1]!.roles = ["wrker"];
    (raw as Record<string, unknown>).engine = "x";
    const err = (() => {
      try {
        parseInventory(JSON.stringify(raw), path.join(dir, "x.yaml"));
      } catch (e) {
        return e as InventoryError;
      }
      return undefined;
    })();
    assert.ok(err);
    assert.deepEqual(err.issues.map((i) => i.field).sort(), ["engine", "hosts[0].address", "hosts[1].roles[0]"]);
    assert.match(err.message, /3 problems, nothing was written/);
  });

  test("YAML syntax errors name the line", () => {
    assert.throws(() => parseInventory("hosts:\n  - name: a\n   address: [", "x.yaml"), /yaml line \d+/);
  });

  test("several masters without apiserver.endpoint: the node-local proxy, no warning; with nodeLocalProxy: false, a warning naming the single master the nodes use", () => {
    const raw = baseInventory();
    raw.hosts[1]!.roles = ["etcd", "master", "node"];
    assert.deepEqual(parseInventory(JSON.stringify(raw), path.join(dir, "x.yaml")).warnings, []);
    const off = { ...raw, apiserver: { nodeLocalProxy: false } };
    const { warnings } = parseInventory(JSON.stringify(off), path.join(dir, "x.yaml"));
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0]!.field, "apiserver.nodeLocalProxy");
    assert.match(warnings[0]!.message, /is false with 2 masters and no endpoint: .* talk to k8s-master only/);
    const withVip = { ...raw, apiserver: { endpoint: "https://192.168.0.100:6443", nodeLocalProxy: false } };
    assert.equal(parseInventory(JSON.stringify(withVip), path.join(dir, "x.yaml")).warnings.length, 0);
  });

  test("an even number of etcd members is a warning, not an error", () => {
    const raw = baseInventory();
    raw.hosts.pop();
    const { warnings } = parseInventory(JSON.stringify(raw), path.join(dir, "x.yaml"));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!.message, /2 etcd members tolerate 0 failure/);
  });

  test("defaults follow the guide and paths resolve beside the inventory", () => {
    const file = writeInventory(dir, { ...baseInventory(), ssh: { privateKey: "id_test" } });
    const { inventory: inv } = loadInventory(file);
    assert.equal(inv.network.serviceCIDR, "10.0.0.0/24");
    assert.equal(inv.network.podCIDR, "10.244.0.0/16");
    assert.equal(inv.network.clusterDNS, "10.0.0.2");
    assert.equal(inv.network.kubernetesServiceIP, "10.0.0.1");
    assert.equal(inv.network.nodePortRange, "30000-32767");
    assert.equal(inv.engine, "terraform_data");
    assert.equal(inv.hosts[0]!.ssh.privateKey, keyFile);
    assert.equal(inv.binaries.dir, path.join(dir, "bin"));
    assert.equal(inv.pkiDir, path.join(dir, "pki"));
  });

  test("per-host ssh settings override the defaults", () => {
    const raw = baseInventory();
    raw.ssh = { user: "root", port: 22 } as unknown as Record<string, unknown>;
    raw.hosts[1]!.ssh = { user: "ubuntu", port: 2222 };
    const { inventory: inv } = parseInventory(JSON.stringify(raw), path.join(dir, "x.yaml"));
    assert.equal(inv.hosts[0]!.ssh.port, 22);
    assert.equal(inv.hosts[0]!.ssh.sudo, false);
    assert.equal(inv.hosts[1]!.ssh.port, 2222);
    assert.equal(inv.hosts[1]!.ssh.user, "ubuntu");
    assert.equal(inv.hosts[1]!.ssh.sudo, true, "a non-root user runs commands through sudo by default");
  });

  for (const example of ["guide-two-hosts.yaml", "ha-three-masters.yaml"]) {
    test(`example ${example} is valid`, () => {
      const { inventory } = loadInventory(path.join(__dirname, "..", "..", "examples", example));
      assert.ok(inventory.hosts.length >= 2);
    });
  }
});
