// What every section reader shares: a grammar check recorded as an issue, a path as the inventory
// means it (relative to its own directory, ~ for home), and the local files to check later.
import * as os from "node:os";
import * as path from "node:path";
import { Check, shown } from "../grammar";
import type { Reader } from "../reader";

/** Records `check`'s problem with `value` as an error on `field`. Returns true when the value fits. */
export function fits(r: Reader, field: string, value: string, check: Check, fix: string): boolean {
  const bad = check(value);
  if (bad) r.error(field, `"${shown(value)}" ${bad}`, fix);
  return !bad;
}

/** A path from the inventory: `~` is the operator's home, a relative path is beside the inventory. */
export function expandPath(p: string, baseDir: string): string {
  if (p === "~" || p.startsWith("~/")) return path.join(os.homedir(), p.slice(1));
  return path.resolve(baseDir, p);
}

/**
 * A file on the operator's machine a section names, checked by the local-file pass
 * (inventory/local-files.ts) once every section is read: a private key (readable, a key, not
 * readable by others), a bastion's key (readable, not readable by others), a known_hosts file
 * (readable) or an image archive to preload (in its place, a docker save tar).
 */
export interface LocalFile {
  field: string;
  path: string;
  kind: "privateKey" | "bastionKey" | "knownHosts" | "imageArchive";
}
