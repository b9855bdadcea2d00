import * as path from "node:path";
const dir = process.argv[2]!;
const f = await import("/tmp/teardown-review/new/test/helpers/fixtures.ts");
f.writeFakeBinaries(path.join(dir, "bin"));
f.writeInventory(dir, { cluster: { name: "tiers" }, binaries: { dir: "bin" }, hosts: [
  { name: "e-1", address: "192.168.0.4", roles: ["etcd"] }, { name: "e-2", address: "192.168.0.8", roles: ["etcd"] }, { name: "e-3", address: "192.168.0.9", roles: ["etcd"] },
  { name: "m-1", address: "192.168.0.5", roles: ["master"] },
  { name: "n-1", address: "192.168.0.6", roles: ["node"] }, { name: "n-2", address: "192.168.0.7", roles: ["node"] } ] });
