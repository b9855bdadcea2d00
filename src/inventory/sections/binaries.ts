// binaries: where the release binaries come from: a directory (checked by the local-file pass),
// downloads with their published checksums, and the download cache.
import * as os from "node:os";
import * as path from "node:path";
import { archiveMember, binaryName, downloadAuthVar, shown, urlCredential } from "../grammar";
import { Obj, Reader, isObj, join } from "../reader";
import type { BinaryUrl, Inventory } from "../types";
import { expandPath, fits } from "./common";

const HEX = (n: number) => new RegExp(`^[0-9a-f]{${n}}$`);
const NAME_FIX = "name the binary as binkube lays it out: etcd, kube-apiserver, cni/bridge, docker/dockerd …";

export function readBinaries(r: Reader, raw: Obj, baseDir: string): Inventory["binaries"] {
  const bin = r.section(raw, "binaries", "");
  r.known(bin, ["dir", "urls", "cacheDir"], "binaries");
  const dirText = r.str(bin, "dir", "binaries");
  const urls: BinaryUrl[] = [];
  r.list(bin, "urls", "binaries").forEach((u, i) => {
    const p = `binaries.urls[${i}]`;
    if (!isObj(u)) return r.error(p, "must be a mapping with url and sha256 or sha512", "write - url: https://…  sha256: …");
    r.known(u, ["url", "sha256", "sha512", "files", "name"], p);
    const url = r.str(u, "url", p, "");
    const sha256 = r.str(u, "sha256", p)?.toLowerCase();
    const sha512 = r.str(u, "sha512", p)?.toLowerCase();
    const secret = urlCredential(url);
    if (secret) {
      const host = /^[a-z]+:\/\/(?:[^/?#]*@)?([^/:?#]+)/i.exec(url)?.[1] ?? "HOST";
      r.error(`${p}.url`, `"${shown(url)}" carries a credential (${secret}); it would reach the render output, Terraform's plan and logs`, `remove it from the URL and export ${downloadAuthVar(host)}=USER:PASSWORD (HTTP basic) or =TOKEN (a bearer token) in the shell that runs binkube: it is sent to ${host} only, over https`);
    } else if (!/^https?:\/\/[^\s/]+\/\S+$/.test(url)) r.error(`${p}.url`, `"${shown(url)}" is not an http(s) URL`, "write the full download URL");
    else if (url.startsWith("http:")) r.warn(`${p}.url`, "is plain http: the checksum still guards the content, but anyone on the path sees what is fetched", "use https unless this is a mirror on a trusted network");
    if (!sha256 && !sha512) r.error(p, "has no checksum", "add sha256: or sha512: with the published checksum (downloads are verified before any upload)");
    if (sha256 && !HEX(64).test(sha256)) r.error(`${p}.sha256`, "is not 64 hex digits", "copy the published sha256");
    if (sha512 && !HEX(128).test(sha512)) r.error(`${p}.sha512`, "is not 128 hex digits", "copy the published sha512");
    const files = u.files === undefined ? undefined : r.strMap(u, "files", p);
    const name = r.str(u, "name", p);
    if (name !== undefined) fits(r, `${p}.name`, name, binaryName, NAME_FIX);
    for (const [bin, member] of Object.entries(files ?? {})) {
      if (fits(r, join(`${p}.files`, bin), bin, binaryName, NAME_FIX)) {
        fits(r, join(`${p}.files`, bin), member, archiveMember, "write the member's path inside the archive, e.g. kubernetes/server/bin/kube-apiserver");
      }
    }
    if (!files && !name) r.error(p, "says neither which binary it is (name:) nor which archive members to take (files:)", "add name: etcd, or files: {kube-apiserver: kubernetes/server/bin/kube-apiserver}");
    urls.push({ url, sha256, sha512, files, name });
  });
  if (!dirText && urls.length === 0) r.error("binaries", "no binary source", "set binaries.dir to a directory holding etcd, kube-apiserver, … or list binaries.urls with checksums");
  const dir = dirText ? expandPath(dirText, baseDir) : undefined;
  const cacheDir = expandPath(r.str(bin, "cacheDir", "binaries", path.join(os.homedir(), ".cache", "binkube")), baseDir);
  return { dir, urls, cacheDir };
}
