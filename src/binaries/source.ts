// Resolves binary names to local files and content hashes. A directory source is hashed once
// per (path, size, mtime) and cached, so synth stays fast with 100+ MB binaries. A URL source
// is identified by its published checksum: nothing is downloaded at synth time.
import * as fs from "node:fs";
import * as path from "node:path";
import { Inventory } from "../inventory/types";
import { writeFileAtomic } from "../util/fs";
import { BinkubeError } from "../errors";
import { forbiddenDirs, placed, shipRoots } from "../inventory/placed";
import { sha256, sha256File } from "../util/hash";

export { sha256, sha256File };

export interface BinaryInfo {
  name: string;
  /** Content identity used in triggers: sha256 of the file, or of the archive checksum + member. */
  hash: string;
  /** Local file when the source is a directory (or after a URL artifact was fetched). */
  localPath?: string;
  url?: string;
  present: boolean;
}

export interface BinaryIndex {
  get(name: string): BinaryInfo;
  /** Names present under a group folder, e.g. group("cni") → ["cni/bridge", …]. */
  group(folder: string): string[];
  missing(): string[];
}

interface HashCacheEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

export function openBinaries(inv: Inventory): BinaryIndex {
  const cacheFile = path.join(inv.baseDir, ".binkube", "hash-cache.json");
  let cache: Record<string, HashCacheEntry> = {};
  try {
    cache = JSON.parse(fs.readFileSync(cacheFile, "utf8")) as Record<string, HashCacheEntry>;
  } catch {
    /* no cache yet */
  }
  let dirty = false;
  const infos = new Map<string, BinaryInfo>();
  const missing = new Set<string>();

  const fromDir = (name: string): BinaryInfo | undefined => (inv.binaries.dir ? fromFile(name, path.join(inv.binaries.dir, name)) : undefined);

  const fromFile = (name: string, file: string): BinaryInfo | undefined => {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    const hit = cache[file];
    let digest: string;
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) digest = hit.sha256;
    else {
      digest = sha256File(file);
      cache[file] = { size: st.size, mtimeMs: st.mtimeMs, sha256: digest };
      dirty = true;
    }
    return { name, hash: digest, localPath: file, present: true };
  };

  const fromUrls = (name: string): BinaryInfo | undefined => {
    for (const u of inv.binaries.urls) {
      const checksum = u.sha256 ? `sha256:${u.sha256}` : `sha512:${u.sha512}`;
      if (u.name === name && !u.files) {
        const localPath = path.join(inv.binaries.cacheDir, "files", checksum.replace(":", "-"), path.basename(name));
        return { name, hash: sha256(checksum), url: u.url, localPath, present: true };
      }
      const member = u.files?.[name];
      if (member) {
        const localPath = path.join(inv.binaries.cacheDir, "extracted", checksum.replace(":", "-"), member);
        return { name, hash: sha256(`${checksum}:${member}`), url: u.url, localPath, present: true };
      }
    }
    return undefined;
  };

  const index: BinaryIndex = {
    get(name) {
      let info = infos.get(name);
      if (!info) {
        // An absolute name is a local file shipped as is (image archives to preload): never one
        // from pki/ or .binkube/, whatever validation let through (inventory/placed.ts).
        if (path.isAbsolute(name)) {
          const where = placed(name, shipRoots(inv.baseDir, inv.binaries.dir), forbiddenDirs(inv.baseDir));
          if ("problem" in where && !/missing/.test(where.problem)) throw new BinkubeError(`${name} ${where.problem}: refusing to ship it`);
        }
        info = path.isAbsolute(name) ? fromFile(name, name) : fromDir(name) ?? fromUrls(name);
        if (!info) {
          missing.add(name);
          info = { name, hash: sha256(`missing:${name}`), present: false };
        }
        infos.set(name, info);
        if (dirty) {
          writeFileAtomic(cacheFile, JSON.stringify(cache), 0o644);
          dirty = false;
        }
      }
      return info;
    },
    group(folder) {
      const names = new Set<string>();
      if (inv.binaries.dir) {
        try {
          for (const f of fs.readdirSync(path.join(inv.binaries.dir, folder))) names.add(`${folder}/${f}`);
        } catch {
          /* folder absent */
        }
      }
      for (const u of inv.binaries.urls) {
        if (u.name?.startsWith(`${folder}/`) && !u.files) names.add(u.name);
        for (const n of Object.keys(u.files ?? {})) if (n.startsWith(`${folder}/`)) names.add(n);
      }
      return [...names].sort();
    },
    missing: () => [...missing].sort(),
  };
  return index;
}
