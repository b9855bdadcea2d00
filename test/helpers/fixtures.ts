// Shared test fixtures: temp dirs and small valid inventories written to disk.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { shippedBinaries } from "../../src/steps";

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

/**
 * A small x86-64 Linux ELF executable that prints `text` and a newline, whatever its arguments:
 * a fake binary that passes the ELF check (inventory/placed.ts) and answers a version query.
 */
export function fakeElf(text: string): Buffer {
  const msg = Buffer.from(`${text}\n`);
  const code = Buffer.from([
    0xb8, 1, 0, 0, 0, // mov eax, 1 (write)
    0xbf, 1, 0, 0, 0, // mov edi, 1 (stdout)
    0x48, 0x8d, 0x35, 0x10, 0, 0, 0, // lea rsi, [rip+16] (the text after this code)
    0xba, ...u32(msg.length), // mov edx, len
    0x0f, 0x05, // syscall
    0xb8, 60, 0, 0, 0, // mov eax, 60 (exit)
    0x31, 0xff, // xor edi, edi
    0x0f, 0x05, // syscall
  ]);
  const base = 0x400000;
  const hdr = Buffer.alloc(64 + 56);
  Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]).copy(hdr); // ELF64, little-endian, version 1
  hdr.writeUInt16LE(2, 16); // ET_EXEC
  hdr.writeUInt16LE(62, 18); // x86-64
  hdr.writeUInt32LE(1, 20);
  hdr.writeBigUInt64LE(BigInt(base + 120), 24); // entry: the code after the headers
  hdr.writeBigUInt64LE(64n, 32); // program headers at 64
  hdr.writeUInt16LE(64, 52);
  hdr.writeUInt16LE(56, 54);
  hdr.writeUInt16LE(1, 56);
  const size = BigInt(120 + code.length + msg.length);
  hdr.writeUInt32LE(1, 64); // PT_LOAD
  hdr.writeUInt32LE(5, 68); // R+X
  hdr.writeBigUInt64LE(0n, 72);
  hdr.writeBigUInt64LE(BigInt(base), 80);
  hdr.writeBigUInt64LE(BigInt(base), 88);
  hdr.writeBigUInt64LE(size, 96);
  hdr.writeBigUInt64LE(size, 104);
  hdr.writeBigUInt64LE(0x1000n, 112);
  return Buffer.concat([hdr, code, msg]);
}

function u32(n: number): number[] {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return [...b];
}

/** A minimal docker save archive (a tar holding manifest.json and repositories), as `docker load` reads it. */
export function dockerArchiveBytes(ref = "pause:3.1"): Buffer {
  const [repo, tag] = ref.split(":");
  const entry = (name: string, data: string) => {
    const h = Buffer.alloc(512);
    h.write(name, 0, "latin1");
    h.write("0000644\0", 100, "latin1");
    h.write("0000000\0", 108, "latin1");
    h.write("0000000\0", 116, "latin1");
    h.write(`${data.length.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    h.write("00000000000\0", 136, "latin1");
    h.write("        ", 148, "latin1");
    h.write("0", 156, "latin1");
    h.write("ustar\u000000", 257, "latin1");
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    const body = Buffer.alloc(Math.ceil(data.length / 512) * 512);
    body.write(data, "latin1");
    return Buffer.concat([h, body]);
  };
  return Buffer.concat([entry("manifest.json", JSON.stringify([{ Config: "c.json", RepoTags: [ref], Layers: [] }])), entry("repositories", JSON.stringify({ [repo!]: { [tag!]: "0" } })), Buffer.alloc(1024)]);
}

/** What each fake binary prints for its version query (the runner checks them: binaries/release.ts). */
const FAKE_VERSIONS: Record<string, string> = {
  etcd: "etcd Version: 3.4.3",
  etcdctl: "etcdctl version: 3.4.3",
  "docker/dockerd": "Docker version 19.03.15, build 99e3ed8",
  "containerd/containerd": "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+b1",
  "haproxy/haproxy": "HAProxy version 2.6.12-1+deb12u4 2026/10/17 - https://haproxy.org/",
};

/** The libraries Debian bookworm's haproxy links that a minimal host may lack (binaries/catalog.ts). */
const HAPROXY_LIBS = ["haproxy/liblua5.3.so.0", "haproxy/libopentracing-c-wrapper.so.0", "haproxy/libopentracing.so.1"];

/** Fake binaries (small ELF executables) so synth sees present binaries with real content hashes. */
export function writeFakeBinaries(dir: string, kubernetes = "v1.17.17"): void {
  // every binary a step ships by name, and haproxy's libraries (its group ships them as found)
  const names = [...shippedBinaries(), ...HAPROXY_LIBS];
  for (const n of names) {
    const f = path.join(dir, n);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    // the server binaries answer --version as the real ones do (the runner checks it)
    const says = /^kube-(apiserver|controller-manager|scheduler|proxy)$|^kubelet$/.test(n) ? `Kubernetes ${kubernetes} (fake ${n})` : FAKE_VERSIONS[n] ?? n;
    fs.writeFileSync(f, fakeElf(says), { mode: 0o755 });
  }
}
