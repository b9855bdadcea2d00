// Downloads URL-sourced artifacts once into the cache, verifies the published checksum before
// anything else touches them, and extracts archive members. A directory source needs nothing.
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { BinaryUrl, Inventory } from "../inventory/types";
import { BinaryIndex } from "./source";
import { BinkubeError } from "../errors";


function digest(file: string, algo: "sha256" | "sha512"): string {
  return crypto.createHash(algo).update(fs.readFileSync(file)).digest("hex");
}

async function download(u: BinaryUrl, dest: string, log: (l: string) => void): Promise<void> {
  if (fs.existsSync(dest)) return;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  log(`downloading ${u.url}`);
  const res = await fetch(u.url);
  if (!res.ok || !res.body) throw new BinkubeError(`GET ${u.url}: HTTP ${res.status}`);
  const tmp = `${dest}.part-${process.pid}`;
  fs.writeFileSync(tmp, Buffer.from(await res.arrayBuffer()));
  const algo = u.sha256 ? "sha256" : "sha512";
  const want = (u.sha256 ?? u.sha512)!;
  const got = digest(tmp, algo);
  if (got !== want) {
    fs.rmSync(tmp, { force: true });
    throw new BinkubeError(`${u.url}: ${algo} is ${got}, the inventory says ${want}: refusing to use it (wrong file, or tampered with)`);
  }
  fs.renameSync(tmp, dest);
}

export async function fetchBinaries(cluster: { inv: Inventory; binaries: BinaryIndex }, names: string[], log: (l: string) => void): Promise<void> {
  for (const name of names) {
    const info = cluster.binaries.get(name);
    if (!info.url || !info.localPath || fs.existsSync(info.localPath)) continue;
    const u = cluster.inv.binaries.urls.find((x) => x.url === info.url)!;
    const checksum = u.sha256 ? `sha256-${u.sha256}` : `sha512-${u.sha512}`;
    if (!u.files) {
      await download(u, info.localPath, log);
      fs.chmodSync(info.localPath, 0o755);
      continue;
    }
    const archive = path.join(cluster.inv.binaries.cacheDir, "archives", checksum, path.basename(new URL(u.url).pathname));
    await download(u, archive, log);
    const outDir = path.join(cluster.inv.binaries.cacheDir, "extracted", checksum);
    fs.mkdirSync(outDir, { recursive: true });
    // "--": a member is never read as an option (the inventory also refuses option-like members).
    execFileSync("tar", ["-xf", archive, "-C", outDir, "--", ...Object.values(u.files)], { stdio: "pipe" });
    if (!fs.existsSync(info.localPath)) throw new BinkubeError(`${u.url}: the archive has no ${u.files[name]}`);
  }
}
