// Shared test fixtures: temp dirs and small valid inventories written to disk.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";

const made: string[] = [];
// A passing test file leaves nothing behind; a failing one keeps its dirs (logs, diagnostics) for
// the reader. Left to pile up, e2e dirs (1.5 GB each) filled a CI machine's disk until the lab's
// kubelets evicted their own preloaded images.
process.on("exit", (code) => {
  if (code !== 0 || (process.exitCode ?? 0) !== 0) return;
  for (const d of made) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh directory under the OS temp dir, removed when the test file's process exits green. */
export function tempDir(prefix = "binkube-test-"): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}

export type RawInventory = Record<string, unknown> & { hosts: Record<string, unknown>[] };

/** The guide's two hosts, with a binaries dir that need not exist. Paper addresses only. */
export function baseInventory(): RawInventory {
  return {
    cluster: { name: "test" },
    hosts: [
      { name: "k8s-master", address: "192.168.0.4", roles: ["etcd", "master", "node"] },
      { name: "k8s-node", address: "192.168.0.5", roles: ["etcd", "node"] },
      { name: "k8s-node2", address: "192.168.0.6", roles: ["etcd", "node"] },
    ],
    binaries: { dir: "bin" },
  };
}

export function writeInventory(dir: string, raw: unknown, name = "cluster.yaml"): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, typeof raw === "string" ? raw : stringify(raw));
  return file;
}

/** Fake binaries (small files) so synth sees present binaries with real content hashes. */
export function writeFakeBinaries(dir: string): void {
  const names = ["etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy",
    "docker/dockerd", "docker/docker", "docker/containerd", "docker/runc", "cni/flannel", "cni/bridge", "cni/host-local", "cni/loopback", "cni/portmap"];
  for (const n of names) {
    const f = path.join(dir, n);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    // the Kubernetes server binaries answer --version as the real ones do (the runner checks it)
    const says = /^kube-(apiserver|controller-manager|scheduler|proxy)$|^kubelet$/.test(n) ? `"Kubernetes v1.17.17 (fake ${n})"` : n;
    fs.writeFileSync(f, `#!/bin/sh\necho ${says}\n`, { mode: 0o755 });
  }
}
