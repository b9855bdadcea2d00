// The pass over the operator's own files, after every section is read: the keys and known_hosts
// the ssh blocks name, binaries.dir and what binkube would take from it, the image archives to
// preload. Only this pass touches the file system (the sections read values only).
import * as fs from "node:fs";
import * as path from "node:path";
import { shippedBinaries } from "../steps";
import { shown } from "./grammar";
import { dockerArchive, elfX64, forbiddenDirs, placed, shipRoots } from "./placed";
import type { Reader } from "./reader";
import type { LocalFile } from "./sections/common";
import type { Inventory } from "./types";


export function checkLocalFiles(r: Reader, inv: Inventory, files: LocalFile[]): void {
  for (const f of files) {
    if (f.kind === "privateKey") {
      if (!readableFile(r, f.field, f.path, "private key", "point privateKey at a readable key file (chmod 600); binkube connects with a key file, not ssh-agent")) continue;
      const head = fs.readFileSync(f.path, "utf8").slice(0, 80);
      if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(head)) r.error(f.field, `${f.path} does not look like a private key`, "use the private half of the key pair (not the .pub file)");
      checkKeyMode(r, f.field, f.path);
    } else if (f.kind === "bastionKey") {
      if (readableFile(r, f.field, f.path, "private key", "point privateKey at a readable key file (chmod 600)")) checkKeyMode(r, f.field, f.path);
    } else if (f.kind === "knownHosts") {
      readableFile(r, f.field, f.path, "known_hosts file", "create it with ssh-keyscan after checking the fingerprints, or pin hostKeyFingerprints");
    } else {
      const where = placed(f.path, shipRoots(inv.baseDir, inv.binaries.dir), forbiddenDirs(inv.baseDir));
      if ("problem" in where) {
        r.error(f.field, `image archive ${shown(f.path)} ${where.problem}`, "preload only docker save archives kept beside the inventory (e.g. images/pause.tar) or in binaries.dir");
        continue;
      }
      const notArchive = dockerArchive(where.real);
      if (notArchive) r.error(f.field, `${shown(f.path)} ${notArchive}`, "create it with `docker save IMAGE -o FILE`");
    }
  }
  if (inv.binaries.dir) checkBinariesDir(r, inv.binaries.dir, inv.baseDir);
}

/** A readable regular file; otherwise an error on `field`. */
function readableFile(r: Reader, field: string, file: string, what: string, fix: string): boolean {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    if (fs.statSync(file).isFile()) return true;
    r.error(field, `${file} is not a file`, fix);
  } catch {
    r.error(field, `${what} ${file} is missing or unreadable`, fix);
  }
  return false;
}

/** As OpenSSH does: a private key that others can read is refused. */
function checkKeyMode(r: Reader, field: string, file: string): void {
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o077) r.error(field, `${file} is readable by others (mode ${mode.toString(8).padStart(4, "0")})`, `chmod 600 ${file}`);
}

/**
 * binaries.dir, when it exists, is a directory, and every binary binkube would take from it (what
 * the steps declare, and all of each group folder they ship from: docker/, cni/, haproxy/ …) is an x86-64 ELF executable inside it
 * (after links), not under pki/ or .binkube/. A missing directory is only a warning at synth (filled later).
 */
function checkBinariesDir(r: Reader, dir: string, baseDir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch {
    return;
  }
  if (!st.isDirectory()) return r.error("binaries.dir", `${shown(dir)} is ${st.isFile() ? "a regular file" : "not a directory"}`, "point binaries.dir at the directory holding etcd, kube-apiserver, …, docker/ and cni/ (an archive goes in binaries.urls)");
  const forbidden = forbiddenDirs(baseDir);
  const group = (g: string) => {
    try {
      return fs.readdirSync(path.join(dir, g)).map((n) => `${g}/${n}`);
    } catch {
      return [];
    }
  };
  const declared = shippedBinaries();
  const groups = [...new Set(declared.filter((b) => b.includes("/")).map((b) => b.split("/")[0]!))];
  for (const name of [...declared.filter((b) => !b.includes("/")), ...groups.flatMap(group)]) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file) && !isLink(file)) continue;
    const where = placed(file, [{ dir, what: "binaries.dir" }], forbidden);
    const bad = "problem" in where ? where.problem : elfX64(where.real);
    if (bad) r.error("binaries.dir", `${name} (${shown(file)}) ${bad}`, "binaries.dir holds the linux-amd64 binaries themselves (copies, or links within binaries.dir)");
  }
}

const isLink = (p: string): boolean => {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};
