// Downloads URL-sourced artifacts once into the cache, verifies the published checksum before
// anything else touches them, and extracts archive members. A directory source needs nothing.
import { execFileSync } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { BinaryUrl, Inventory } from "../inventory/types";
import { BinaryIndex } from "./source";
import { BinkubeError } from "../errors";
import { downloadAuthVar, safeUrl } from "../inventory/grammar";


function digest(file: string, algo: "sha256" | "sha512"): string {
  return crypto.createHash(algo).update(fs.readFileSync(file)).digest("hex");
}

/**
 * The Authorization header for `url` from BINKUBE_DOWNLOAD_AUTH_<HOST> (USER:PASSWORD → basic,
 * anything else → bearer): the inventory never holds a credential (inventory/grammar.ts urlCredential).
 */
export function downloadAuth(url: URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = downloadAuthVar(url.hostname);
  const value = env[name];
  if (!value) return undefined;
  if (url.protocol !== "https:") throw new BinkubeError(`${name} is set, but ${safeUrl(url.href)} is plain http: the credential would cross the network in clear. Fix: use the https URL, or unset ${name}`);
  return value.includes(":") ? `Basic ${Buffer.from(value).toString("base64")}` : `Bearer ${value}`;
}

/** GET with redirects followed here, so the credential goes to the first URL's origin only. */
async function get(href: string): Promise<Response> {
  const origin = new URL(href).origin;
  const auth = downloadAuth(new URL(href));
  let url = href;
  for (let hops = 0; hops <= 5; hops++) {
    const headers: Record<string, string> = new URL(url).origin === origin && auth ? { authorization: auth } : {};
    const res = await fetch(url, { headers, redirect: "manual" });
    const next = res.headers.get("location");
    if (res.status < 300 || res.status >= 400 || !next) return res;
    url = new URL(next, url).href;
  }
  throw new BinkubeError(`GET ${safeUrl(href)}: more than 5 redirects`);
}

async function download(u: BinaryUrl, dest: string, log: (l: string) => void): Promise<void> {
  if (fs.existsSync(dest)) return;
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  const shown = safeUrl(u.url);
  log(`downloading ${shown}`);
  const res = await get(u.url);
  if (!res.ok || !res.body) throw new BinkubeError(`GET ${shown}: HTTP ${res.status}${res.status === 401 || res.status === 403 ? ` (credentials come from ${downloadAuthVar(new URL(u.url).hostname)})` : ""}`);
  const tmp = `${dest}.part-${process.pid}`;
  fs.writeFileSync(tmp, Buffer.from(await res.arrayBuffer()));
  const algo = u.sha256 ? "sha256" : "sha512";
  const want = (u.sha256 ?? u.sha512)!;
  const got = digest(tmp, algo);
  if (got !== want) {
    fs.rmSync(tmp, { force: true });
    throw new BinkubeError(`${shown}: ${algo} is ${got}, the inventory says ${want}: refusing to use it (wrong file, or tampered with)`);
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
    if (!fs.existsSync(info.localPath)) throw new BinkubeError(`${safeUrl(u.url)}: the archive has no ${u.files[name]}`);
  }
}
