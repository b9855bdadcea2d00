// Files the inventory names and binkube ships to hosts (image archives, binaries): each is what it
// claims to be and stays in its place. After links are resolved it is a regular file inside the
// inventory's directory or binaries.dir, never under pki/, .binkube/ or kubeconfigs/ (only the
// certificate steps ship from pki/, and they read it themselves); an image archive is a
// docker-save tar, a binary an x86-64 ELF executable. Each check returns the problem in a few
// words, or undefined.
import * as fs from "node:fs";
import * as path from "node:path";

/** Paths nothing but the certificate steps may ship: the PKI and binkube's own state. */
export function forbiddenDirs(baseDir: string): { dir: string; what: string }[] {
  return [
    { dir: path.join(baseDir, "pki"), what: "pki/ (the cluster's keys; only the certificate steps ship from there)" },
    { dir: path.join(baseDir, ".binkube"), what: ".binkube/ (binkube's state)" },
    { dir: path.join(baseDir, "kubeconfigs"), what: "kubeconfigs/ (users' credentials, binkube kubeconfig create)" },
  ];
}

/** Where a shipped file may be: beside the inventory, or in binaries.dir. */
export function shipRoots(baseDir: string, binariesDir?: string): { dir: string; what: string }[] {
  return [{ dir: baseDir, what: "the inventory's directory" }, ...(binariesDir ? [{ dir: binariesDir, what: "binaries.dir" }] : [])];
}

const realOr = (p: string): string => {
  try {
    return fs.realpathSync(p);
  } catch {
    return path.resolve(p);
  }
};
const inside = (file: string, dir: string): boolean => file === dir || file.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep);

/**
 * Where `file` really is, when it is a regular file inside one of `roots` (after links) and not
 * under a forbidden directory; else the problem.
 */
export function placed(file: string, roots: { dir: string; what: string }[], forbidden: { dir: string; what: string }[]): { real: string } | { problem: string } {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return { problem: "is missing or unreadable" };
  }
  const via = real === path.resolve(file) ? "" : ` (a link to ${real})`;
  for (const f of forbidden) if (inside(real, realOr(f.dir))) return { problem: `is${via} under ${f.what}` };
  if (!roots.some((r) => inside(real, realOr(r.dir)))) return { problem: `${via ? `is a link to ${real}, ` : "is "}outside ${roots.map((r) => r.what).join(" and ")}` };
  const st = fs.statSync(real);
  if (!st.isFile()) return { problem: `is${via} not a regular file (${st.isDirectory() ? "a directory" : "a device, socket or pipe"})` };
  try {
    fs.accessSync(real, fs.constants.R_OK);
  } catch {
    return { problem: `is${via} not readable` };
  }
  return { real };
}

function head(file: string, bytes: number, at = 0): Buffer {
  const fd = fs.openSync(file, "r");
  try {
    const b = Buffer.alloc(bytes);
    return b.subarray(0, fs.readSync(fd, b, 0, bytes, at));
  } finally {
    fs.closeSync(fd);
  }
}

/** An ELF executable (or PIE) for x86-64 Linux: what every host runs. */
export function elfX64(file: string): string | undefined {
  const h = head(file, 20);
  if (h.length < 20 || h.readUInt32BE(0) !== 0x7f454c46) return h.subarray(0, 2).toString() === "#!" ? "is a script, not an x86-64 ELF executable" : "is not an ELF executable";
  if (h[4] !== 2 || h[5] !== 1) return "is a 32-bit or big-endian ELF file, not x86-64";
  const type = h.readUInt16LE(16);
  if (type !== 2 && type !== 3) return "is an ELF object or core file, not an executable";
  const machine = h.readUInt16LE(18);
  return machine === 62 ? undefined : `is an ELF executable for another architecture (e_machine ${machine}, x86-64 is 62)`;
}

/** At most this many tar headers are read looking for the archive's manifest (docker save writes it last). */
const MAX_TAR_ENTRIES = 100_000;

/**
 * A `docker save` archive: an uncompressed tar with manifest.json or repositories at its top.
 * Only the 512-byte headers are read (the layers are skipped), so a large archive costs little.
 */
export function dockerArchive(file: string): string | undefined {
  const size = fs.statSync(file).size;
  const magic = head(file, 6);
  if (magic[0] === 0x1f && magic[1] === 0x8b) return "is gzip-compressed: docker load reads it, but binkube ships and checks plain docker save tars (gunzip it)";
  if (magic.toString("latin1", 0, 3) === "BZh" || magic.toString("hex") === "fd377a585a00") return "is compressed (bzip2/xz): decompress it to the docker save tar";
  if (size < 512 || !validChecksum(head(file, 512))) return "is not a tar archive";
  for (let at = 0, n = 0; at + 512 <= size && n < MAX_TAR_ENTRIES; n++) {
    const h = head(file, 512, at);
    if (h.every((b) => b === 0)) break;
    if (!validChecksum(h)) return `is a damaged tar archive (bad header at byte ${at})`;
    const name = h.toString("latin1", 0, 100).replace(/\0.*$/s, "").replace(/^\.\//, "");
    if (name === "manifest.json" || name === "repositories") return undefined;
    const entrySize = parseInt(h.toString("latin1", 124, 136).replace(/\0.*$/s, "").trim() || "0", 8);
    at += 512 + Math.ceil(entrySize / 512) * 512;
  }
  return "is a tar archive without manifest.json or repositories: not docker save output";
}

function validChecksum(h: Buffer): boolean {
  const want = parseInt(h.toString("latin1", 148, 156).replace(/\0.*$/s, "").trim(), 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === want;
}
